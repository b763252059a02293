"""Stage 1 per image on the full-size random-weight SD1.5 UNet, quiet and beside a second CPU-bound process.

    python benchmarks/bench_stage1.py [--size 256] [--images 2] [--threads N]

Times the pieces of `analyze_images` without depth: the VAE encode, the 15-step DDIM inversion (one image at a
time, then all `--images` as one batch) and steps 4-10 (the k-means sweep k = 2..10 with 10 restarts and the
silhouettes, then the merges). Every row is run twice: "quiet" (only this
process) and "busy" (a second process spinning on one core for the whole row). Wall and process CPU seconds;
the load average is printed: on a shared machine "quiet" means only that this benchmark added nothing.
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.bench_precision import build_sd  # noqa: E402
from benchmarks.bench_stages import photos  # noqa: E402
from engine.images import resize_to  # noqa: E402
from engine.params import Stage1Params, working_size  # noqa: E402
from engine.stage1.inversion import ddim_invert_batch, encode_latent  # noqa: E402
from engine.stage1.segment import segment  # noqa: E402


def spin(stop) -> None:
    """A CPU-bound loop until `stop` is set (the "second process")."""
    x = 0
    while not stop.is_set():
        for _ in range(100_000):
            x = (x * 31 + 7) % 1_000_003


@contextmanager
def second_process(busy: bool) -> Iterator[None]:
    if not busy:
        yield
        return
    stop = multiprocessing.Event()
    process = multiprocessing.Process(target=spin, args=(stop,), daemon=True)
    process.start()
    try:
        yield
    finally:
        stop.set()
        process.join(10)


def timed(work) -> tuple[object, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    result = work()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--images", type=int, default=2)
    parser.add_argument("--threads", type=int)
    parser.add_argument("--modes", nargs="+", default=["quiet", "busy"], choices=["quiet", "busy"])
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    params = Stage1Params(image_size=args.size, use_depth=False)
    sd, embeds = build_sd()
    images = [resize_to(image, working_size(*image.size, params)) for image in photos(args.images - 1)]
    alphas = sd.ddim_scheduler().alphas_cumprod
    print(f"# stage 1 | {args.size} px, {args.images} images, torch threads {torch.get_num_threads()}, "
          f"load average {os.getloadavg()[0]:.1f} | RANDOM WEIGHTS (full-size SD1.5 UNet and VAE)")
    print("| mode | piece | wall s | CPU s |")
    print("| --- | --- | --- | --- |")
    for mode in args.modes:
        with second_process(mode == "busy"), torch.no_grad():
            latents, wall, cpu = timed(lambda: torch.cat([encode_latent(sd.vae, image) for image in images]))
            print(f"| {mode} | VAE encode, per image | {wall / len(images):.1f} | {cpu / len(images):.1f} |", flush=True)
            inversion, wall, cpu = timed(lambda: ddim_invert_batch(sd.unet, latents[:1], embeds, alphas, params))
            print(f"| {mode} | inversion, one image | {wall:.1f} | {cpu:.1f} |", flush=True)
            _, wall, cpu = timed(lambda: ddim_invert_batch(sd.unet, latents, embeds, alphas, params))
            print(f"| {mode} | inversion, {len(images)} as one batch, per image | {wall / len(images):.1f} | "
                  f"{cpu / len(images):.1f} |", flush=True)
            fmix, latent = inversion[0].fmix, latents[0]
            _, wall, cpu = timed(lambda: segment(fmix, latent, None, params))
            print(f"| {mode} | steps 4-10 (k-means sweep, silhouettes, merges) | {wall:.1f} | {cpu:.1f} |", flush=True)
    print(f"load average at end {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
