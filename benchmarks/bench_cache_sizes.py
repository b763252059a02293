"""Disk-cache entry sizes of one stage-1 analysis, measured on the tiny random-weight models, with the estimate for
the full-size SD1.5 (F_mix of 640 channels) at a 512 x 512 working size.

    python benchmarks/bench_cache_sizes.py [--photo 3024x4032]

The photo's own size matters only for what is stored at that size (the depth map, before the cache stored it at
the label grid). The tiny models have the real latent grid (64 x 64 at 512) and the real label maps; only F_mix's
channel count differs, so the full-size entry is the tiny one with F_mix at 640 channels (float32, which does not
compress: counted raw).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: the repository first

from engine.api import Engine  # noqa: E402
from engine.cache import ANALYSIS_NAMESPACE  # noqa: E402
from engine.params import ModelSource  # noqa: E402
from engine.types import ImageRef  # noqa: E402
from tests.tiny_models import build_tiny_models  # noqa: E402

FULL_SIZE_FMIX_CHANNELS = 640  # SD1.5's up_blocks[2] output (SPEC: S_stat's 640-d F_mix vectors)


def photo(width: int, height: int) -> Image.Image:
    """A seeded two-tone photo with noise, at the size given."""
    rng = np.random.default_rng(0)
    pixels = np.empty((height, width, 3))
    pixels[:, : width // 2], pixels[:, width // 2:] = rng.uniform(40, 215, 3), rng.uniform(40, 215, 3)
    pixels += rng.normal(0, 12, pixels.shape)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photo", default="3024x4032", help="the photo's size, WIDTHxHEIGHT")
    args = parser.parse_args()
    width, height = (int(v) for v in args.photo.lower().split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        models = build_tiny_models(Path(tmp) / "models")
        source = ModelSource(sd=str(models / "sd15"), dinov2=str(models / "dinov2"), depth=str(models / "depth"),
                             offline=True)
        engine = Engine(source, device="cpu", precision="fp32", cache_dir=Path(tmp) / "cache")
        photo(width, height).save(Path(tmp) / "photo.png")
        engine.analyze(ImageRef(Path(tmp) / "photo.png"))
        entry = next((Path(tmp) / "cache" / ANALYSIS_NAMESPACE).rglob("*.npz"))
        with zipfile.ZipFile(entry) as archive:
            members = {info.filename: (info.file_size, info.compress_size) for info in archive.infolist()}
        total = entry.stat().st_size
        with np.load(entry) as arrays:
            channels, grid_height, grid_width = arrays["fmix"].shape
    print(f"photo {width}x{height}, tiny models: entry {total / 1e6:.3f} MB")
    for name, (raw, stored) in sorted(members.items(), key=lambda item: -item[1][1]):
        print(f"  {name:32s} {raw / 1e3:10.1f} kB raw {stored / 1e3:10.1f} kB stored")
    fmix_stored = members["fmix.npy"][1]
    full = total - fmix_stored + FULL_SIZE_FMIX_CHANNELS * grid_height * grid_width * 4
    print(f"full-size SD1.5 at 512 (F_mix {FULL_SIZE_FMIX_CHANNELS} x {grid_height} x {grid_width} instead of "
          f"{channels} channels): "
          f"about {full / 1e6:.1f} MB per analysis")


if __name__ == "__main__":
    main()
