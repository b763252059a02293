"""Device and precision choice on CPU, with CUDA simulated (CI has no GPU)."""
from __future__ import annotations

import pytest
import torch

from engine import device as dev
from engine.errors import InvalidRequest


@pytest.fixture
def fake_cuda(monkeypatch):
    """Pretend one CUDA GPU with 21.3 GiB free is present."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA Test GPU")
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (int(21.3 * 2**30), 24 * 2**30))


@pytest.fixture
def no_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(dev, "_mps_available", lambda: False)


def test_auto_is_cpu_fp32_without_gpu(no_gpu):
    device = dev.pick_device("auto")
    assert device == torch.device("cpu")
    assert dev.pick_dtype(device) == torch.float32
    assert dev.device_summary(device) == "CPU: slow"


def test_auto_is_cuda_fp16_with_gpu(fake_cuda):
    device = dev.pick_device("auto")
    assert device.type == "cuda"
    assert dev.pick_dtype(device) == torch.float16
    assert dev.device_summary(device) == "NVIDIA Test GPU, 21.3 GiB free"


@pytest.mark.parametrize("pref, dtype", [("fp32", torch.float32), ("fp16", torch.float16), ("bf16", torch.bfloat16)])
def test_precision_override(pref, dtype):
    assert dev.pick_dtype(torch.device("cpu"), pref) == dtype
    assert dev.pick_dtype(torch.device("cuda"), pref) == dtype


def test_unknown_precision_is_an_error():
    with pytest.raises(InvalidRequest):
        dev.pick_dtype(torch.device("cpu"), "fp8")


def test_cuda_requested_without_gpu_is_an_error(no_gpu):
    with pytest.raises(InvalidRequest, match="CUDA"):
        dev.pick_device("cuda")


def test_cuda_index_out_of_range(fake_cuda):
    assert dev.pick_device("cuda:0") == torch.device("cuda:0")
    with pytest.raises(InvalidRequest, match="cuda:3"):
        dev.pick_device("cuda:3")


def test_explicit_cpu_and_garbage(fake_cuda):
    assert dev.pick_device("cpu") == torch.device("cpu")
    with pytest.raises(InvalidRequest):
        dev.pick_device("gpu-please")


def test_amx_is_detected_from_the_cpu_not_assumed(monkeypatch, tmp_path):
    from engine import device

    monkeypatch.setattr(device.torch.cpu, "_is_amx_tile_supported", None, raising=False)
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("flags\t\t: fpu avx512f avx512_bf16\n")
    assert not device.bf16_fast_on_cpu(cpuinfo)  # AVX-512 bf16 without AMX tiles: no
    cpuinfo.write_text("flags\t\t: fpu avx512f amx_bf16 amx_tile\n")
    assert device.bf16_fast_on_cpu(cpuinfo)
    assert not device.bf16_fast_on_cpu(tmp_path / "absent")
    monkeypatch.setattr(device.torch.cpu, "_is_amx_tile_supported", lambda: True, raising=False)
    assert device.bf16_fast_on_cpu(tmp_path / "absent")  # torch's own probe first
