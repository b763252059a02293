"""`main.py run`: the whole method on one content image and one or more references.

Writes OUT.png (with the job's parameters in its PNG metadata) and OUT.json (matches with scores, pins,
per-step losses). `--recipe RESULT.png` runs a saved result again (engine/recipe.py). The output is checked before
any work; if saving still fails at the end, the finished result goes to a fallback folder and the error line says
where. Ctrl-C cancels: the optimisation stops at its next check and the partial result is written as
OUT-partial.png/.json (status "cancelled" in both); the exit code is 130. Ctrl-C during the analysis, which has no
partial result, just cancels.

Several photos or a folder (`--content A.jpg B.png`, `--content DIR`) make a batch (cli/batch.py): the models load
once and `--out` is the folder of the results, one per photo named after it.
"""
from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path

from .batch import add_content_arg, is_batch, prepare_batch, run_batch
from .common import (DefaultsHelpFormatter, ProgressBar, add_engine_args, add_mask_arg, add_size_args,
                     add_working_size_arg, content_ref, engine_from_args, output_params, parse_pin, report_errors,
                     size_params)

PARTIAL_SUFFIX = "-partial"


def add_parser(subparsers) -> None:
    from engine.params import Stage3Params

    defaults = Stage3Params()
    parser = subparsers.add_parser("run", help="restyle a photo after one or more references",
                                   formatter_class=DefaultsHelpFormatter)
    add_content_arg(parser, required=False)
    parser.add_argument("--style", nargs="+", type=Path, help="style references (0, 1, ... in order)")
    parser.add_argument("--recipe", type=Path, metavar="RESULT.png|RESULT.json",
                        help="run a saved result again: its references, pins, region edit and every parameter (the "
                             "options below are ignored); the photo is looked for next to it (or give --content), "
                             "the references in --gallery and next to it, each by its pixels' hash")
    parser.add_argument("--gallery", type=Path, metavar="DIR",
                        help="with --recipe: a folder (and its subfolders) holding the references")
    parser.add_argument("--pin", action="append", type=parse_pin, default=[], metavar="REGION=REF[:REGION]",
                        help="take content REGION's style from reference REF (its region, or all of it)")
    parser.add_argument("--out", required=True, type=Path,
                        help="output PNG (a .json beside it gets the details); with several photos, a folder")
    parser.add_argument("--steps", type=int, default=defaults.steps, help="DDIM timesteps of the optimisation")
    parser.add_argument("--lr", type=float, default=defaults.lr, help="learning rate of the latent optimiser")
    parser.add_argument("--content-weight", type=float, default=defaults.content_weight,
                        help="weight of the content loss against the style loss")
    parser.add_argument("--iters", type=int, default=defaults.iters_per_step, help="optimiser steps per timestep")
    parser.add_argument("--seed", type=int, default=defaults.seed, help="random seed")
    parser.add_argument("--fast", choices=["none", "lcm", "hyper"], default="none",
                        help="fast mode (LoRA + its schedule; overrides steps, iters, lr and content weight)")
    parser.add_argument("--no-depth", action="store_true", help="skip the depth split in stage 1")
    add_mask_arg(parser)
    add_working_size_arg(parser)
    parser.add_argument("--feature-batch", type=int, default=defaults.feature_batch, metavar="N",
                        help="images per reference-feature pass (0 = all at once); 1 or 2 lowers the peak memory "
                             "with many references")
    add_size_args(parser, output=True)
    add_engine_args(parser)


def build_request(args: argparse.Namespace, photo: Path):
    """The TransferRequest the options describe, for `photo`."""
    from engine.errors import InvalidRequest
    from engine.params import Stage1Params, Stage3Params, stage3_for_fast_mode
    from engine.types import ImageRef, TransferRequest

    if args.feature_batch < 0:
        raise InvalidRequest("--feature-batch must be 0 (all at once) or more")
    stage3 = Stage3Params(steps=args.steps, lr=args.lr, content_weight=args.content_weight,
                          iters_per_step=args.iters, seed=args.seed, feature_batch=args.feature_batch)
    if args.fast != "none":
        stage3 = stage3_for_fast_mode(args.fast, stage3)
    stage1 = Stage1Params(use_depth=not args.no_depth, image_size=args.working_size, **size_params(args))
    return TransferRequest(content=content_ref(photo, args.mask, stage1),
                           references=[ImageRef(p) for p in args.style], pins=list(args.pin), stage1=stage1,
                           stage3=stage3, output=output_params(args))


