"""Instant-draft timings on CPU: first draft, a pin to a reference not used yet, and a pure re-composite.

    python benchmarks/bench_draft.py [--images 3] [--sizes 512 1024] [--refs 1 3 5] [--threads N]

Uses ../shared/benchmark (content photos and style references). Two modes per size and reference count:
"quick": quick regions and quick matching, which may leave some references unused (a pass is made only per
matched reference); "all used": a method-style label map with one band per reference, each assigned its own,
so every reference costs a pass (the worst case for that count).
"first" is a new photo and new references with the networks already loaded (style vectors, regions, matches and
passes all computed; the one-off session load is printed separately). "pin, new ref" pins the largest region to a
reference that had no pass yet (one transformer pass). "re-composite" then pins it to a reference that already
has a pass (vectors and passes cached). Each cell is the median over --images content photos; "CPU" is the first
draft's process CPU time (all threads): well under 2x the wall time on 2 cores means other jobs took the CPU.
Needs the draft extra.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: the repository first

from benchmarks.common import BENCH, FAMILIES, machine_line  # noqa: E402
from engine.draft import Drafter  # noqa: E402
from engine.draft.onnx_models import StyleNetworks  # noqa: E402
from engine.images import load_image  # noqa: E402
from engine.params import DraftParams  # noqa: E402
from engine.types import Pin  # noqa: E402



def references(count: int, offset: int) -> list:
    """`count` references from different families; `offset` picks other files so each trial starts uncached."""
    refs = []
    for family in FAMILIES[:count]:
        files = sorted((BENCH / "style" / family).glob("*.png"))
        refs.append(load_image(files[offset % len(files)]))
    return refs


def bands(count: int) -> tuple[np.ndarray, dict[int, int]]:
    """A 64x64 map of `count` horizontal bands (ids 1..count), band i assigned reference i - 1."""
    rows = np.minimum(np.arange(64) * count // 64, count - 1) + 1
    return np.repeat(rows[:, None], 64, axis=1).astype(np.int64), {i + 1: i for i in range(count)}


def timed(drafter: Drafter, *args, **kwargs) -> tuple[object, float, float]:
    t, cpu = time.perf_counter(), time.process_time()
    result = drafter.draft(*args, **kwargs)
    return result, time.perf_counter() - t, time.process_time() - cpu


def one_trial(networks: StyleNetworks, content, refs, size: int, every_ref: bool) -> dict:
    labels, assignment = bands(len(refs)) if every_ref else (None, None)
    with tempfile.TemporaryDirectory() as cache:
        drafter = Drafter(cache_dir=Path(cache), networks=networks)
        common = dict(labels=labels, assignment=assignment)
        params = DraftParams(size=size)
        first, wall, cpu = timed(drafter, content, refs, params, **common)
        used = sorted({m.style_index for m in first.matches.values()})
        times = {"first": wall, "first_cpu": cpu, "passes": len(used), "stages": first.timings}
        largest = max(first.matches, key=lambda r: (first.labels == r).sum())
        current = first.matches[largest].style_index
        unused = [i for i in range(len(refs)) if i not in used]
        if unused:
            times["pin_new"] = timed(drafter, content, refs, params, pins=[Pin(largest, unused[0])], **common)[1]
        # back to its first reference if it moved, else to another reference with a pass: passes all cached
        target = current if unused else next((i for i in used if i != current), current)
        times["recomposite"] = timed(drafter, content, refs, params, pins=[Pin(largest, target)], **common)[1]
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=3, help="content photos per cell (median)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024])
    parser.add_argument("--refs", type=int, nargs="+", default=[1, 3, 5])
    parser.add_argument("--threads", type=int, default=None, help="onnxruntime intra-op threads (default: all cores)")
    args = parser.parse_args()
    if not BENCH.is_dir():
        print(f"benchmark images not found at {BENCH}", file=sys.stderr)
        return 2
    t = time.perf_counter()
    networks = StyleNetworks(threads=args.threads)
    load = time.perf_counter() - t
    contents = [load_image(p) for p in sorted((BENCH / "content").glob("*.png"))]
    # warm-up on an image not timed: first onnxruntime runs and library imports are one-offs per process
    Drafter(cache_dir=Path(tempfile.mkdtemp()), networks=networks).draft(contents[-1], references(1, 99))

    print(f"# draft benchmark: {machine_line()} at start, onnxruntime CPU, threads={args.threads or 'default'}")
    print(f"session load (both networks, once per process): {load:.2f} s\n")
    print("| size | refs | mode | passes | first draft (s) | CPU (s) | pin, new ref (s) | re-composite after pin (s) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    stages = {}
    for size in args.sizes:
        for count in args.refs:
            for every_ref in (False, True):
                trials = [one_trial(networks, contents[i % len(contents)], references(count, i), size, every_ref)
                          for i in range(args.images)]
                cell = {key: statistics.median(t[key] for t in trials if key in t)
                        for key in ("first", "first_cpu", "passes", "pin_new", "recomposite")
                        if any(key in t for t in trials)}
                mode = "all used" if every_ref else "quick"
                stages[(size, count, mode)] = trials[0]["stages"]
                pin_new = f"{cell['pin_new']:.2f}" if "pin_new" in cell else "-"
                print(f"| {size} | {count} | {mode} | {cell['passes']:g} | {cell['first']:.2f} | "
                      f"{cell['first_cpu']:.2f} | {pin_new} | {cell['recomposite']:.3f} |", flush=True)
    print(f"\nload average at end {os.getloadavg()[0]:.1f}")
    print("first-draft stages (s), first photo of each cell:")
    for (size, count, mode), timing in stages.items():
        print(f"  {size} px, {count} refs, {mode}: " + ", ".join(f"{k} {v:.3f}" for k, v in timing.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
