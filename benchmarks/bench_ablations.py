"""Each stage-3 optimisation on its own, A against B in one process, on the full-size SD1.5 UNet (RANDOM weights).

    python benchmarks/bench_ablations.py [--device auto] [--grid N] [--refs 3] [--repeats 3] [--compile]
        [--json ablations.json]

A and B alternate `--repeats` times after one warm-up each; the table gives the median wall and CPU seconds.
  feature passes   1 + R separate no-grad UNet calls (the reference) / one batch / one batch stopped before the
                   last recorded layer's attention (stop="qkv", the engine)
  z pass           forward + backward to the latent, full UNet / stopped after the last recorded attention
  attention        SPEC's softmax(QK^T/sqrt d)V written out / F.scaled_dot_product_attention, at layer 13's shape
                   (8 heads, 40 wide), no-grad (style targets) and with backward (the recorded z pass)
  precision        z pass and feature batch with the weights in fp32 / in bf16 (CPU) or fp16 (CUDA) under autocast
  compile          (--compile) the no-grad batch under torch.compile: compile time, then per call
Defaults: a 64x64 latent grid (512 px) on a GPU, 16x16 (128 px) on the CPU, where weight reads dominate.
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: the repository first

from benchmarks.bench_stages import SD15_UNET  # noqa: E402
from engine.stage3.attention import FeatureStore, capture_self_attention, forward_until_recorded  # noqa: E402
from engine.device import DTYPES, pick_device  # noqa: E402
from engine.stage3.features import autocast_for  # noqa: E402

LAYERS = (10, 11, 12, 13, 14, 15)


def clock(device: torch.device, fn) -> tuple[float, float]:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - wall, time.process_time() - cpu


def compare(device: torch.device, variants: dict, repeats: int) -> dict:
    """Median wall / CPU seconds of each variant, run in turn `repeats` times after a warm-up."""
    for fn in variants.values():
        fn()
    samples = {name: [] for name in variants}
    for _ in range(repeats):
        for name, fn in variants.items():
            samples[name].append(clock(device, fn))
    return {name: {"seconds": statistics.median(s[0] for s in runs), "cpu_s": statistics.median(s[1] for s in runs)}
            for name, runs in samples.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--grid", type=int, help="latent side (default 64 on a GPU, 16 on the CPU)")
    parser.add_argument("--refs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--compile", action="store_true", help="also time torch.compile (slow to compile on CPU)")
    parser.add_argument("--threads", type=int)
    parser.add_argument("--json", type=Path, default=Path("ablations.json"))
    args = parser.parse_args()
    device = pick_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    grid = args.grid or (64 if device.type == "cuda" else 16)
    half = "fp16" if device.type == "cuda" else "bf16"

    from diffusers import UNet2DConditionModel

    torch.manual_seed(0)
    unet = UNet2DConditionModel(**SD15_UNET).eval().requires_grad_(False).to(device)
    half_unet = copy.deepcopy(unet).to(DTYPES[half])
    gen = torch.Generator().manual_seed(1)
    latents = torch.randn(1 + args.refs, 4, grid, grid, generator=gen).to(device)
    embeds = torch.randn(1, 77, 768, generator=gen).to(device)
    t = torch.tensor(401.0, device=device)

    def features(model, batch: torch.Tensor, stop: str = "none", precision: str = "fp32") -> None:
        store = FeatureStore()
        with torch.no_grad(), capture_self_attention(model, LAYERS, store, stop=stop), autocast_for(device, precision):
            forward_until_recorded(model, batch, t, encoder_hidden_states=embeds.expand(len(batch), -1, -1))

    def z_pass(model, stop: str = "none", precision: str = "fp32") -> None:
        z = latents[:1].clone().requires_grad_(True)
        store = FeatureStore()
        with capture_self_attention(model, LAYERS, store, stop=stop), autocast_for(device, precision):
            forward_until_recorded(model, z, t, encoder_hidden_states=embeds)
        loss = sum(store[i].query.float().abs().mean() + store[i].out.float().abs().mean() for i in LAYERS)
        torch.autograd.grad(loss, [z])

    tokens, heads, width = (grid // 2 * 2) ** 2, 8, 40  # layer 13: the latent grid, 8 heads of 40
    q, k, v = (torch.randn(1, heads, tokens, width, generator=gen).to(device) for _ in range(3))

    def explicit(grad: bool) -> None:
        qq = q.clone().requires_grad_(grad)
        out = torch.softmax(qq @ k.transpose(-1, -2) / math.sqrt(width), dim=-1) @ v
        if grad:
            out.abs().mean().backward()

    def fused(grad: bool) -> None:
        qq = q.clone().requires_grad_(grad)
        out = F.scaled_dot_product_attention(qq, k, v)
        if grad:
            out.abs().mean().backward()

    report = {"device": str(device), "grid": grid, "refs": args.refs, "repeats": args.repeats, "half": half,
              "threads": torch.get_num_threads(), "load_average_start": os.getloadavg()[0], "random_weights": True}
    print(f"{device} | latent {grid}x{grid}, {args.refs} references, {args.repeats} repeats, threads "
          f"{report['threads']}, load average {report['load_average_start']:.1f} | RANDOM WEIGHTS")
    groups = {
        "feature passes": {
            "separate": lambda: [features(unet, latents[i:i + 1]) for i in range(len(latents))],
            "batched": lambda: features(unet, latents),
            "batched+stop": lambda: features(unet, latents, stop="qkv"),
        },
        "z pass": {"full": lambda: z_pass(unet), "stop": lambda: z_pass(unet, stop="out")},
        "attention, no grad": {"explicit": lambda: explicit(False), "sdpa": lambda: fused(False)},
        "attention, backward": {"explicit": lambda: explicit(True), "sdpa": lambda: fused(True)},
        "z pass precision": {"fp32": lambda: z_pass(unet, "out"), half: lambda: z_pass(half_unet, "out", half)},
        "feature precision": {"fp32": lambda: features(unet, latents, "qkv"),
                              half: lambda: features(half_unet, latents, "qkv", half)},
    }
    results = {}
    for group, variants in groups.items():
        with torch.no_grad() if "no grad" in group else torch.enable_grad():
            results[group] = compare(device, variants, args.repeats)
        print_group(group, results[group])
    if args.compile:
        results["compile"] = time_compile(device, unet, latents, embeds, t, args.repeats)
        print_group("compile (no-grad batch, stock processors)", {k: v for k, v in results["compile"].items()
                                                                   if k != "compile_s"})
        print(f"  compile + first call: {results['compile']['compile_s']:.1f} s")
    report["results"] = results
    report["load_average_end"] = os.getloadavg()[0]
    args.json.write_text(json.dumps(report, indent=2))
    print(f"load average at end {report['load_average_end']:.1f}; JSON written to {args.json}")
    return 0


def time_compile(device, unet, latents, embeds, t, repeats: int) -> dict:
    """torch.compile of the plain UNet (stock processors): compile time, then eager against compiled."""
    compiled = torch.compile(unet)
    context = embeds.expand(len(latents), -1, -1)
    with torch.no_grad():
        compile_s = clock(device, lambda: compiled(latents, t, encoder_hidden_states=context))[0]
        result = compare(device, {"eager": lambda: unet(latents, t, encoder_hidden_states=context),
                                  "compiled": lambda: compiled(latents, t, encoder_hidden_states=context)}, repeats)
    return {**result, "compile_s": compile_s}


def print_group(group: str, rows: dict) -> None:
    first = next(iter(rows.values()))
    print(f"\n{group}")
    for name, row in rows.items():
        print(f"  {name:<14} {row['seconds']:8.3f} s  CPU {row['cpu_s']:8.3f} s   "
              f"{first['seconds'] / row['seconds']:5.2f}x wall  {first['cpu_s'] / row['cpu_s']:5.2f}x CPU")


if __name__ == "__main__":
    raise SystemExit(main())
