"""Stage timings on the full-size SD1.5 architecture with RANDOM weights (same arithmetic as the real model).

    python benchmarks/bench_stages.py [--device auto] [--size N] [--steps N] [--refs 1 3 5] [--json out.json]
    python benchmarks/bench_stages.py --working-sizes 512x512 512x768 [--steps 1] [--refs 5]   # per working size
    python benchmarks/bench_stages.py --peer [--size 256] [--steps 3] [--refs 1 3 5] [--threads 1]  # vs the authors

Builds UNet2DConditionModel / AutoencoderKL / CLIPTextModel (and DINOv2-base, optionally Depth Anything V2) from
SD1.5's real config values, saves them as diffusers/transformers folders and loads them back through
engine.models (the real loader). Times stage 1 per image, stage 2, and stage 3 per step and in total for each
reference count, with the peak memory of each (GPU allocator peak on CUDA, else the process RSS):
  reference    benchmarks/reference_stage3.py: SPEC literally (unbatched passes every step, no cache, fp32), then
               the VAE decode that stylize also does (its time alone is printed too)
  engine       engine.stage3.stylize.stylize, first run (features computed, fp32)
  re-run       the same after pinning one content region elsewhere (features from the run's FeatureCache)
  engine-half  first run under bf16 autocast (CPU) or fp16 autocast + loss scaler (CUDA)
"diff" is the relative L2 distance of the final latent to the reference's. Defaults: on a GPU 512x512, 150 steps,
1/3/5 references, depth Large; on the CPU 256x256 (32x32 latent), 3 steps, 1/3/5 references, no depth, and only
the content gets a real stage 1 (the references' analyses reuse its regions and F_mix with their own VAE latents),
so it finishes in about ten minutes on 2 cores. Each variant is first run once for one step, untimed (first calls
at new shapes pay one-off setup costs). Stage 3 uses fixed synthetic regions (content: 4 bands, each
matched to a half of reference i mod R) so its cost does not depend on what random weights segment.
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import gc
import json
import os
import platform
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: the repository first

from benchmarks.common import BENCH, FAMILIES  # noqa: E402
from benchmarks.model_folders import (DEPTH_PROCESSOR, DINOV2_PROCESSOR, SD15_MODEL_INDEX, calibrate_vae,  # noqa: E402
                                      save_json, write_tokenizer)
from benchmarks.peer_side_by_side import DEFAULT_MODELS, DEFAULT_PEER_PYTHON, side_by_side  # noqa: E402
from benchmarks.reference_stage3 import reference_stylize  # noqa: E402
from engine.device import DTYPES, pick_device  # noqa: E402
from engine.images import load_image, resize_to  # noqa: E402
from engine.stage1.inversion import encode_latent  # noqa: E402
from engine.stage2.matching import match_regions  # noqa: E402
from engine.models import SD15_DDIM_CONFIG, ModelBundle  # noqa: E402
from engine.params import MatchParams, ModelSource, Stage1Params, Stage3Params  # noqa: E402
from engine.stage1.segment import analyze_image  # noqa: E402
from engine.stage2.dinov2_tokens import dinov2_tokens  # noqa: E402
from engine.stage3.features import FeatureCache  # noqa: E402
from engine.stage3.stylize import StyleInputs, decode_latent, initial_latent, stylize  # noqa: E402
from engine.types import RegionMatch  # noqa: E402

# SD1.5's own config values (stable-diffusion-v1-5 unet/vae/text_encoder config.json).
SD15_UNET = dict(sample_size=64, in_channels=4, out_channels=4, layers_per_block=2,
                 block_out_channels=(320, 640, 1280, 1280), cross_attention_dim=768, attention_head_dim=8,
                 down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
                 up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3, norm_num_groups=32)
SD15_VAE = dict(in_channels=3, out_channels=3, latent_channels=4, layers_per_block=2,
                block_out_channels=(128, 256, 512, 512), down_block_types=("DownEncoderBlock2D",) * 4,
                up_block_types=("UpDecoderBlock2D",) * 4, norm_num_groups=32, sample_size=512, scaling_factor=0.18215)
SD15_TEXT = dict(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                 num_attention_heads=12, max_position_embeddings=77, projection_dim=768, hidden_act="quick_gelu",
                 bos_token_id=0, eos_token_id=2, pad_token_id=1)
DINOV2_BASE = dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, patch_size=14, image_size=518)
DEPTH_VARIANTS = {  # Depth Anything V2 Small / Large (backbone, head)
    "small": (dict(hidden_size=384, num_hidden_layers=12, num_attention_heads=6, out_indices=[3, 6, 9, 12]),
              dict(neck_hidden_sizes=[48, 96, 192, 384], fusion_hidden_size=64)),
    "large": (dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, out_indices=[5, 12, 18, 24]),
              dict(neck_hidden_sizes=[256, 512, 1024, 1024], fusion_hidden_size=256)),
}


def build_models(root: Path, depth: str) -> ModelSource:
    """Random-weight SD1.5 (VAE calibrated to SD1.5's latent spread), DINOv2-base and depth, saved under root."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import (CLIPTextConfig, CLIPTextModel, DepthAnythingConfig, DepthAnythingForDepthEstimation,
                              Dinov2Config, Dinov2Model)

    sd = root / "sd15"
    torch.manual_seed(0)
    for name, build in (("unet", lambda: UNet2DConditionModel(**SD15_UNET)),
                        ("vae", lambda: AutoencoderKL(**SD15_VAE)),
                        ("text_encoder", lambda: CLIPTextModel(CLIPTextConfig(**SD15_TEXT))),
                        ("dinov2", lambda: Dinov2Model(Dinov2Config(**DINOV2_BASE)))):
        model = build().eval()
        if name == "vae":
            calibrate_vae(model)
        model.save_pretrained(root / name if name == "dinov2" else sd / name)
        del model
        gc.collect()
    write_tokenizer(sd / "tokenizer", SD15_TEXT["vocab_size"])
    save_json(sd / "scheduler" / "scheduler_config.json", {"_class_name": "DDIMScheduler", **SD15_DDIM_CONFIG})
    save_json(sd / "model_index.json", SD15_MODEL_INDEX)
    save_json(root / "dinov2" / "preprocessor_config.json", DINOV2_PROCESSOR)
    if depth != "none":
        backbone, head = DEPTH_VARIANTS[depth]
        config = DepthAnythingConfig(backbone_config=Dinov2Config(patch_size=14, image_size=518,
                                                                  reshape_hidden_states=False, **backbone),
                                     reassemble_hidden_size=backbone["hidden_size"], patch_size=14,
                                     depth_estimation_type="relative", **head)
        DepthAnythingForDepthEstimation(config).eval().save_pretrained(root / "depth")
        save_json(root / "depth" / "preprocessor_config.json", DEPTH_PROCESSOR)
    return ModelSource(sd=str(sd), dinov2=str(root / "dinov2"), depth=str(root / "depth"), offline=True)


