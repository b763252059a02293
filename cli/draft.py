"""`stylegallery draft`: an instant draft (Magenta arbitrary stylisation per region) written as a PNG plus JSON.

Without `--labels` the regions and matches are the quick classical stand-ins, and the output says so; stage-1
labels (.npy) and a stage-2 assignment (JSON) can be fed in instead. Needs the optional `draft` extra.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from .common import ProgressBar, parse_pin, report_errors


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "draft", help="instant draft: a fast CPU preview of the restyle (needs the draft extra)",
        description="Draft the restyle in about a second: one Magenta arbitrary-stylisation pass per matched "
                    "reference, composited region by region. References count from 0.")
    parser.add_argument("--content", required=True, type=Path, help="the photo to restyle")
    parser.add_argument("--style", required=True, nargs="+", type=Path, help="reference images (0, 1, ...)")
    parser.add_argument("--pin", action="append", default=[], type=parse_pin, metavar="REGION=REF[:REGION]",
                        help="give a content region one reference (repeatable); the draft uses the whole reference")
    parser.add_argument("--strength", type=float, default=1.0, help="0..1: 0 keeps the photo's own style (default 1)")
    parser.add_argument("--preserve-colour", action="store_true",
                        help="keep the photo's colours, take the style's brightness")
    parser.add_argument("--size", type=int, default=512,
                        help="long side in pixels, a multiple of 4 up to 1024 (default 512)")
    parser.add_argument("--labels", type=Path,
                        help="stage-1 region map (.npy, any HxW int map); default: quick regions")
    parser.add_argument("--assignment", type=Path,
                        help='stage-2 matches as JSON {"REGION": REF, ...} (needs --labels); default: quick matching')
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="where style vectors are kept (default: the user data folder)")
    parser.add_argument("--out", required=True, type=Path, help="output PNG; the JSON goes beside it (.json)")


def run(args) -> int:
    import numpy as np
    from PIL import Image

    from engine.draft import Drafter
    from engine.errors import InvalidRequest
    from engine.images import load_image

    with report_errors():
        labels = assignment = None
        if args.labels is not None:
            labels = np.load(args.labels, allow_pickle=False)
        if args.assignment is not None:
            try:
                assignment = {int(k): int(v) for k, v in json.loads(args.assignment.read_text()).items()}
            except (ValueError, TypeError, AttributeError) as exc:
                raise InvalidRequest(f"{args.assignment} is not a JSON object of region -> reference ({exc})") from None
        content = load_image(args.content)
        references = [load_image(path) for path in args.style]
        bar = ProgressBar()
        try:
            result = Drafter(cache_dir=args.cache_dir).draft(
                content, references, labels=labels, assignment=assignment, pins=args.pin, strength=args.strength,
                preserve_colour=args.preserve_colour, size=args.size, on_event=bar)
        finally:
            bar.close()
        args.out.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(result.image).save(args.out)
        meta = result.metadata()
        meta["inputs"] = {"content": str(args.content), "references": [str(p) for p in args.style]}
        json_path = args.out.with_suffix(".json")
        json_path.write_text(json.dumps(meta, indent=2) + "\n")
    for line in summary(meta, args.style):
        print(line)
    print(f"wrote {args.out} and {json_path} in {result.seconds:.2f} s", file=sys.stderr)
    return 0


def summary(meta: dict, references: list[Path]) -> list[str]:
    """Readable lines: one per region, quick regions and matches named as such."""
    regions, matches = meta["regions"], meta["matches"]
    kind = ("quick regions (classical segmentation, not the method's stage 1)" if regions["source"] == "quick"
            else "regions from the method (stage 1)")
    how = "quick matching (style vector + colour)" if matches["source"] == "quick" else "the method's matches (stage 2)"
    lines = [f"{len(regions['by_id'])} {kind}; references by {how}"]
    for region, match in matches["by_region"].items():
        where = regions["by_id"][region]
        note = " (pinned)" if match["pinned"] else ""
        lines.append(f"  region {region}: {where['fraction']:.0%} of the image around "
                     f"({where['centre'][0]:.2f}, {where['centre'][1]:.2f}) -> reference {match['reference']} "
                     f"{references[match['reference']].name}{note}")
    return lines
