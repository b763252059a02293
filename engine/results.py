"""Saving a transfer's result: the PNG (with the job in its metadata) and a JSON of matches and losses."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
from PIL import Image, PngImagePlugin

from .params import settings_key
from .persistence import save_json_atomic
from .types import TransferRequest, TransferResult

RESULT_VERSION = 1


def result_document(request: TransferRequest, result: TransferResult, model: str) -> dict:
    """Everything needed to understand (and replay) a result, as JSON-able data."""
    return {
        "content": str(request.content.path),
        "references": [str(ref.path) for ref in request.references],
        "model": model,
        "status": "cancelled" if result.cancelled else "finished",
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
    """An image as PNG with `metadata` in its 'stylegallery' text chunk, written beside and renamed into place, so
    an interrupted save never leaves a half-written picture under the artist's file name."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    info = PngImagePlugin.PngInfo()
    info.add_text("stylegallery", json.dumps(metadata))
    partial = path.with_suffix(".partial.png")
    Image.fromarray(np.asarray(image, dtype=np.uint8)).save(partial, pnginfo=info)
    partial.replace(path)
    return path


def save_result(out: Path, request: TransferRequest, result: TransferResult, model: str) -> Path:
    """Write OUT.png (job parameters in its 'stylegallery' text chunk) and OUT.json beside it."""
    out = Path(out)
    document = result_document(request, result, model)
    keys = ("model", "status", "pins", "params", "references", "working_size", "output_size", "upscale")
    save_png(out, result.image, {key: document[key] for key in keys})
    save_json_atomic(out.with_suffix(".json"), document, version=RESULT_VERSION)
    return out