class PeakMemory:
    """Peak memory inside a block: CUDA's allocator peak on a GPU, else the process RSS sampled every 10 ms."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.peak = 0

    @contextmanager
    def track(self) -> Iterator[None]:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            yield
            torch.cuda.synchronize(self.device)
            self.peak = torch.cuda.max_memory_allocated(self.device)
            return
        done = threading.Event()
        self.peak = _rss()

        def sample() -> None:
            while not done.wait(0.01):
                self.peak = max(self.peak, _rss())

        thread = threading.Thread(target=sample, daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join()


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def timed(device: torch.device, run) -> tuple[object, dict]:
    """run()'s result and {"seconds": wall, "cpu_s": process CPU time, "peak_bytes"}. On a shared CPU the CPU time
    is the steadier figure (other jobs stretch the wall time)."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    memory = PeakMemory(device)
    with memory.track():
        start, cpu = time.perf_counter(), time.process_time()
        result = run()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    return result, {"seconds": seconds, "cpu_s": cpu, "peak_bytes": memory.peak}


def photos(count: int) -> list:
    """The first content photo, then one reference from each of `count` style families."""
    images = [load_image(sorted((BENCH / "content").glob("*.png"))[0])]
    return images + [load_image(sorted((BENCH / "style" / f).glob("*.png"))[0]) for f in FAMILIES[:count]]