def recipe_request(args: argparse.Namespace):
    """The TransferRequest of the saved result `args.recipe`, its images found by hash (InvalidRequest naming what
    is missing)."""
    from engine.errors import InvalidRequest
    from engine.recipe import find_images, images_in, photo_candidates, read_recipe, resolve_recipe
    from engine.wording import count

    if args.style:
        raise InvalidRequest("--recipe brings its own references: leave out --style (use --gallery to say where "
                             "they are)")
    if args.content is not None and len(args.content) > 1:
        raise InvalidRequest("--recipe restyles its one photo: give at most one --content")
    recipe = read_recipe(args.recipe)
    beside = args.recipe.parent
    found = find_images(recipe.references, images_in(beside) + (images_in(args.gallery, recursive=True)
                                                                if args.gallery else []))
    resolution = resolve_recipe(recipe, found, photo_candidates(args.recipe),
                                content=args.content[0] if args.content else None)
    if resolution.request is None:
        raise InvalidRequest(f"The photo {recipe.content.name} of {args.recipe.name} is not next to it",
                             hint="Give it with --content PHOTO.")
    if resolution.missing:
        raise InvalidRequest(f"{count(len(resolution.missing), 'image')} of {args.recipe.name} not found: "
                             f"{resolution.missing_text()}", hint="Give the folder that holds them with --gallery DIR.")
    if not resolution.content_matches:
        print(f"stylegallery: {resolution.content.name} is not the photo {args.recipe.name} was made from: its pins "
              "and region edit are left out", file=sys.stderr)
    return resolution.request


def partial_path(out: Path) -> Path:
    """Where a cancelled run's partial result goes: OUT-partial.png, never the finished result's name."""
    return out.with_name(out.stem + PARTIAL_SUFFIX + ".png")


def transfer_until_interrupted(engine, request, on_event):
    """`engine.transfer` on a worker thread, so Ctrl-C (delivered to this thread) sets the cancel flag and the
    run returns its partial result at the next check instead of vanishing with the exception."""
    cancel, done = threading.Event(), threading.Event()
    outcome: dict = {}

    def work() -> None:
        try:
            outcome["result"] = engine.transfer(request, on_event=on_event, cancel=cancel)
        except BaseException as exc:  # re-raised on the calling thread
            outcome["error"] = exc
        finally:
            done.set()

    # daemon: a second Ctrl-C ends the process. Waiting on an Event, not Thread.join: an interrupted join can
    # report a running thread as finished.
    threading.Thread(target=work, name="transfer", daemon=True).start()
    try:
        while not done.wait(0.2):
            pass
    except KeyboardInterrupt:
        cancel.set()
        print("\nstylegallery: cancelling at the next step (Ctrl-C again to quit at once)", file=sys.stderr)
        done.wait()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


def run(args: argparse.Namespace) -> int:
    from engine.outputs import check_output_file

    from engine.errors import InvalidRequest

    with report_errors():
        if args.recipe is not None:
            request = recipe_request(args)
        elif args.content is None or not args.style:
            raise InvalidRequest("run needs --content and --style (or --recipe, a saved result)")
        elif is_batch(args.content):
            return run_several(args)
        else:
            request = build_request(args, args.content[0])
        check_output_file(args.out, "--out file")
        check_output_file(partial_path(args.out), "--out file")
        finished = restyle(engine_from_args(args), request, args.out)
    return 0 if finished else 130


def run_several(args: argparse.Namespace) -> int:
    """A batch: options, references and the --out folder are checked once, then each photo in turn."""
    from engine.errors import InvalidRequest

    if args.mask is not None:
        raise InvalidRequest("--mask is the regions of one photo: leave it out with several photos")
    photos, outputs = prepare_batch(args)
    build_request(args, photos[0])  # bad options are refused before the work
    engine = engine_from_args(args)
    return run_batch(photos, outputs, lambda photo, out: restyle(engine, build_request(args, photo), out))


def restyle(engine, request, out: Path) -> bool:
    """Restyle one photo, save its result (or, after Ctrl-C, the partial one) and print its line; False when it was
    cancelled."""
    from engine.models import random_weights
    from engine.results import rescue_result, save_result

    progress = ProgressBar()
    try:
        result = transfer_until_interrupted(engine, request, progress)
    finally:
        progress.close()
    if result.cancelled:
        out = partial_path(out)
    model = engine.models.model_id("sd")
    random = random_weights(engine.source)
    try:
        save_result(out, request, result, model=model, random_weights=random)
    except OSError as exc:
        from engine.errors import OutputUnwritable, describe_os_error

        kept = rescue_result(out, request, result, model=model, random_weights=random)
        raise OutputUnwritable(f"{out} could not be written ({describe_os_error(exc)}); the result was saved "
                               f"to {kept} instead", hint="") from exc
    state = "cancelled after" if result.cancelled else "finished in"
    note = " (made by RANDOM-WEIGHT test models: no real style)" if random else ""
    width, height = result.output_size
    print(f"{out}: {width}x{height} ({result.upscale} from {result.working_size[0]}x{result.working_size[1]}), "
          f"{state} {result.steps_done}/{result.steps_total} steps, {result.seconds:.1f} s{note}")
    return not result.cancelled
