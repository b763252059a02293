"""The authors' code (../shared/peer, in its own venv) and the engine, timed in the same run on the same models and
images, stage by stage, with the engine's outputs checked against the peer's (labels, matches, losses, latents).

    python benchmarks/bench_stages.py --peer [--peer-python /tmp/peer-venv/bin/python] [--models /tmp/models-full] \
        [--size 256] [--steps 3] [--refs 1 3 5] [--threads 1]

The model folder is the peer's own (`make_models.py --size full`: seeded random-weight SD1.5, DINOv2-base, Depth
Anything V2 Large, 5.6 GB); it is built with the peer's venv when missing. Both sides load it, the engine through
engine.models (the real loader). The peer runs first, in a child process (its pins differ from ours), then the
engine in this process, each at `--threads` torch threads. Stage 1 is SPEC's (square working size, depth on),
stage 2 the method's matching, stage 3 `--steps` steps of SPEC's schedule for `--steps` steps with the matches the
engine found (equal to the peer's, checked), each stage-3 total includes its VAE decode and the per-step figure
removes it. A third column runs the SPEC-literal stage 3 (`reference_stage3.py`). Ratios: peer CPU seconds over
engine CPU seconds (over 1 = the engine is faster); CPU seconds are the steadier clock on a shared machine.
"""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from benchmarks.common import BENCH, FAMILIES, ROOT, machine_line

PEER_DIR = ROOT.parent / "shared" / "peer"
DEFAULT_PEER_PYTHON = Path("/tmp/peer-venv/bin/python")
DEFAULT_MODELS = Path("/tmp/models-full")


def ensure_models(python: Path, models: Path) -> None:
    """The peer's full-size random-weight model folder, built with its own script when missing."""
    if (models / "manifest.json").exists():
        return
    print(f"building the peer's full-size random-weight models in {models} (about 1.5 min, 5.6 GB)", flush=True)
    subprocess.run([str(python), str(PEER_DIR / "make_models.py"), str(models), "--size", "full"], check=True)


def image_paths(count: int) -> list[Path]:
    """The first benchmark photo, then the first reference of each of `count` style families."""
    return ([sorted((BENCH / "content").glob("*.png"))[0]]
            + [sorted((BENCH / "style" / family).glob("*.png"))[0] for family in FAMILIES[:count]])


def run_peer(python: Path, models: Path, paths: list[Path], size: int, steps: int, ref_counts: list[int],
             threads: int, out: Path) -> tuple[dict, dict]:
    """peer_driver.py in the peer's venv; its report and arrays."""
    command = [str(python), str(Path(__file__).with_name("peer_driver.py")), "--peer", str(PEER_DIR),
               "--models", str(models), "--content", str(paths[0]), "--styles", *map(str, paths[1:]),
               "--size", str(size), "--steps", str(steps), "--ref-counts", *map(str, ref_counts),
               "--threads", str(threads), "--out", str(out)]
    subprocess.run(command, check=True, env={**os.environ, "PYTHONPATH": ""})
    report = json.loads((out / "peer.json").read_text())
    with np.load(out / "peer.npz") as arrays:
        return report, {name: arrays[name] for name in arrays.files}


