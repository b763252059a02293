"""A draft and an analysis, each alone and side by side, under the thread policy and under the libraries' defaults.

    python benchmarks/bench_concurrency.py [--drafts 3] [--size 512] [--models ../shared/parity/models-tiny]

The analysis is stage 1 (`analyze_image`) on the parity tiny models at the default 64x64 grid: its UNet is tiny,
so the time is the k-means sweep and the many small tensor operations that suffer most from oversubscription.
The draft is the instant draft (onnxruntime, the real style networks) of a benchmark photo after one reference,
`--drafts` times with fresh caches. "policy": torch and onnxruntime threads from `engine.threads.plan_threads`;
"defaults": both libraries sized to every usable CPU (what each does when left alone). Wall and process CPU
seconds per job; on a shared machine compare rows of the same run only. Needs the draft extra.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.draft import Drafter  # noqa: E402
from engine.draft.onnx_models import StyleNetworks  # noqa: E402
from engine.images import load_image  # noqa: E402
from engine.models import ModelBundle  # noqa: E402
from engine.params import DraftParams, ModelSource, Stage1Params  # noqa: E402
from engine.stage1.segment import analyze_image  # noqa: E402
from engine.threads import physical_cores, plan_threads, usable_cpus  # noqa: E402

BENCH = ROOT.parent / "shared" / "benchmark"
TINY = ROOT.parent / "shared" / "parity" / "models-tiny"


def timed(work) -> float:
    """Wall seconds of `work()`."""
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def run_case(analysis, drafts, together: bool) -> tuple[float, float, float, float]:
    """Wall seconds of the analysis and of the draft loop, one after the other or on two threads at once, then
    the wall and the process CPU seconds (every thread of both libraries) of the whole case."""
    start, cpu = time.perf_counter(), time.process_time()
    if together:
        times: dict[str, float] = {}
        worker = threading.Thread(target=lambda: times.__setitem__("analysis", timed(analysis)))
        worker.start()
        times["drafts"] = timed(drafts)
        worker.join()
    else:
        times = {"analysis": timed(analysis), "drafts": timed(drafts)}
    return times["analysis"], times["drafts"], time.perf_counter() - start, time.process_time() - cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--drafts", type=int, default=3)
    parser.add_argument("--size", type=int, default=512, help="draft size")
    parser.add_argument("--models", type=Path, default=TINY, help="SD1.5-shaped folder set (sd15/, depth/)")
    args = parser.parse_args()
    bundle = ModelBundle(ModelSource(sd=str(args.models / "sd15"), offline=True), torch.device("cpu"), torch.float32)
    photo = load_image(sorted((BENCH / "content").glob("*.png"))[0])
    reference = load_image(sorted((BENCH / "style" / "VanGogh").glob("*.png"))[0])
    params = Stage1Params(use_depth=False)
    cpus = len(usable_cpus())
    policy = plan_threads(physical_cores())
    settings = {"policy": (policy.torch_threads, policy.onnx_threads), "defaults": (cpus, cpus)}
    print(f"# {cpus} usable CPUs, {policy.cores} physical cores; policy: torch {policy.torch_threads}, "
          f"onnxruntime {policy.onnx_threads}; load average at start {os.getloadavg()[0]:.1f}")
    print("| threads (torch, onnx) | case | analysis wall s | drafts wall s | case wall s | case CPU s |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, (torch_threads, onnx_threads) in settings.items():
        torch.set_num_threads(torch_threads)
        networks = StyleNetworks(threads=onnx_threads)

        def analysis() -> None:
            analyze_image(bundle, photo, params)

        def drafts() -> None:
            for _ in range(args.drafts):
                with tempfile.TemporaryDirectory() as cache:
                    Drafter(cache_dir=Path(cache), networks=networks, use_cache=False).draft(
                        photo, [reference], DraftParams(size=args.size))

        drafts()  # warm-up: first onnxruntime runs and imports are one-offs
        for together in (False, True):
            a_wall, d_wall, wall, cpu = run_case(analysis, drafts, together)
            print(f"| {name} ({torch_threads}, {onnx_threads}) | {'together' if together else 'one after the other'} "
                  f"| {a_wall:.1f} | {d_wall:.1f} | {wall:.1f} | {cpu:.1f} |", flush=True)
    print(f"load average at end {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
