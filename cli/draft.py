"""`stylegallery draft`: an instant draft (Magenta arbitrary stylisation per region) written as a PNG plus JSON.

Regions and matches are the method's (stage 1 and 2, pins included: what `run` with the same options will use)
when its models are here without a download, else the quick classical stand-ins; the output says which. Saved
stage-1 labels (.npy) and a stage-2 assignment (JSON) can be fed in instead. Needs the optional `draft` extra.
Several photos or a folder make a batch (cli/batch.py): one draft per photo in the `--out` folder.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from engine.params import DRAFT_MAX_SIZE, DRAFT_MIN_SIZE, DraftParams
from engine.wording import count

from .batch import add_content_arg, is_batch, prepare_batch, run_batch
from .common import (ProgressBar, add_engine_args, add_mask_arg, add_size_args, add_working_size_arg, content_ref,
                     engine_from_args, parse_pin, report_errors, size_params)

DEFAULTS = DraftParams()


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "draft", help="instant draft: a fast CPU preview of the restyle (needs the draft extra)",
        description="Draft the restyle in about a second: one Magenta arbitrary-stylisation pass per matched "
                    "reference (or reference region), composited region by region. References count from 0.")
    add_content_arg(parser)
    parser.add_argument("--style", required=True, nargs="+", type=Path, help="reference images (0, 1, ...)")
    parser.add_argument("--pin", action="append", default=[], type=parse_pin, metavar="REGION=REF[:REGION]",
                        help="give a content region one reference, or one region of it (repeatable)")
    parser.add_argument("--strength", type=float, default=DEFAULTS.strength,
                        help=f"0..1: 0 keeps the photo's own style (default {DEFAULTS.strength:g})")
    parser.add_argument("--preserve-colour", action="store_true",
                        help="keep the photo's colours, take the style's brightness")
    parser.add_argument("--size", type=int, default=DEFAULTS.size,
                        help=f"long side in pixels, a multiple of 4 from {DRAFT_MIN_SIZE} to {DRAFT_MAX_SIZE} "
                             f"(default {DEFAULTS.size})")
    parser.add_argument("--regions", choices=["auto", "method", "quick"], default="auto",
                        help="method: stage 1 regions and stage 2 matches (loads, or downloads, the models); "
                             "quick: classical regions and quick matching; auto (default): method when its "
                             "models are here without a download, else quick")
    parser.add_argument("--no-depth", action="store_true", help="skip the depth split in stage 1 (as run --no-depth)")
    add_mask_arg(parser)
    parser.add_argument("--labels", type=Path,
                        help="a saved stage-1 region map (.npy, e.g. from analyze) instead of --regions")
    parser.add_argument("--assignment", type=Path,
                        help='stage-2 matches as JSON {"REGION": REF, ...} (needs --labels); default: quick matching')
    parser.add_argument("--out", required=True, type=Path,
                        help="output PNG; the JSON goes beside it (.json); with several photos, a folder")
    add_working_size_arg(parser)  # the method's regions (with the models): the same working size as `run`
    add_size_args(parser)
    add_engine_args(parser)


def run(args) -> int:
    from engine.errors import InvalidRequest
    from engine.outputs import check_output_file

    with report_errors():
        if args.labels is not None and args.regions != "auto":
            raise InvalidRequest("--labels gives the regions itself: leave out --regions")
        if args.assignment is not None and args.labels is None:
            raise InvalidRequest("--assignment needs the --labels it refers to")
        if args.mask is not None and (args.labels is not None or args.regions == "quick"):
            raise InvalidRequest("--mask edits the method's regions: leave out --labels and --regions quick")
        if is_batch(args.content):
            return draft_several(args)
        check_output_file(args.out, "--out file")
        draft_one(engine_from_args(args), args, args.content[0], args.out)
    return 0


def draft_several(args) -> int:
    """A batch: the references and the --out folder are checked once, then each photo in turn."""
    from engine.errors import InvalidRequest

    if args.labels is not None or args.mask is not None:
        raise InvalidRequest("--labels and --mask are the regions of one photo: leave them out with several photos")
    photos, outputs = prepare_batch(args)
    engine = engine_from_args(args)
    return run_batch(photos, outputs, lambda photo, out: draft_one(engine, args, photo, out))


def draft_one(engine, args, photo: Path, out: Path) -> bool:
    """Draft one photo, write its PNG and JSON and print what it used; True (a draft has no partial result)."""
    from engine.models import random_weights
    from engine.recipe import inputs_document
    from engine.results import save_png

    bar = ProgressBar()
    try:
        result = (_saved_regions_draft(engine, args, photo, bar) if args.labels is not None
                  else _draft(engine, args, photo, bar))
    finally:
        bar.close()
    meta = result.metadata()
    if result.region_source == "method" and random_weights(engine.source):
        meta["regions"]["random_weights"] = True  # regions from RANDOM-WEIGHT test models: say so, as the window does
    meta["inputs"] = inputs_document(photo, args.style)  # names and pixel hashes, never paths
    save_png(out, result.image, meta)
    json_path = out.with_suffix(".json")
    json_path.write_text(json.dumps(meta, indent=2) + "\n")
    for line in summary(meta, args.style):
        print(line)
    if args.regions == "auto" and args.labels is None and result.region_source == "quick":
        print("the method's models (--model, --dinov2, --depth-model) are not here without a download: quick "
              "regions shown; --regions method fetches and uses them", file=sys.stderr)
    print(f"wrote {out} and {json_path} in {result.seconds:.2f} s", file=sys.stderr)
    return True


def _params(args) -> DraftParams:
    return DraftParams(size=args.size, strength=args.strength, preserve_colour=args.preserve_colour)


def _draft(engine, args, photo: Path, bar):
    from engine.params import Stage1Params
    from engine.types import DraftRequest, ImageRef

    stage1 = Stage1Params(use_depth=not args.no_depth, image_size=args.working_size, **size_params(args))
    regions = "method" if args.mask is not None else args.regions  # a mask is an edit of the method's regions
    request = DraftRequest(content_ref(photo, args.mask, stage1), [ImageRef(p) for p in args.style], args.pin,
                           regions=regions, stage1=stage1, draft=_params(args))
    return engine.draft(request, on_event=bar)


def _saved_regions_draft(engine, args, photo: Path, bar):
    """A draft on a region map (and assignment) saved earlier, e.g. by `analyze`: no model is loaded."""
    from engine.draft.labels import load_labels
    from engine.errors import InvalidRequest
    from engine.images import load_image

    labels = load_labels(args.labels)
    if any(pin.style_region is not None for pin in args.pin):
        raise InvalidRequest("with --labels the references have no regions to pin to: pin whole references "
                             "(REGION=REF)")
    assignment = None
    if args.assignment is not None:
        try:
            assignment = {int(k): int(v) for k, v in json.loads(args.assignment.read_text()).items()}
        except (ValueError, TypeError, AttributeError) as exc:
            raise InvalidRequest(f"{args.assignment} is not a JSON object of region -> reference ({exc})") from None
    return engine.drafter.draft(load_image(photo), [load_image(path) for path in args.style], _params(args),
                                labels=labels, assignment=assignment, pins=args.pin, on_event=bar)


def summary(meta: dict, references: list[Path]) -> list[str]:
    """Readable lines: which regions and matches were used (quick ones named as such), then one per region."""
    regions, matches = meta["regions"], meta["matches"]
    quick = regions["source"] == "quick"
    found = count(len(regions["by_id"]), "quick region" if quick else "region")
    kind = " (classical segmentation, not the method's stage 1)" if quick else " from the method (stage 1)"
    how = "quick matching (style vector + colour)" if matches["source"] == "quick" else "the method's matches (stage 2)"
    lines = [f"region source: {regions['source']}; {found}{kind}; references by {how}"]
    for region, match in matches["by_region"].items():
        where = regions["by_id"][region]
        part = "" if match["reference_region"] is None else f" region {match['reference_region']}"
        note = " (pinned)" if match["pinned"] else ""
        lines.append(f"  region {region}: {where['fraction']:.0%} of the image around "
                     f"({where['centre'][0]:.2f}, {where['centre'][1]:.2f}) -> reference {match['reference']} "
                     f"{references[match['reference']].name}{part}{note}")
    for ref, why in matches.get("unused_references", {}).items():
        lines.append(f"  reference {ref} {references[int(ref)].name} unused: {why}")
    return lines
