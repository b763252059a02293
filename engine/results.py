"""Saving a transfer's result: the PNG (with the job in its metadata) and a JSON of matches and losses.

Outputs are checked before the work (engine/outputs.py); if a save still fails afterwards (the disk filled
meanwhile), `rescue_result` keeps the finished result in a fallback folder instead of losing it.
"""
from __future__ import annotations

import dataclasses
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from .export import export_image
from .params import settings_key
from .persistence import save_json_atomic
from .types import TransferRequest, TransferResult

RESULT_VERSION = 1


def result_document(request: TransferRequest, result: TransferResult, model: str,
                    random_weights: bool = False) -> dict:
    """Everything needed to understand (and replay) a result, as JSON-able data. `random_weights`: made by the
    random-weight test models (no real style), which every copy of the result must say."""
    return {
        "content": str(request.content.path),
        "references": [str(ref.path) for ref in request.references],
        "model": model,
        "random_weights": random_weights,
        "status": "cancelled" if result.cancelled else "finished",
        "partial": result.cancelled,
        "steps_done": result.steps_done,
        "steps_total": result.steps_total,
        "seconds": round(result.seconds, 3),
        "working_size": list(result.working_size),
        "output_size": list(result.output_size),
        "upscale": result.upscale,
        "pins": [dataclasses.asdict(pin) for pin in request.pins],
        "params": {"stage1": settings_key(request.stage1), "match": settings_key(request.match),
                   "stage3": settings_key(request.stage3), "output": settings_key(request.output)},
        "matches": [dataclasses.asdict(match) for match in result.matches.matches.values()],
        "candidates": [dataclasses.asdict(pair) for pair in result.matches.pairs],
        "losses": [dataclasses.asdict(loss) for loss in result.losses],
    }


def save_png(path: Path, image, metadata: dict) -> Path:
    """An image as PNG (tagged sRGB) with `metadata` in its 'stylegallery' text chunk, written atomically
    (`engine.export`), so an interrupted save never leaves a half-written picture under the artist's file name."""
    return export_image(path, np.asarray(image, dtype=np.uint8), "png", texts={"stylegallery": json.dumps(metadata)})


PNG_KEYS = ("model", "random_weights", "status", "partial", "steps_done", "steps_total", "pins", "params",
            "references", "working_size", "output_size", "upscale")


def save_result(out: Path, request: TransferRequest, result: TransferResult, model: str,
                random_weights: bool = False) -> Path:
    """Write OUT.png (job parameters in its 'stylegallery' text chunk) and OUT.json beside it."""
    out = Path(out)
    document = result_document(request, result, model, random_weights)
    save_png(out, result.image, {key: document[key] for key in PNG_KEYS})
    save_json_atomic(out.with_suffix(".json"), document, version=RESULT_VERSION)
    return out


def fallback_folders() -> list[Path]:
    """Where a finished result goes when its own output cannot be written: the user's data folder, then temp."""
    from platformdirs import user_data_dir

    return [Path(user_data_dir("StyleGallery", appauthor=False)) / "unsaved results",
            Path(tempfile.gettempdir()) / "StyleGallery unsaved results"]


def rescue_result(out: Path, request: TransferRequest, result: TransferResult, model: str,
                  random_weights: bool = False) -> Path:
    """After saving to `out` failed: the same files in the first fallback folder that takes them (a short, unique
    name there). Raises the last OSError if none does."""
    name = f"{Path(out).stem[:80]}-{time.strftime('%Y%m%d-%H%M%S')}.png"
    error: OSError | None = None
    for folder in fallback_folders():
        try:
            folder.mkdir(parents=True, exist_ok=True)
            return save_result(folder / name, request, result, model, random_weights)
        except OSError as exc:
            error = exc
    assert error is not None
    raise error
