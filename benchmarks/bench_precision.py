"""How far half precision moves stage 3's final latent from fp32, on full-size random-weight SD1.5 (CPU).

    python benchmarks/bench_precision.py [--size 128] [--steps 10 50] [--precisions fp32 bf16 fp16] [--threads 1]

The authors run stage 3 in fp16 (autocast + a dynamic loss scaler): the distance their own arithmetic puts between
an fp16 run and an fp32 run is the tolerance the method already lives with. This script measures it, and the
distance of bf16 (weights + autocast, no scaler), for each step count, as ||z - z_fp32|| / ||z_fp32|| of the final
latent and as that difference over how far fp32 moved z from its start ("/moved"). Each half-precision run holds
the UNet and VAE in its own dtype, as the app does.

Models: SD1.5's UNet, VAE and text encoder built from their real configs with seeded random weights, in memory
(nothing saved). Scene: the content is a benchmark photo's VAE latent with 4 horizontal bands, each matched to a
half of one reference (as bench_stages.py); C15 (the start of the optimisation) is seeded noise instead of a
stage-1 inversion, which only changes where z starts. Runs `engine.stage3.stylize.stylize`, whose fp32 latent is
within 6e-5 of the SPEC-literal path (NOTES.md). CPU time is given beside the wall time (the machine is shared).
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.bench_stages import SD15_TEXT, SD15_UNET, SD15_VAE, photos, relative_l2, synthetic_scene  # noqa: E402
from engine.device import DTYPES, bf16_fast_on_cpu  # noqa: E402
from engine.images import resize_to  # noqa: E402
from engine.models import SD15_DDIM_CONFIG, SDModels  # noqa: E402
from engine.params import Stage3Params  # noqa: E402
from engine.stage1.inversion import encode_latent  # noqa: E402
from engine.stage3.stylize import initial_latent, stylize  # noqa: E402
from benchmarks.model_folders import calibrate_vae  # noqa: E402

EMPTY_PROMPT_IDS = [49406] + [49407] * 76  # SD1.5's tokenizer on ""


def build_sd() -> tuple[SDModels, torch.Tensor]:
    """Seeded random SD1.5 UNet, VAE (calibrated to SD1.5's latent spread) and text encoder; the empty-prompt
    embeddings."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(0)
    unet = UNet2DConditionModel(**SD15_UNET).eval().requires_grad_(False)
    vae = AutoencoderKL(**SD15_VAE).eval().requires_grad_(False)
    calibrate_vae(vae)
    text = CLIPTextModel(CLIPTextConfig(**SD15_TEXT)).eval()
    with torch.no_grad():
        embeds = text(torch.tensor([EMPTY_PROMPT_IDS])).last_hidden_state
    return SDModels(unet, vae, None, None, dict(SD15_DDIM_CONFIG), "random-sd15"), embeds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128, help="image side (latent side = size / 8)")
    parser.add_argument("--steps", type=int, nargs="+", default=[10, 50])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16", "fp16"], choices=["fp32", "bf16", "fp16"],
                        help="fp32 always runs first (the others are measured against it); fp16 on a CPU without "
                             "native fp16 arithmetic is slow: 18x fp32's CPU time at 128 px on AVX-512")
    parser.add_argument("--json", type=Path, default=Path("bench_precision.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    report = {"size": args.size, "threads": args.threads, "torch": torch.__version__, "random_weights": True,
              "cpu_capability": torch.backends.cpu.get_cpu_capability(), "bf16_fast": bf16_fast_on_cpu(),
              "load_average_start": os.getloadavg()[0], "rows": []}
    print(f"# precision | {args.size}x{args.size} ({args.size // 8}x{args.size // 8} latent), 1 reference, threads "
          f"{args.threads}, CPU {report['cpu_capability']}, AMX bf16 detected: {report['bf16_fast']}, load "
          f"{report['load_average_start']:.1f} | RANDOM WEIGHTS")
    sd, embeds = build_sd()
    content, reference = photos(1)
    with torch.no_grad():
        latents = [encode_latent(sd.vae, resize_to(image, (args.size, args.size)))[0].numpy() for image in (content, reference)]
    c15 = torch.randn(latents[0].shape, generator=torch.Generator().manual_seed(1)).numpy()
    scene = synthetic_scene(latents[0], c15, latents[1:], args.size // 8)
    start_latent = initial_latent(c15)[0].numpy()

    def models_in(precision: str):
        """The models held in `precision` (a copy for half precision, made when needed and dropped after)."""
        if precision == "fp32":
            return sd
        return dataclasses.replace(sd, unet=copy.deepcopy(sd.unet).to(DTYPES[precision]),
                                   vae=copy.deepcopy(sd.vae).to(DTYPES[precision]))

    print("| steps | precision | wall s | CPU s | rel L2 to fp32 | /moved | skipped (scaler) |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for steps in args.steps:
        finals = {}
        for precision in ["fp32"] + [p for p in args.precisions if p != "fp32"]:
            params = Stage3Params(steps=steps, preview_every=0, precision=precision)
            wall, cpu = time.perf_counter(), time.process_time()
            outcome = stylize(models_in(precision), embeds, *scene, params)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            finals[precision] = np.asarray(outcome.latent, dtype=np.float32)
            row = {"steps": steps, "precision": precision, "seconds": wall, "cpu_s": cpu,
                   "skipped_steps": outcome.skipped_steps}
            if precision != "fp32":
                row["rel_l2_to_fp32"] = relative_l2(finals[precision], finals["fp32"])
                row["over_moved"] = float(np.linalg.norm(finals[precision] - finals["fp32"])
                                          / np.linalg.norm(finals["fp32"] - start_latent))
            report["rows"].append(row)
            diff = f"{row['rel_l2_to_fp32']:.2e} | {row['over_moved']:.2e}" if precision != "fp32" else "- | -"
            print(f"| {steps} | {precision} | {wall:.1f} | {cpu:.1f} | {diff} | {outcome.skipped_steps} |", flush=True)
            args.json.write_text(json.dumps(report, indent=2))
    report["load_average_end"] = os.getloadavg()[0]
    args.json.write_text(json.dumps(report, indent=2))
    print(f"load average at end {report['load_average_end']:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
