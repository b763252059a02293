"""`main.py run`: the whole method on one content image and one or more references.

Writes OUT.png (with the job's parameters in its PNG metadata) and OUT.json (matches with scores, pins,
per-step losses). Ctrl-C cancels: the partial result is written, marked as cancelled, and the exit code is 130.
"""
from __future__ import annotations

import argparse
import threading
from pathlib import Path

from .common import (ProgressBar, add_engine_args, add_size_args, engine_from_args, output_params, parse_pin,
                     report_errors, size_params)


def add_parser(subparsers) -> None:
    from engine.params import Stage3Params

    defaults = Stage3Params()
    parser = subparsers.add_parser("run", help="restyle a photo after one or more references")
    parser.add_argument("--content", required=True, type=Path, help="the photo to restyle")
    parser.add_argument("--style", required=True, nargs="+", type=Path, help="style references (0, 1, ... in order)")
    parser.add_argument("--pin", action="append", type=parse_pin, default=[], metavar="REGION=REF[:REGION]",
                        help="take content REGION's style from reference REF (its region, or all of it)")
    parser.add_argument("--out", required=True, type=Path, help="output PNG (a .json beside it gets the details)")
    parser.add_argument("--steps", type=int, default=defaults.steps)
    parser.add_argument("--lr", type=float, default=defaults.lr)
    parser.add_argument("--content-weight", type=float, default=defaults.content_weight)
    parser.add_argument("--iters", type=int, default=defaults.iters_per_step, help="optimiser steps per timestep")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--fast", choices=["none", "lcm", "hyper"], default="none",
                        help="fast mode (LoRA + its schedule; overrides steps, iters, lr and content weight)")
    parser.add_argument("--no-depth", action="store_true", help="skip the depth split in stage 1")
    add_size_args(parser, output=True)
    add_engine_args(parser)


def build_request(args: argparse.Namespace):
    """The TransferRequest the options describe."""
    from engine.params import Stage1Params, Stage3Params, stage3_for_fast_mode
    from engine.types import ImageRef, TransferRequest

    stage3 = Stage3Params(steps=args.steps, lr=args.lr, content_weight=args.content_weight,
                          iters_per_step=args.iters, seed=args.seed)
    if args.fast != "none":
        stage3 = stage3_for_fast_mode(args.fast, stage3)
    return TransferRequest(content=ImageRef(args.content), references=[ImageRef(p) for p in args.style],
                           pins=list(args.pin), stage1=Stage1Params(use_depth=not args.no_depth, **size_params(args)),
                           stage3=stage3, output=output_params(args))


def run(args: argparse.Namespace) -> int:
    from engine.results import save_result

    cancel = threading.Event()
    progress = ProgressBar()
    with report_errors():
        request = build_request(args)
        engine = engine_from_args(args)
        try:
            result = engine.transfer(request, on_event=progress, cancel=cancel)
        except KeyboardInterrupt:
            cancel.set()  # a second run is not started; the engine returns at its next check
            raise
        finally:
            progress.close()
        save_result(args.out, request, result, model=engine.models.model_id("sd"))
    state = "cancelled after" if result.cancelled else "finished in"
    width, height = result.output_size
    print(f"{args.out}: {width}x{height} ({result.upscale} from {result.working_size[0]}x{result.working_size[1]}), "
          f"{state} {result.steps_done}/{result.steps_total} steps, {result.seconds:.1f} s")
    return 130 if result.cancelled else 0
