"""Saving a transfer's result: the PNG (with the job in its metadata) and a JSON of matches and losses.

The metadata names images by file name and pixel hash, never by path (engine/recipe.py), so a shared result
leaks no user name or folder, and a dropped result can be restored.

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
from .persistence import save_json_atomic
from .recipe import PARAMETERS_CHUNK, RECIPE_CHUNK, parameters_text, recipe_document
from .types import TransferRequest, TransferResult

RESULT_VERSION = 2  # 1 held the images' absolute paths


def result_document(request: TransferRequest, result: TransferResult, model: str,
                    random_weights: bool = False, reference_names: list[str] | None = None) -> dict:
    """Everything needed to understand (and replay) a result, as JSON-able data: its path-free recipe
    (`engine.recipe.recipe_document`) and what the run did. `random_weights`: made by the random-weight test models
    (no real style), which every copy of the result must say."""
    return {
        **recipe_document(request, model, random_weights, reference_names),
        "status": "cancelled" if result.cancelled else "finished",
        "partial": result.cancelled,
        "steps_done": result.steps_done,
        "steps_total": result.steps_total,
        "seconds": round(result.seconds, 3),
        "working_size": list(result.working_size),
        "output_size": list(result.output_size),
        "upscale": result.upscale,
        "matches": [dataclasses.asdict(match) for match in result.matches.matches.values()],
        "candidates": [dataclasses.asdict(pair) for pair in result.matches.pairs],
        "losses": [dataclasses.asdict(loss) for loss in result.losses],
    }


def save_png(path: Path, image, metadata: dict, parameters: str | None = None) -> Path:
    """An image as PNG (tagged sRGB) with `metadata` in its 'stylegallery' text chunk (and `parameters`, the
    A1111-style text, in its own), written atomically (`engine.export`), so an interrupted save never leaves a
    half-written picture under the artist's file name."""
    texts = {} if parameters is None else {PARAMETERS_CHUNK: parameters}
    texts[RECIPE_CHUNK] = json.dumps(metadata)
    return export_image(path, np.asarray(image, dtype=np.uint8), "png", texts=texts)


PNG_KEYS = ("recipe", "content", "references", "pins", "params", "model", "model_hash", "random_weights", "status",
            "partial", "steps_done", "steps_total", "working_size", "output_size", "upscale")


def save_result(out: Path, request: TransferRequest, result: TransferResult, model: str,
                random_weights: bool = False, reference_names: list[str] | None = None) -> Path:
    """Write OUT.png (its recipe in the 'stylegallery' text chunk, the A1111-style 'parameters' beside it) and
    OUT.json. `reference_names`: the artist's names of the references (the gallery's), else their file names."""
    out = Path(out)
    document = result_document(request, result, model, random_weights, reference_names)
    save_png(out, result.image, {key: document[key] for key in PNG_KEYS}, parameters_text(document))
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
