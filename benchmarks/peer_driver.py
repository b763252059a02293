"""Runs INSIDE the peer's own venv (see ../shared/peer/README.md): the authors' pipeline through their `ref_api`,
timed per stage, for `peer_side_by_side.py`. Nothing of the method is here: every number comes from the authors'
functions; this script only calls them in their order and records clocks and outputs.

    /tmp/peer-venv/bin/python benchmarks/peer_driver.py --peer ../shared/peer --models DIR --content C.png \
        --styles S1.png S2.png ... --size 256 --steps 3 --ref-counts 1 3 5 --threads 1 --out DIR

Writes OUT/peer.json (per-stage wall and process-CPU seconds, labels' region counts, matches, losses) and
OUT/peer.npz (every label map, every final latent).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time


def clocked(run):
    """run()'s result and its wall and process-CPU seconds."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = run()
    return result, {"seconds": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peer", required=True, help="the folder holding ref_api.py")
    parser.add_argument("--models", required=True)
    parser.add_argument("--content", required=True)
    parser.add_argument("--styles", nargs="+", required=True)
    parser.add_argument("--size", type=int, required=True)
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--ref-counts", type=int, nargs="+", required=True)
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    sys.path.insert(0, os.path.abspath(args.peer))
    import ref_api

    reference = ref_api.load(args.models)
    report = {"threads": torch.get_num_threads(), "stage1": [], "runs": []}
    arrays = {}
    analyses = []
    for index, path in enumerate([args.content] + args.styles):
        analysis, cost = clocked(lambda: reference.stage1(path, size=args.size,
                                                          name="content" if index == 0 else f"style{index - 1}"))
        analyses.append(analysis)
        arrays[f"labels_{index}"] = analysis["labels"]
        report["stage1"].append(cost)
        print(f"peer stage 1 image {index}: {cost['seconds']:.1f} s (CPU {cost['cpu_s']:.1f} s)", flush=True)
    for count in args.ref_counts:
        styles = analyses[1:count + 1]
        matches, match_cost = clocked(lambda: reference.match(analyses[0], styles))
        outcome, stage3_cost = clocked(lambda: reference.stage3(analyses[0], styles, matches, steps=args.steps))
        _, decode_cost = clocked(lambda: reference.decode(outcome["latent"]))
        arrays[f"latent_{count}"] = outcome["latent"]
        report["runs"].append({"refs": count, "stage2": match_cost, "stage3_with_decode": stage3_cost,
                               "decode": decode_cost, "matches": matches, "losses": outcome["losses"]})
        print(f"peer {count} reference(s): stage 2 CPU {match_cost['cpu_s']:.1f} s, stage 3 + decode CPU "
              f"{stage3_cost['cpu_s']:.1f} s", flush=True)
    os.makedirs(args.out, exist_ok=True)
    np.savez(os.path.join(args.out, "peer.npz"), **arrays)
    with open(os.path.join(args.out, "peer.json"), "w") as f:
        json.dump(report, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
