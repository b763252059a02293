"""Shared CLI plumbing: engine errors to one readable line, and a text progress bar for StepEvents."""
from __future__ import annotations

import argparse
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from engine.errors import Cancelled, StyleGalleryError, describe_os_error
from engine.types import StepEvent


class DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """`--help` shows each option's default, except where there is none worth showing (required options, flags,
    empty lists, unset values)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        default = action.default
        if action.required or default is None or default is False or default == [] or default is argparse.SUPPRESS:
            return action.help
        return super()._get_help_string(action)


@contextmanager
def report_errors() -> Iterator[None]:
    """Turn engine errors, bad files and Ctrl-C into one line on stderr and a non-zero exit."""
    try:
        yield
    except Cancelled:
        print("stylegallery: cancelled", file=sys.stderr)
        raise SystemExit(130) from None
    except StyleGalleryError as exc:
        hint = f" ({exc.hint})" if exc.hint else ""
        print(f"stylegallery: error: {exc}{hint}", file=sys.stderr)
        raise SystemExit(2) from None
    except OSError as exc:  # full disk, read-only folder, permissions, over-long names, ...
        print(f"stylegallery: error: {describe_os_error(exc)}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        print("stylegallery: cancelled", file=sys.stderr)
        raise SystemExit(130) from None


class ProgressBar:
    """A tqdm bar per stage, fed by StepEvents (callback for Engine calls)."""

    def __init__(self) -> None:
        self._bars: dict[str, object] = {}

    def __call__(self, event: StepEvent) -> None:
        from tqdm import tqdm

        bar = self._bars.get(event.stage)
        if bar is None:
            bar = self._bars[event.stage] = tqdm(total=event.total, desc=event.stage, unit="step",
                                                 file=sys.stderr, leave=True, dynamic_ncols=True)
        bar.n = event.step
        if event.loss is not None:
            bar.set_postfix(loss=f"{event.loss:.4f}", refresh=False)
        bar.refresh()

    def close(self) -> None:
        for bar in self._bars.values():
            bar.close()
        self._bars.clear()


def add_engine_args(parser) -> None:
    """Model, device and cache options shared by every command that runs the engine."""
    from engine.cache import DEFAULT_BUDGET_BYTES
    from engine.params import DEFAULT_DINOV2_SOURCE, DEFAULT_SD_SOURCE, DEPTH_SOURCES

    group = parser.add_argument_group("models and device")
    group.add_argument("--model", default=DEFAULT_SD_SOURCE,
                       help="Stable Diffusion 1.5: hub id, diffusers folder or .safetensors file")
    group.add_argument("--model-config", default=DEFAULT_SD_SOURCE,
                       help="for a single-file checkpoint: hub id or diffusers folder supplying configs and tokenizer")
    group.add_argument("--dinov2", default=DEFAULT_DINOV2_SOURCE, help="DINOv2 hub id or folder")
    group.add_argument("--depth-model", default=DEPTH_SOURCES["large"], help="Depth Anything V2 hub id or folder")
    group.add_argument("--offline", action="store_true", help="never touch the network (HF cache and local files only)")
    group.add_argument("--allow-pickle", action="store_true", help="allow pickled .ckpt checkpoints (runs their code)")
    group.add_argument("--device", default="auto", help="auto, cuda, cpu or a torch device string")
    group.add_argument("--precision", default="auto", choices=["auto", "fp32", "fp16", "bf16"],
                       help="precision the models run in (auto: fp16 on a CUDA GPU, else fp32)")
    group.add_argument("--cache-dir", default=None,
                       help="stage cache folder (default: $STYLEGALLERY_CACHE, else the user cache folder, as the "
                            "window's)")
    group.add_argument("--cache-budget", type=cache_budget, default=DEFAULT_BUDGET_BYTES, metavar="GB",
                       help=f"the cache's size limit; the least recently used entries go first "
                            f"(default {DEFAULT_BUDGET_BYTES >> 30} GB)")
    group.add_argument("--no-cache", action="store_true", help="recompute everything, even if a cached result exists")


def cache_budget(text: str) -> int:
    """--cache-budget: gigabytes (2**30 bytes, a decimal allowed) -> bytes, within CACHE_BUDGET_GB_RANGE."""
    from engine.cache import CACHE_BUDGET_GB_RANGE

    low, high = CACHE_BUDGET_GB_RANGE
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not low <= value <= high:
        raise argparse.ArgumentTypeError(f"cache budget {text!r} is not a number of GB from {low} to {high}")
    return int(value * (1 << 30))


MAX_WORKING_SIZE = 2048  # a sanity bound for the option, far above what fits a consumer GPU


def working_size(text: str) -> int:
    """--working-size: a multiple of Stage1Params.size_multiple (the UNet halves the latent three times), up to
    MAX_WORKING_SIZE."""
    from engine.params import Stage1Params

    step = Stage1Params().size_multiple
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not (step <= value <= MAX_WORKING_SIZE and value % step == 0):
        raise argparse.ArgumentTypeError(f"working size {text!r} is not a multiple of {step} from {step} to "
                                         f"{MAX_WORKING_SIZE}")
    return value


def add_working_size_arg(parser) -> None:
    """--working-size: the size the method works at (Stage1Params.image_size); smaller is faster and uses less
    memory, with coarser regions."""
    from engine.params import Stage1Params

    parser.add_argument("--working-size", type=working_size, default=Stage1Params().image_size, metavar="PIXELS",
                        help="the method works at about PIXELS x PIXELS of area in the photo's shape (the side of "
                             "the square with --size-policy square; a multiple of 64); smaller is faster and needs "
                             "less memory, with coarser regions")


def add_size_args(parser, output: bool = False) -> None:
    """The working size (--size-policy, --max-side) and, for commands that write a result, its size and way."""
    from engine.params import MAX_SIDE_RANGE, OutputParams, Stage1Params

    stage1, out = Stage1Params(), OutputParams()
    group = parser.add_argument_group("size")
    group.add_argument("--size-policy", choices=["aspect", "square"], default=stage1.size_policy,
                       help="aspect: the method works at the photo's aspect ratio, about 512x512 of area (default); "
                            "square: the authors' 512x512 resize (the photo is squashed)")
    group.add_argument("--max-side", type=int, default=stage1.max_side, metavar="PX",
                       help=f"longest side of the working size under --size-policy aspect, {MAX_SIDE_RANGE[0]}-"
                            f"{MAX_SIDE_RANGE[1]}, a multiple of {stage1.size_multiple} (default {stage1.max_side})")
    if output:
        group.add_argument("--output-size", default="photo", metavar="photo|working|PX",
                           help=f"the result's size: the photo's own (default, long side at most {out.max_side}), "
                                "the method's working size, or a long side in pixels (never more than the photo's)")
        group.add_argument("--upscale", choices=["auto", "refine", "fast"], default=out.upscale,
                           help="how the result reaches the photo's size: refine continues the optimisation on a "
                                "larger grid (a GPU's job), fast resamples guided by the photo; auto = refine on "
                                "CUDA, fast otherwise")


def size_params(args) -> dict:
    """Stage1Params fields from `add_size_args` options (raises InvalidRequest on a bad value)."""
    from engine.errors import InvalidRequest
    from engine.params import MAX_SIDE_RANGE, Stage1Params

    multiple = Stage1Params().size_multiple
    if not MAX_SIDE_RANGE[0] <= args.max_side <= MAX_SIDE_RANGE[1] or args.max_side % multiple:
        raise InvalidRequest(f"--max-side must be a multiple of {multiple} from {MAX_SIDE_RANGE[0]} to "
                             f"{MAX_SIDE_RANGE[1]}, got {args.max_side}")
    return {"size_policy": args.size_policy, "max_side": args.max_side}


def output_params(args):
    """OutputParams from `add_size_args(output=True)` options (raises InvalidRequest on a bad size)."""
    from engine.errors import InvalidRequest
    from engine.params import OutputParams

    size = args.output_size
    if size not in ("photo", "working"):
        if not size.isdigit() or int(size) < 16:
            raise InvalidRequest(f"--output-size must be photo, working or a long side of at least 16 pixels, "
                                 f"got {size!r}")
        size = int(size)
    return OutputParams(size=size, upscale=args.upscale)


def add_mask_arg(parser) -> None:
    """--mask: a hand edit of the content's regions, applied to stage 1's final map (engine/stage1/edits.py)."""
    parser.add_argument("--mask", type=Path, default=None, metavar="LABELS.png",
                        help="your own regions on top of the automatic ones: a label PNG at the photo's size or the "
                             "working size, one grey value per region (0 = keep the automatic region; the window's "
                             "export), or analyze --mask's colours (black = keep)")


def content_ref(path: Path, mask: Path | None, stage1):
    """The content ImageRef with --mask read as a region edit: the photo and the mask are opened (and refused with a
    readable error for a wrong size or too many labels) before any model loads."""
    from engine.images import load_image
    from engine.stage1.edits import read_label_png
    from engine.types import ImageRef

    if mask is None:
        return ImageRef(path)
    photo = load_image(path)
    return ImageRef(path, region_edit=read_label_png(load_image(mask, colour_managed=False), photo.size, stage1))


def engine_from_args(args):
    """An Engine built from `add_engine_args` options."""
    from pathlib import Path

    from engine.api import Engine
    from engine.params import ModelSource

    source = ModelSource(sd=args.model, dinov2=args.dinov2, depth=args.depth_model, offline=args.offline,
                         allow_pickle=args.allow_pickle, single_file_config=args.model_config)
    engine = Engine(source, device=args.device, precision=args.precision,
                    cache_dir=Path(args.cache_dir) if args.cache_dir else None, use_cache=not args.no_cache,
                    cache_budget=args.cache_budget)
    if engine.cache is not None:
        engine.cache.check_writable()  # before the work, which would otherwise end on the cache write
    return engine


def parse_pin(text: str):
    """'REGION=REF' (whole reference) or 'REGION=REF:REGION' -> Pin; references count from 0."""
    import argparse

    from engine.types import Pin

    try:
        region, target = text.split("=", 1)
        ref, _, style_region = target.partition(":")
        return Pin(int(region), int(ref), int(style_region) if style_region else None)
    except ValueError:
        raise argparse.ArgumentTypeError(f"pin {text!r} is not REGION=REF or REGION=REF:REGION") from None
