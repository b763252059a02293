"""The one place that decides how many threads each library uses and how many jobs run at once.

The app runs an analysis or a transfer (torch) beside instant drafts (onnxruntime). Left alone, each library
starts one spinning worker per logical CPU; side by side on a small machine the two pools (and hyper-threads
sharing a core) take turns on the same cores, and every one of torch's many small parallel operations waits for
a descheduled thread (a k-means sweep went from 9 s to 100 s with two threads on two busy cores). So the
cores this process may use are counted once, by physical core, and split: the draft keeps a small share, torch
takes the rest, and only one heavy job runs at a time, so the draft plus the heavy job never ask for more
threads than there are cores.

`apply_thread_policy()` is called once at start (main.py, once the options are parsed, before any command runs); later calls return the policy
already applied. Library code reads `current_policy()` (the onnxruntime sessions take their thread count from it).
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

SYSFS_CPU = Path("/sys/devices/system/cpu")


@dataclass(frozen=True)
class ThreadPolicy:
    """Thread counts for one process. torch_threads + onnx_threads <= cores whenever cores >= 2."""

    cores: int  # physical cores this process may run on
    torch_threads: int  # torch intra-op threads (analyses, matches, transfers)
    onnx_threads: int  # onnxruntime intra-op threads per draft session
    heavy_jobs: int  # torch jobs running at once (the device queue)
    draft_jobs: int  # drafts running at once, beside the heavy job


def usable_cpus() -> list[int]:
    """Logical CPUs this process may run on (taskset, container limits), not the machine's count."""
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return list(range(os.cpu_count() or 1))


def physical_cores(cpus: list[int] | None = None, sysfs: Path = SYSFS_CPU) -> int:
    """Distinct (package, core) pairs among `cpus` from the kernel's topology files; where those are not
    readable (not Linux), the logical count, which overcounts only on machines with hyper-threading."""
    cpus = usable_cpus() if cpus is None else cpus
    cores = set()
    for cpu in cpus:
        topology = sysfs / f"cpu{cpu}" / "topology"
        try:
            cores.add((topology.joinpath("physical_package_id").read_text().strip(),
                       topology.joinpath("core_id").read_text().strip()))
        except OSError:
            return max(1, len(cpus))
    return max(1, len(cores))


def plan_threads(cores: int) -> ThreadPolicy:
    """The split for `cores` physical cores: drafts get a quarter (at least one thread), torch the rest (at
    least one), one heavy job and one draft at a time. On one core both get one thread: nothing to split."""
    onnx = max(1, cores // 4)
    return ThreadPolicy(cores=cores, torch_threads=max(1, cores - onnx), onnx_threads=onnx, heavy_jobs=1,
                        draft_jobs=1)


_lock = threading.Lock()
_applied: ThreadPolicy | None = None


def apply_thread_policy(policy: ThreadPolicy | None = None) -> ThreadPolicy:
    """Set torch's thread counts from `policy` (default: `plan_threads(physical_cores())`), once per process.

    A second call changes nothing and returns the policy in force: torch's inter-op pool can only be sized
    before its first use, and threads resized mid-run would break the split.
    """
    global _applied
    with _lock:
        if _applied is not None:
            return _applied
        import torch

        policy = policy or plan_threads(physical_cores())
        torch.set_num_threads(policy.torch_threads)
        try:
            torch.set_num_interop_threads(1)  # the app never runs torch ops in parallel inside one job
        except RuntimeError:  # inter-op pool already started (torch used before the policy): keep its size
            pass
        _applied = policy
        return policy


def current_policy() -> ThreadPolicy:
    """The policy in force, or (before `apply_thread_policy`, e.g. in a library caller) the one it would apply."""
    return _applied or plan_threads(physical_cores())