def synthetic_scene(content_latent, content_c15, ref_latents: list, grid: int, pin: bool = False):
    """Content: 4 horizontal bands, band i matched to half (i mod 2) + 1 of reference i mod R; `pin` moves band 1
    to the other half of its reference (the "change one pin" re-run)."""
    content_labels = np.repeat((np.arange(grid) * 4 // grid + 1)[:, None], grid, axis=1)
    halves = np.ones((grid, grid), np.int64)
    halves[:, grid // 2:] = 2
    matches = {i: RegionMatch(i, (i - 1) % len(ref_latents), (i - 1) % 2 + 1, None) for i in range(1, 5)}
    if pin:
        matches[1] = RegionMatch(1, 0, 2, None, pinned=True)
    refs = [StyleInputs(latent, halves) for latent in ref_latents]
    return StyleInputs(content_latent, content_labels, content_c15), refs, matches


def bench_working_sizes(sd, embeds, sizes: list[str], steps: int, refs: int, device: torch.device) -> list[dict]:
    """Per working size: engine stage 3 (seconds per step after an untimed warm step, peak memory) on random latents
    of that size for the content and `refs` references (synthetic bands and halves as above), and the VAE decode."""
    rows = []
    baseline = _rss() if device.type != "cuda" else torch.cuda.memory_allocated(device)
    for text in sizes:
        width, height = (int(v) for v in text.lower().split("x"))
        grid = (height // 8, width // 8)
        generator = torch.Generator().manual_seed(0)
        latents = [torch.randn(4, *grid, generator=generator).numpy() for _ in range(refs + 2)]
        bands = np.repeat((np.arange(grid[0]) * 4 // grid[0] + 1)[:, None], grid[1], axis=1)
        halves = np.ones(grid, np.int64)
        halves[:, grid[1] // 2:] = 2
        matches = {i: RegionMatch(i, (i - 1) % refs, (i - 1) % 2 + 1, None) for i in range(1, 5)}
        scene = (StyleInputs(latents[0], bands, latents[1]), [StyleInputs(z, halves) for z in latents[2:]], matches)
        params = Stage3Params(steps=steps, preview_every=0)
        stylize(sd, embeds, *scene, dataclasses.replace(params, steps=1))  # untimed warm step
        _, cost = timed(device, lambda: stylize(sd, embeds, *scene, params))
        _, decode = timed(device, lambda: decode_latent(sd.vae, torch.zeros(1, 4, *grid, device=device)))
        per_step = (cost["seconds"] - decode["seconds"]) / steps
        row = {"size": [width, height], "refs": refs, "steps": steps, "stage3": cost, "decode": decode,
               "per_step_s": per_step, "cpu_per_step_s": (cost["cpu_s"] - decode["cpu_s"]) / steps,
               "peak_over_start_bytes": cost["peak_bytes"] - baseline}
        rows.append(row)
        print(f"{width}x{height}, {refs} refs: {per_step:.1f} s/step (CPU {row['cpu_per_step_s']:.1f} s), decode "
              f"{decode['seconds']:.1f} s, peak {cost['peak_bytes'] / 2**30:.2f} GiB "
              f"({row['peak_over_start_bytes'] / 2**30:+.2f} GiB over the loaded models)")
    return rows


def relative_l2(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--size", type=int, help="image side (default 512 on a GPU, 256 on the CPU)")
    parser.add_argument("--steps", type=int, help="stage-3 steps (default 150 on a GPU, 3 on the CPU)")
    parser.add_argument("--refs", type=int, nargs="+", help="reference counts (default 1 3 5)")
    parser.add_argument("--depth", choices=["none", "small", "large"], help="default large on a GPU, none on CPU")
    parser.add_argument("--stage1-all", action="store_true", help="real stage 1 for every image (default on GPU)")
    parser.add_argument("--half", choices=["fp16", "bf16"], help="engine-half precision (fp16 CUDA, bf16 CPU)")
    parser.add_argument("--skip", nargs="*", default=[], choices=["reference", "engine", "rerun", "half"])
    parser.add_argument("--cache-gb", type=float, default=64.0, help="FeatureCache memory budget")
    parser.add_argument("--threads", type=int)
    parser.add_argument("--json", type=Path, default=Path("bench_stages.json"))
    parser.add_argument("--peer", action="store_true",
                        help="time the authors' code (../shared/peer, its own venv) beside the engine instead")
    parser.add_argument("--peer-python", type=Path, default=DEFAULT_PEER_PYTHON, help="the peer venv's python")
    parser.add_argument("--models", type=Path, default=DEFAULT_MODELS,
                        help="--peer: the peer's full-size model folder (built there when missing)")
    parser.add_argument("--working-sizes", nargs="+", metavar="WxH",
                        help="only time engine stage-3 steps (and the decode) at these working sizes, content and "
                             "every reference at that size, max(--refs) references")
    args = parser.parse_args()

    if args.peer:
        return side_by_side(args.peer_python, args.models, args.size or 256, args.steps or 3, args.refs or [1, 3, 5],
                            args.threads or 1, args.json)
    device = pick_device(args.device)
    gpu = device.type == "cuda"
    if args.threads:
        torch.set_num_threads(args.threads)
    size, steps = args.size or (512 if gpu else 256), args.steps or (150 if gpu else 3)
    ref_counts = args.refs or [1, 3, 5]
    depth = args.depth or ("large" if gpu else "none")
    half = args.half or ("fp16" if gpu else "bf16")
    stage1_all = args.stage1_all or gpu
    report = {"device": str(device), "device_name": torch.cuda.get_device_name(device) if gpu else platform.processor(),
              "torch": torch.__version__, "threads": torch.get_num_threads(), "size": size, "steps": steps,
              "depth": depth, "half": half, "stage1_all": stage1_all, "load_average_start": os.getloadavg()[0],
              "random_weights": True, "stage1": [], "stage3": []}
    print(f"{report['device_name'] or device} | {size}x{size}, {steps} steps, refs {ref_counts}, depth {depth}, "
          f"threads {report['threads']}, load average {report['load_average_start']:.1f} | RANDOM WEIGHTS")

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        source = build_models(Path(tmp), depth)
        bundle = ModelBundle(source, device, torch.float32)
        sd = bundle.sd
        dinov2, processor = bundle.dinov2
        embeds = bundle.empty_prompt_embeds()
        if depth != "none":
            bundle.depth  # noqa: B018 (loaded now: the folder goes away with the block)
        report["build_and_load_s"] = time.perf_counter() - start
    print(f"models built, saved and loaded through engine.models in {report['build_and_load_s']:.0f} s")

    if args.working_sizes:
        report["sizes"] = bench_working_sizes(sd, embeds, args.working_sizes, args.steps or 1, max(ref_counts), device)
        args.json.write_text(json.dumps(report, indent=2))
        return 0
    stage1 = Stage1Params(size_policy="square", image_size=size, use_depth=depth != "none")
    images = photos(max(ref_counts))
    analyses = []
    for i, image in enumerate(images):
        if i == 0 or stage1_all:
            analysis, cost = timed(device, lambda: analyze_image(bundle, image, stage1))
            report["stage1"].append({"image": i, **cost})
            print(f"stage 1 image {i}: {cost['seconds']:.1f} s (CPU {cost['cpu_s']:.1f} s), peak "
                  f"{cost['peak_bytes'] / 2**30:.2f} GiB, {len(np.unique(analysis.labels))} regions")
        else:
            with torch.no_grad():
                latent = encode_latent(sd.vae, resize_to(image, (size, size)))[0].cpu().numpy()
            analysis = dataclasses.replace(analyses[0], vae_latent=latent)
        analyses.append(analysis)

    def stage2(count: int):
        tokens = [dinov2_tokens(dinov2, processor, image) for image in images[:count + 1]]
        return match_regions(analyses[0], tokens[0], analyses[1:count + 1], tokens[1:], MatchParams())

    grid = size // 8
    # the half-precision run holds its weights in that precision, as the app does on a GPU (no per-call casts)
    half_sd = None if "half" in args.skip else dataclasses.replace(
        sd, unet=copy.deepcopy(sd.unet).to(DTYPES[half]), vae=copy.deepcopy(sd.vae).to(DTYPES[half]))
    start_latent = initial_latent(analyses[0].c15)[0].numpy()
    for count in ref_counts:
        _, cost = timed(device, lambda: stage2(count))
        row = {"refs": count, "stage2": cost, "runs": {}}
        ref_latents = [a.vae_latent for a in analyses[1:count + 1]]
        scene = synthetic_scene(analyses[0].vae_latent, analyses[0].c15, ref_latents, grid)
        pinned = synthetic_scene(analyses[0].vae_latent, analyses[0].c15, ref_latents, grid, pin=True)
        params = Stage3Params(steps=steps, preview_every=0)
        cache = FeatureCache(max_bytes=int(args.cache_gb * 2**30))
        runs = {
            "reference": lambda: decoded(reference_stylize(sd.unet, sd.scheduler_config, embeds, *scene, params)),
            "engine": lambda: stylize(sd, embeds, *scene, params, feature_cache=cache).latent,
            "rerun": lambda: stylize(sd, embeds, *pinned, params, feature_cache=cache).latent,
            "half": lambda: stylize(half_sd, embeds, *scene, dataclasses.replace(params, precision=half),
                                    feature_cache=FeatureCache(max_bytes=int(args.cache_gb * 2**30))).latent,
        }
        def decoded(z: torch.Tensor) -> np.ndarray:
            """The reference's latent, decoded as stylize decodes its own, so both totals include the decode."""
            decode_latent(sd.vae, z)
            return z[0].cpu().numpy()

        _, row["decode"] = timed(device, lambda: decode_latent(sd.vae, torch.zeros(1, 4, grid, grid, device=device)))
        warm = dataclasses.replace(params, steps=1)  # untimed: first calls at new shapes pay one-off setup costs
        if "reference" not in args.skip:
            reference_stylize(sd.unet, sd.scheduler_config, embeds, *scene, warm)
        if "engine" not in args.skip:
            stylize(sd, embeds, *scene, warm)
        if half_sd is not None:
            stylize(half_sd, embeds, *scene, dataclasses.replace(warm, precision=half))
        latents = {}
        for name, run in runs.items():
            if name in args.skip or (name == "rerun" and "engine" in args.skip):
                continue
            latents[name], cost = timed(device, run)
            row["runs"][name] = {**cost, "per_step_s": cost["seconds"] / steps}
        for name in ("engine", "half"):
            if name in latents and "reference" in latents:
                row["runs"][name]["rel_l2_to_reference"] = relative_l2(latents[name], latents["reference"])
                # the same difference measured against how far the reference moved z (a stricter reading)
                row["runs"][name]["diff_over_displacement"] = float(
                    np.linalg.norm(latents[name] - latents["reference"])
                    / np.linalg.norm(latents["reference"] - start_latent))
        base, first = (row["runs"].get(name, {}) for name in ("reference", "engine"))
        for name, run in row["runs"].items():
            for clock in ("seconds", "cpu_s"):
                run[f"{clock}_ratio_to_reference"] = base[clock] / run[clock] if base else None
                run[f"{clock}_fraction_of_first_run"] = run[clock] / first[clock] if first else None
        report["stage3"].append(row)
        print_row(row)
        args.json.write_text(json.dumps(report, indent=2))

    report["load_average_end"] = os.getloadavg()[0]
    args.json.write_text(json.dumps(report, indent=2))
    print(f"load average at end {report['load_average_end']:.1f}; JSON written to {args.json}")
    return 0


def print_row(row: dict) -> None:
    stage2 = row["stage2"]
    print(f"\n{row['refs']} reference(s): stage 2 {stage2['seconds']:.2f} s (CPU {stage2['cpu_s']:.1f} s, peak "
          f"{stage2['peak_bytes'] / 2**30:.2f} GiB); every stage-3 total includes one fp32 VAE decode, alone "
          f"{row['decode']['seconds']:.1f} s")
    print(f"  {'stage 3':<10} {'total s':>8} {'s/step':>7} {'speed-up':>9} {'of 1st':>7} {'CPU s':>7} "
          f"{'speed-up':>9} {'of 1st':>7} {'rel L2':>8} {'/moved':>8} {'peak GiB':>9}")
    for name, run in row["runs"].items():
        cells = []
        for clock in ("seconds", "cpu_s"):
            ratio, frac = run[f"{clock}_ratio_to_reference"], run[f"{clock}_fraction_of_first_run"]
            if clock == "cpu_s":
                cells.append(f"{run['cpu_s']:7.1f}")
            cells += [f"{ratio:.2f}x" if ratio else "-", f"{frac:.0%}" if frac else "-"]
        diff = [f"{run[k]:.1e}" if k in run else "-" for k in ("rel_l2_to_reference", "diff_over_displacement")]
        print(f"  {name:<10} {run['seconds']:8.1f} {run['per_step_s']:7.2f} {cells[0]:>9} {cells[1]:>7} "
              f"{cells[2]:>7} {cells[3]:>9} {cells[4]:>7} {diff[0]:>8} {diff[1]:>8} {run['peak_bytes'] / 2**30:9.2f}")


if __name__ == "__main__":
    raise SystemExit(main())
