"""Resource faults: out-of-memory during a run, and the speed warning for machines without a GPU.

An out-of-memory error must end the run, not the app: `out_of_memory_guard` turns every flavour of it
(CUDA/XPU `torch.OutOfMemoryError`, MPS and older CUDA `RuntimeError`s, CPU `MemoryError` and the CPU
allocator's RuntimeError) into `OutOfMemory` with a hint. It clears the frames of the original
traceback first: they hold the failed run's locals -- every tensor it had -- and stay alive as long as
anything references the exception (contextlib itself does, while the guard runs), so memory could not
be freed otherwise. Locals of the function around the `with` block are the caller's to drop.
"""
from __future__ import annotations

import gc
import logging
import re
import sys
import traceback
from contextlib import contextmanager
from typing import Iterator

from .errors import OutOfMemory

log = logging.getLogger(__name__)

CPU_HINT = ("Close other programs, use fewer references, or lower the memory use: fewer references per feature "
            "pass (--feature-batch 1) or a smaller working size (--working-size 384).")
CPU_SPEED_WARNING = ("No GPU found: running on the CPU. It works, but a transfer takes many minutes; "
                     "a fast mode (Generation panel) or the instant draft helps.")
_OOM_TEXT = re.compile(r"out of memory|can't allocate memory|not enough memory", re.IGNORECASE)
_ALLOCATION = re.compile(r"Tried to allocate [0-9.]+ [KMGT]?i?B|you tried to allocate \d+ bytes", re.IGNORECASE)


@contextmanager
def out_of_memory_guard(what: str = "the run") -> Iterator[None]:
    """Run the body; if it runs out of memory, free what it held and raise `OutOfMemory` for `what`."""
    try:
        yield
    except (MemoryError, RuntimeError) as exc:
        if not is_out_of_memory(exc):
            raise
        _clear_frames(exc)
        detail = _allocation(exc)
        if _on_accelerator(exc):
            failure = OutOfMemory(f"Ran out of GPU memory during {what}{detail}.")
        else:
            failure = OutOfMemory(f"Ran out of system memory during {what}{detail}.", hint=CPU_HINT)
        log.warning("%s Original error: %s", failure, str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        free_memory()
        raise failure from None


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether `exc` is an allocation failure from torch (any device) or Python."""
    if isinstance(exc, MemoryError) or _is_torch_oom(exc):
        return True
    return isinstance(exc, RuntimeError) and bool(_OOM_TEXT.search(str(exc)))


def free_memory() -> None:
    """Collect garbage, then hand cached accelerator memory back so the next run (or another app) can use it."""
    gc.collect()
    torch = sys.modules.get("torch")  # no torch loaded means no tensors to free
    if torch is None:
        return
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    mps = getattr(torch, "mps", None)
    if mps is not None and torch.backends.mps.is_available():
        mps.empty_cache()


def cpu_speed_warning(device: str) -> str | None:
    """The warning to show once when the engine resolved to the CPU (None on a GPU)."""
    return CPU_SPEED_WARNING if str(device).split(":")[0] == "cpu" else None


def _clear_frames(exc: BaseException) -> None:
    """Drop the locals of every finished frame in `exc`'s traceback and those of the errors it chains to."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        traceback.clear_frames(exc.__traceback__)
        exc = exc.__cause__ or exc.__context__


def _on_accelerator(exc: BaseException) -> bool:
    """torch's OutOfMemoryError is raised for accelerators; its CPU allocator says "CPU" in a RuntimeError."""
    if isinstance(exc, MemoryError):
        return False
    return _is_torch_oom(exc) or "cpu" not in str(exc).lower()


def _is_torch_oom(exc: BaseException) -> bool:
    torch = sys.modules.get("torch")
    oom_type = getattr(torch, "OutOfMemoryError", None) if torch is not None else None
    return oom_type is not None and isinstance(exc, oom_type)


def _allocation(exc: BaseException) -> str:
    """' (tried to allocate 2.00 GiB)' from torch's message, the one detail of it worth showing."""
    match = _ALLOCATION.search(str(exc))
    return f" ({match.group(0)[0].lower()}{match.group(0)[1:]})" if match else ""
