"""The thread policy: one split of the physical cores between torch, onnxruntime and the job queues, applied once."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from engine.threads import physical_cores, plan_threads

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("cores", [1, 2, 3, 4, 8, 16, 64])
def test_the_draft_and_one_analysis_never_ask_for_more_threads_than_cores(cores):
    policy = plan_threads(cores)
    assert policy.torch_threads >= 1 and policy.onnx_threads >= 1
    assert policy.heavy_jobs == 1 and policy.draft_jobs == 1
    if cores >= 2:
        assert policy.heavy_jobs * policy.torch_threads + policy.draft_jobs * policy.onnx_threads <= cores


def test_hyper_threads_of_one_core_count_once(tmp_path):
    # cpu0/cpu1 are two hyper-threads of core 0, cpu2/cpu3 of core 1; cpu4 is on a second package.
    for cpu, (package, core) in enumerate([(0, 0), (0, 0), (0, 1), (0, 1), (1, 0)]):
        topology = tmp_path / f"cpu{cpu}" / "topology"
        topology.mkdir(parents=True)
        (topology / "physical_package_id").write_text(f"{package}\n")
        (topology / "core_id").write_text(f"{core}\n")
    assert physical_cores([0, 1, 2, 3, 4], tmp_path) == 3
    assert physical_cores([0, 1], tmp_path) == 1
    assert physical_cores([0, 7], tmp_path) == 2  # unreadable topology: count logical CPUs


def test_main_applies_the_policy_once_and_the_libraries_read_it():
    # A fresh interpreter: the policy is per process and must be in force before torch is first used.
    script = """
import json, sys, torch
import main
from engine import threads
try:
    main.main(["analyze", "no-such-photo.png", "--out", "no-such-folder"])  # parsed, then refused: no work
except SystemExit:
    pass
first = threads.current_policy()
again = threads.apply_thread_policy(threads.ThreadPolicy(cores=64, torch_threads=60, onnx_threads=4,
                                                         heavy_jobs=1, draft_jobs=1))
try:
    import onnxruntime
    from engine.draft.onnx_models import session_options
    onnx = session_options(onnxruntime, sessions_in_process=2).intra_op_num_threads
except ImportError:
    onnx = None
print(json.dumps({"policy": first.__dict__, "again_is_first": again is first, "torch": torch.get_num_threads(),
                  "interop": torch.get_num_interop_threads(), "onnx": onnx}))
"""
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout.strip().splitlines()[-1])
    policy = report["policy"]
    assert report["again_is_first"]
    assert report["torch"] == policy["torch_threads"] and report["interop"] == 1
    assert policy == plan_threads(physical_cores()).__dict__
    if report["onnx"] is not None:
        assert report["onnx"] == policy["onnx_threads"]