def run_engine(models: Path, paths: list[Path], size: int, steps: int, ref_counts: list[int]) -> tuple[dict, dict]:
    """The engine's stages on the same images and models, timed like the peer's; SPEC-literal stage 3 beside."""
    from benchmarks.bench_stages import timed
    from benchmarks.reference_stage3 import reference_stylize
    from engine.images import load_image
    from engine.models import ModelBundle
    from engine.params import MatchParams, ModelSource, Stage1Params, Stage3Params
    from engine.stage1.segment import analyze_image
    from engine.stage2.dinov2_tokens import dinov2_tokens
    from engine.stage2.matching import match_regions
    from engine.stage3.stylize import StyleInputs, decode_latent, stylize

    device = torch.device("cpu")
    bundle = ModelBundle(ModelSource(sd=str(models / "sd15"), dinov2=str(models / "dinov2"),
                                     depth=str(models / "depth"), offline=True), device, torch.float32)
    sd, (dinov2, processor), embeds = bundle.sd, bundle.dinov2, bundle.empty_prompt_embeds()
    bundle.depth  # noqa: B018 (loaded before the clocks start, as the peer's is)
    stage1 = Stage1Params(size_policy="square", image_size=size)
    images = [load_image(path) for path in paths]
    report: dict = {"stage1": [], "runs": []}
    arrays: dict = {}
    analyses = []
    for index, image in enumerate(images):
        analysis, cost = timed(device, lambda: analyze_image(bundle, image, stage1))
        analyses.append(analysis)
        arrays[f"labels_{index}"] = analysis.labels
        report["stage1"].append(cost)
        print(f"engine stage 1 image {index}: {cost['seconds']:.1f} s (CPU {cost['cpu_s']:.1f} s)", flush=True)
    params = Stage3Params(steps=steps, preview_every=0)
    for count in ref_counts:
        def stage2():
            tokens = [dinov2_tokens(dinov2, processor, image) for image in images[:count + 1]]
            return match_regions(analyses[0], tokens[0], analyses[1:count + 1], tokens[1:], MatchParams())

        table, match_cost = timed(device, stage2)
        content = StyleInputs(analyses[0].vae_latent, analyses[0].labels, analyses[0].c15)
        references = [StyleInputs(a.vae_latent, a.labels) for a in analyses[1:count + 1]]
        outcome, engine_cost = timed(device, lambda: stylize(sd, embeds, content, references, table.matches, params))
        literal, literal_cost = timed(device, lambda: decoded(reference_stylize(
            sd.unet, sd.scheduler_config, embeds, content, references, table.matches, params), sd.vae))
        _, decode_cost = timed(device, lambda: decode_latent(sd.vae, torch.from_numpy(outcome.latent[None])))
        arrays[f"latent_{count}"] = outcome.latent
        arrays[f"literal_latent_{count}"] = literal
        report["runs"].append({
            "refs": count, "stage2": match_cost, "stage3_with_decode": engine_cost,
            "literal_stage3_with_decode": literal_cost, "decode": decode_cost,
            "matches": [[m.content_region, m.style_index, m.style_region] for m in table.matches.values()],
            "losses": [loss.total for loss in outcome.losses]})
        print(f"engine {count} reference(s): stage 2 CPU {match_cost['cpu_s']:.1f} s, stage 3 + decode CPU "
              f"{engine_cost['cpu_s']:.1f} s (SPEC-literal {literal_cost['cpu_s']:.1f} s)", flush=True)
    return report, arrays


def decoded(z: torch.Tensor, vae) -> np.ndarray:
    """The literal path's latent, decoded as stylize decodes its own (so every stage-3 total includes a decode)."""
    from engine.stage3.stylize import decode_latent

    decode_latent(vae, z)
    return z[0].cpu().numpy()


def per_step(run: dict, total: str, steps: int) -> float:
    """CPU seconds per stage-3 step: the total less the decode, over the steps."""
    return (run[total]["cpu_s"] - run["decode"]["cpu_s"]) / steps


def agreement(peer: dict, peer_arrays: dict, engine: dict, engine_arrays: dict, images: int) -> dict:
    """How the engine's outputs compare with the peer's: equal label maps and matches, loss and latent distances."""
    labels_equal = [bool(np.array_equal(peer_arrays[f"labels_{i}"], engine_arrays[f"labels_{i}"]))
                    for i in range(images)]
    runs = []
    for peer_run, engine_run in zip(peer["runs"], engine["runs"]):
        count = peer_run["refs"]
        peer_latent, engine_latent = peer_arrays[f"latent_{count}"], engine_arrays[f"latent_{count}"]
        peer_losses, engine_losses = np.array(peer_run["losses"]), np.array(engine_run["losses"])
        runs.append({
            "refs": count,
            "matches_equal": sorted(tuple(m[:3]) for m in peer_run["matches"])
            == sorted(tuple(m) for m in engine_run["matches"]),
            "max_loss_rel_diff": float(np.max(np.abs(engine_losses - peer_losses) / np.abs(peer_losses))),
            "latent_rel_l2": float(np.linalg.norm(engine_latent - peer_latent) / np.linalg.norm(peer_latent)),
            "literal_latent_rel_l2": float(np.linalg.norm(engine_arrays[f"literal_latent_{count}"] - peer_latent)
                                           / np.linalg.norm(peer_latent))})
    return {"labels_equal": labels_equal, "runs": runs}


