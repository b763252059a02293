"""`stylegallery analyze`: stage 1 on one image, written as a colour overlay PNG, the label map and a JSON summary.

The image is opened (and rejected with a readable error if it is not a usable image) before any model loads.
Results are cached under the user data folder, so running it twice on the same pixels and settings is instant.
"""
from __future__ import annotations

import json
from pathlib import Path

from engine.wording import count

from .common import ProgressBar, add_engine_args, engine_from_args, report_errors

OVERLAY_ALPHA = 0.5


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "analyze", help="stage 1: find an image's semantic regions",
        description="Segment an image into regions (DDIM-inversion features, k-means, depth split) and write "
                    "IMAGE_regions.png (colour overlay on the 512x512 image), IMAGE_labels.npy (the 64x64 "
                    "region map) and IMAGE_regions.json (pixel count per region) into --out.")
    parser.add_argument("image", type=Path, help="the image to analyse")
    parser.add_argument("--out", required=True, type=Path, help="output folder (created if needed)")
    parser.add_argument("--mask", type=Path, default=None,
                        help="your own regions: an RGB label image of exactly 512x512, one colour per region, "
                             "black = keep the automatic regions")
    parser.add_argument("--no-depth", action="store_true", help="skip the depth split and re-merge (faster)")
    parser.add_argument("--inversion-steps", type=int, default=None, help="DDIM inversion steps (default 15)")
    parser.add_argument("--max-regions", type=int, default=None,
                        help="largest k tried by the clustering (default 10; the depth split can add more)")
    add_engine_args(parser)


def _params(args):
    import dataclasses

    from engine.errors import InvalidRequest
    from engine.params import Stage1Params

    params = Stage1Params(use_depth=not args.no_depth)
    if args.inversion_steps is not None:
        if not 1 <= args.inversion_steps <= 1000 // params.inversion_stride:
            raise InvalidRequest(f"--inversion-steps must be 1..{1000 // params.inversion_stride}")
        params = dataclasses.replace(params, inversion_steps=args.inversion_steps)
    if args.max_regions is not None:
        if not params.k_min <= args.max_regions <= 64:
            raise InvalidRequest(f"--max-regions must be {params.k_min}..64")
        params = dataclasses.replace(params, k_max=args.max_regions)
    return params


def overlay(image, labels, alpha: float = OVERLAY_ALPHA):
    """The image resized to the label grid's 8x blend with one colour per region (nearest upsampling)."""
    import numpy as np
    from PIL import Image

    from engine.stage1.regions import region_colours

    size = labels.shape[0] * 8
    base = np.asarray(image.resize((size, size), Image.BICUBIC), dtype=np.float32)
    colours = region_colours(sorted(int(i) for i in np.unique(labels)))
    lut = np.zeros((int(labels.max()) + 1, 3), dtype=np.float32)
    for region, rgb in colours.items():
        lut[region] = rgb
    painted = lut[np.repeat(np.repeat(labels, 8, axis=0), 8, axis=1)]
    return Image.fromarray(np.clip((1 - alpha) * base + alpha * painted + 0.5, 0, 255).astype(np.uint8))


def summary(args, analysis) -> dict:
    """The JSON written beside the overlay."""
    from engine.stage1.regions import region_colours

    sizes = analysis.region_sizes()
    total = sum(sizes.values())
    colours = region_colours(list(sizes))
    return {
        "image": str(args.image), "image_sha256": analysis.image_sha256, "model": analysis.model_id,
        "grid": list(analysis.labels.shape), "depth": analysis.params.use_depth,
        "user_mask": str(args.mask) if args.mask else None, "chosen_k": analysis.chosen_k,
        "silhouette": {str(k): v for k, v in analysis.silhouette.items()},
        "regions": [{"id": region, "pixels": count, "fraction": count / total,
                     "colour": "#%02x%02x%02x" % colours[region]} for region, count in sizes.items()],
    }


def run(args) -> int:
    import numpy as np

    from engine.images import load_image
    from engine.types import ImageRef

    with report_errors():
        params = _params(args)
        image = load_image(args.image)  # fail on a bad image before any model loads
        engine = engine_from_args(args)
        bar = ProgressBar()
        try:
            analysis = engine.analyze(ImageRef(args.image, args.mask), params, on_event=bar)
        finally:
            bar.close()
        args.out.mkdir(parents=True, exist_ok=True)
        stem = args.image.stem
        overlay(image, analysis.labels).save(args.out / f"{stem}_regions.png")
        np.save(args.out / f"{stem}_labels.npy", analysis.labels)
        info = summary(args, analysis)
        (args.out / f"{stem}_regions.json").write_text(json.dumps(info, indent=1))
        print(f"{count(len(info['regions']), 'region')} -> {args.out / (stem + '_regions.png')}")
    return 0
