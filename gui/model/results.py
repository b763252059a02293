"""Result PNGs that carry their job: the parameters, references, pins and provenance in PNG text chunks."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image
from PIL.PngImagePlugin import PngInfo

METADATA_KEY = "stylegallery"


def save_result_png(path: Path, image: np.ndarray, metadata: dict) -> None:
    """Write `image` (uint8 HxWx3) as PNG with `metadata` as JSON under the `stylegallery` text key."""
    info = PngInfo()
    info.add_text(METADATA_KEY, json.dumps(metadata, ensure_ascii=False))
    info.add_text("Software", "StyleGallery")
    if metadata.get("random_weights"):
        info.add_text("Comment", "Made with random-weight test models: not a real style transfer.")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8)).save(tmp, format="PNG", pnginfo=info)
    tmp.replace(path)


def read_result_metadata(path: Path) -> dict | None:
    """The job metadata of a result PNG, None when it has none."""
    with Image.open(path) as img:
        text = img.info.get(METADATA_KEY)
    return json.loads(text) if text else None