def print_table(peer: dict, engine: dict, agree: dict, steps: int) -> None:
    """Markdown rows: per stage, peer / engine / SPEC-literal CPU seconds and the ratios to the peer."""
    def ratio(base: float, value: float) -> str:
        return f"{base / value:.2f}x" if value > 0 else "-"

    peer_s1 = [cost["cpu_s"] for cost in peer["stage1"]]
    engine_s1 = [cost["cpu_s"] for cost in engine["stage1"]]
    print("\n| stage | refs | peer CPU s | engine CPU s | engine vs peer | SPEC-literal CPU s | literal vs peer |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    print(f"| stage 1, per image | - | {np.mean(peer_s1):.1f} | {np.mean(engine_s1):.1f} | "
          f"{ratio(np.mean(peer_s1), np.mean(engine_s1))} | - | - |")
    for peer_run, engine_run in zip(peer["runs"], engine["runs"]):
        count = peer_run["refs"]
        peer_step = per_step(peer_run, "stage3_with_decode", steps)
        engine_step = per_step(engine_run, "stage3_with_decode", steps)
        literal_step = per_step(engine_run, "literal_stage3_with_decode", steps)
        print(f"| stage 2 | {count} | {peer_run['stage2']['cpu_s']:.1f} | {engine_run['stage2']['cpu_s']:.1f} | "
              f"{ratio(peer_run['stage2']['cpu_s'], engine_run['stage2']['cpu_s'])} | - | - |")
        print(f"| stage 3, per step | {count} | {peer_step:.2f} | {engine_step:.2f} | {ratio(peer_step, engine_step)} "
              f"| {literal_step:.2f} | {ratio(peer_step, literal_step)} |")
        print(f"| VAE decode | {count} | {peer_run['decode']['cpu_s']:.1f} | {engine_run['decode']['cpu_s']:.1f} | "
              f"{ratio(peer_run['decode']['cpu_s'], engine_run['decode']['cpu_s'])} | - | - |")
    print(f"\nlabels equal to the peer's, per image: {agree['labels_equal']}")
    for run in agree["runs"]:
        print(f"{run['refs']} reference(s): matches equal {run['matches_equal']}, losses within "
              f"{run['max_loss_rel_diff']:.1e} (relative), final latent rel L2 {run['latent_rel_l2']:.1e} "
              f"(SPEC-literal {run['literal_latent_rel_l2']:.1e})")


def side_by_side(peer_python: Path, models: Path, size: int, steps: int, ref_counts: list[int], threads: int,
                 json_path: Path) -> int:
    """Peer, then engine, on the same models and images; prints the table and writes `json_path`."""
    if not peer_python.exists():
        print(f"no peer venv at {peer_python}: build it as ../shared/peer/README.md says", file=sys.stderr)
        return 2
    ensure_models(peer_python, models)
    torch.set_num_threads(threads)
    paths = image_paths(max(ref_counts))
    print(f"# peer vs engine | {size}x{size}, {steps} steps, refs {ref_counts}, {threads} thread(s), "
          f"{machine_line()} | RANDOM WEIGHTS", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        peer, peer_arrays = run_peer(peer_python, models, paths, size, steps, ref_counts, threads, Path(tmp))
    engine, engine_arrays = run_engine(models, paths, size, steps, ref_counts)
    agree = agreement(peer, peer_arrays, engine, engine_arrays, len(paths))
    report = {"size": size, "steps": steps, "threads": threads, "machine": machine_line(), "random_weights": True,
              "peer": peer, "engine": engine, "agreement": agree}
    json_path.write_text(json.dumps(report, indent=2, default=_plain))
    print_table(peer, engine, agree, steps)
    return 0


def _plain(value):
    """JSON for numpy scalars and dataclasses in the report."""
    if dataclasses.is_dataclass(value):
        return dataclasses.asdict(value)
    return value.item() if hasattr(value, "item") else str(value)
