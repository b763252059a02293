"""`stylegallery analyze`: stage 1 on one image, written as a colour overlay PNG, the label map and a JSON summary.

The image is opened (and rejected with a readable error if it is not a usable image) before any model loads.
Results are cached under the user data folder, so running it twice on the same pixels and settings is instant.
"""
from __future__ import annotations

import json
from pathlib import Path

from engine.wording import count

from .common import (ProgressBar, add_engine_args, add_size_args, add_working_size_arg, engine_from_args,
                     report_errors, size_params)

OVERLAY_ALPHA = 0.5


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "analyze", help="stage 1: find an image's semantic regions",
        description="Segment an image into regions (DDIM-inversion features, k-means, depth split) and write "
                    "IMAGE_regions.png (colour overlay on the image at the working size: its aspect ratio at about "
                    "512x512 of area, or 512x512 with --size-policy square), IMAGE_labels.npy (the region map, one "
                    "cell per 8x8 pixels) and IMAGE_regions.json (cell count per region) into --out.")
    parser.add_argument("image", type=Path, help="the image to analyse")
    parser.add_argument("--out", required=True, type=Path, help="output folder (created if needed)")
    parser.add_argument("--mask", type=Path, default=None,
                        help="your own regions: an RGB label image the size of the photo (or of the working size), "
                             "one colour per region, black = keep the automatic regions")
    parser.add_argument("--no-depth", action="store_true", help="skip the depth split and re-merge (faster)")
    add_working_size_arg(parser)
    parser.add_argument("--inversion-steps", type=int, default=None, help="DDIM inversion steps (default 15)")
    parser.add_argument("--max-regions", type=int, default=None,
                        help="largest k tried by the clustering (default 10; the depth split can add more)")
    add_size_args(parser)
    add_engine_args(parser)


def _params(args):
    import dataclasses

    from engine.errors import InvalidRequest
    from engine.params import Stage1Params

    params = Stage1Params(use_depth=not args.no_depth, image_size=args.working_size, **size_params(args))
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
    """The image at the label grid's working size blended with one colour per region (nearest upsampling)."""
    import numpy as np
    from PIL import Image

    from engine.params import LATENT_FACTOR
    from engine.stage1.regions import region_colours

    height, width = labels.shape
    base = np.asarray(image.resize((width * LATENT_FACTOR, height * LATENT_FACTOR), Image.BICUBIC), dtype=np.float32)
    colours = region_colours(sorted(int(i) for i in np.unique(labels)))
    lut = np.zeros((int(labels.max()) + 1, 3), dtype=np.float32)
    for region, rgb in colours.items():
        lut[region] = rgb
    painted = lut[np.repeat(np.repeat(labels, LATENT_FACTOR, axis=0), LATENT_FACTOR, axis=1)]
    return Image.fromarray(np.clip((1 - alpha) * base + alpha * painted + 0.5, 0, 255).astype(np.uint8))


def summary(args, analysis) -> dict:
    """The JSON written beside the overlay."""
    from engine.stage1.regions import region_colours

    sizes = analysis.region_sizes()
    total = sum(sizes.values())
    colours = region_colours(list(sizes))
    return {
        "image": str(args.image), "image_sha256": analysis.image_sha256, "model": analysis.model_id,
        "grid": list(analysis.labels.shape), "working_size": list(analysis.working_size),
        "size_policy": analysis.params.size_policy, "depth": analysis.params.use_depth,
        "user_mask": str(args.mask) if args.mask else None, "chosen_k": analysis.chosen_k,
        "silhouette": {str(k): v for k, v in analysis.silhouette.items()},
        "regions": [{"id": region, "pixels": count, "fraction": count / total,
                     "colour": "#%02x%02x%02x" % colours[region]} for region, count in sizes.items()],
    }


def run(args) -> int:
    import numpy as np

    from engine.images import load_image
    from engine.outputs import check_output_folder
    from engine.types import ImageRef

    with report_errors():
        params = _params(args)
        image = load_image(args.image)  # fail on a bad image before any model loads
        check_output_folder(args.out, "--out folder")  # and on an output that cannot be written
        engine = engine_from_args(args)
        bar = ProgressBar()
        try:
            analysis = engine.analyze(ImageRef(args.image, args.mask), params, on_event=bar)
        finally:
            bar.close()
        stem = args.image.stem
        overlay(image, analysis.labels).save(args.out / f"{stem}_regions.png")
        np.save(args.out / f"{stem}_labels.npy", analysis.labels)
        info = summary(args, analysis)
        (args.out / f"{stem}_regions.json").write_text(json.dumps(info, indent=1))
        print(f"{count(len(info['regions']), 'region')} -> {args.out / (stem + '_regions.png')}")
    return 0
