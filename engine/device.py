"""Choosing the device and the weight precision, and a one-line description of the device for the user.

"auto" means CUDA in fp16 where a CUDA GPU is present (as the reference runs), Apple's MPS in fp32 where that is
present, otherwise the CPU in fp32 (half precision on CPU is slow and poorly supported).
"""
from __future__ import annotations

from pathlib import Path

import torch

from .errors import InvalidRequest

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def pick_device(pref: str = "auto") -> torch.device:
    """The torch device for "auto", "cuda", "cuda:N", "mps" or "cpu"; an unavailable request is an error."""
    if pref == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if _mps_available() else torch.device("cpu")
    try:
        device = torch.device(pref)
    except RuntimeError as exc:
        raise InvalidRequest(f"unknown device '{pref}'", hint="Use auto, cuda, cuda:N, mps or cpu.") from exc
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise InvalidRequest("a CUDA GPU was requested but none is available",
                                 hint="Choose 'auto' or 'cpu', or check the GPU driver and the CUDA build of torch.")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise InvalidRequest(f"there is no {device} (this machine has {torch.cuda.device_count()} CUDA GPUs)",
                                 hint="Choose 'cuda' or 'cuda:0'.")
    if device.type == "mps" and not _mps_available():
        raise InvalidRequest("Apple's MPS device was requested but is not available", hint="Choose 'auto' or 'cpu'.")
    return device


def bf16_fast_on_cpu(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether this CPU has AMX tiles with bf16 (Intel Sapphire Rapids and later): detected, never assumed. Without
    AMX, bf16 matrix products on a CPU gain little or nothing over fp32."""
    probe = getattr(torch.cpu, "_is_amx_tile_supported", None)
    if probe is not None:
        try:
            return bool(probe())
        except RuntimeError:  # a build without the probe compiled in: read the kernel's flags
            pass
    try:
        return "amx_bf16" in cpuinfo.read_text().split()
    except OSError:
        return False


def pick_dtype(device: torch.device, pref: str = "auto") -> torch.dtype:
    """Weight precision: "auto" = fp16 on CUDA, fp32 elsewhere; "fp32", "fp16", "bf16" force one.

    bf16 is not "auto" on a CPU, even with AMX (`bf16_fast_on_cpu`): it moves stage 3's final latent 1.3e-2 from
    fp32, 8x further than the authors' own fp16 arithmetic does (1.6e-3; benchmarks/NOTES.md, "Precision rule").
    """
    if pref == "auto":
        return torch.float16 if torch.device(device).type == "cuda" else torch.float32
    if pref not in DTYPES:
        raise InvalidRequest(f"unknown precision '{pref}'", hint="Use auto, fp32, fp16 or bf16.")
    return DTYPES[pref]


def device_summary(device: torch.device) -> str:
    """'NVIDIA GeForce RTX 4090, 21.3 GiB free', 'Apple GPU (MPS)' or 'CPU: slow'."""
    device = torch.device(device)
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return f"{torch.cuda.get_device_name(device)}, {free / 2**30:.1f} GiB free"
    if device.type == "mps":
        return "Apple GPU (MPS)"
    return "CPU: slow"
