"""Out-of-memory during a run: a typed error with the memory-options hint, memory freed, app still usable."""
from __future__ import annotations

import gc
import weakref

import pytest
import torch

from engine import memory
from engine.errors import OutOfMemory
from engine.memory import cpu_speed_warning, is_out_of_memory, out_of_memory_guard

CUDA_OOM = ("CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 7.79 GiB of which "
            "1.02 GiB is free. Of the allocated memory 5.9 GiB is allocated by PyTorch")
CPU_OOM = ("[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't allocate memory: "
           "you tried to allocate 68719476736 bytes. Error code 12 (Cannot allocate memory)")


@pytest.fixture
def fake_cuda(monkeypatch):
    """Pretend CUDA is there and record empty_cache calls (CUDA-only faults are simulated)."""
    calls = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: calls.append("empty_cache"))
    return calls


def _run_that_runs_out(holder: list, exc: BaseException) -> None:
    """A stand-in for a stage: holds a large tensor in a local when the allocation fails."""
    activations = torch.zeros(1024, 1024)
    holder.append(weakref.ref(activations))
    raise exc


def test_cuda_oom_becomes_out_of_memory_with_hint_and_frees(fake_cuda):
    refs: list = []
    with pytest.raises(OutOfMemory) as info:
        with out_of_memory_guard("stage 3"):
            _run_that_runs_out(refs, torch.cuda.OutOfMemoryError(CUDA_OOM))
    err = info.value
    assert str(err) == "Ran out of GPU memory during stage 3 (tried to allocate 2.00 GiB)."
    _assert_hint_names_only_real_options(err.hint)
    assert "fp16" in err.hint
    assert fake_cuda == ["empty_cache"]
    assert refs[0]() is None  # the failed frame's tensor is gone while the errors still exist, before any gc


def test_frames_are_freed_even_while_the_original_error_is_referenced(fake_cuda):
    """contextlib holds the original exception during the guard; clearing frames must still free tensors."""
    refs: list = []
    original = torch.cuda.OutOfMemoryError(CUDA_OOM)
    with pytest.raises(OutOfMemory):
        with out_of_memory_guard():
            _run_that_runs_out(refs, original)
    assert original.__traceback__ is not None
    gc.collect()
    assert refs[0]() is None


@pytest.mark.parametrize("exc", [MemoryError(), RuntimeError(CPU_OOM)])
def test_cpu_oom_gets_the_system_memory_hint(exc):
    with pytest.raises(OutOfMemory, match="system memory") as info:
        with out_of_memory_guard("the analysis"):
            raise exc
    _assert_hint_names_only_real_options(info.value.hint)


def test_mps_style_runtime_error_counts_as_gpu():
    msg = "MPS backend out of memory (MPS allocated: 17.5 GB, other allocations: 1.2 GB). Tried to allocate 256 MB"
    with pytest.raises(OutOfMemory, match="GPU memory"):
        with out_of_memory_guard():
            raise RuntimeError(msg)


def test_other_errors_pass_through_untouched():
    with pytest.raises(RuntimeError, match="shape mismatch"):
        with out_of_memory_guard():
            raise RuntimeError("shape mismatch")
    with pytest.raises(ValueError):
        with out_of_memory_guard():
            raise ValueError("bad")
    assert not is_out_of_memory(RuntimeError("expected all tensors to be on the same device"))


def test_app_stays_usable_after_oom(fake_cuda):
    with pytest.raises(OutOfMemory):
        with out_of_memory_guard():
            raise torch.cuda.OutOfMemoryError(CUDA_OOM)
    with out_of_memory_guard():  # the next run goes through normally
        result = torch.ones(4).sum().item()
    assert result == 4.0


def test_free_memory_without_torch_loaded(monkeypatch):
    monkeypatch.delitem(memory.sys.modules, "torch")
    memory.free_memory()  # only gc; must not import torch


def test_cpu_speed_warning():
    assert "CPU" in cpu_speed_warning("cpu")
    assert cpu_speed_warning("cuda:0") is None
    assert cpu_speed_warning(torch.device("cpu")) is not None


def test_real_cpu_allocation_failure_is_caught():
    """Not simulated: torch's CPU allocator refuses a petabyte at once, and the guard recognises its error."""
    with pytest.raises(OutOfMemory, match="you tried to allocate 1125899906842624 bytes"):
        with out_of_memory_guard():
            torch.empty(2**50, dtype=torch.uint8)


def _assert_hint_names_only_real_options(hint: str) -> None:
    """The hint's advice is something the user can do: each option it names is one of `run`'s, and it sends
    nobody to options that do not exist (attention slicing, VAE tiling, CPU offload)."""
    import argparse
    import re

    from cli import run

    parser = argparse.ArgumentParser()
    run.add_parser(parser.add_subparsers())
    run_parser = parser._subparsers._group_actions[0].choices["run"]
    existing = {option for action in run_parser._actions for option in action.option_strings}
    named = set(re.findall(r"--[a-z][a-z0-9-]*", hint))
    assert {"--feature-batch", "--working-size"} <= named <= existing
    for missing in ("attention slicing", "VAE tiling", "CPU offload"):
        assert missing not in hint
