"""Stage 1, steps 1-3: time weights, timesteps, the DDIM inversion update and the F_mix capture, on a fake UNet."""
from __future__ import annotations

import threading
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from engine.errors import Cancelled
from engine.stage1.inversion import (ddim_invert, ddim_invert_batch, image_to_tensor, inversion_timesteps,
                                    time_weights)
from engine.params import Stage1Params


class FakeUNet(torch.nn.Module):
    """A deterministic stand-in with `up_blocks`: eps and the captured block output both depend on the input."""

    def __init__(self, channels: int = 5):
        super().__init__()
        torch.manual_seed(0)
        self.up_blocks = torch.nn.ModuleList([torch.nn.Identity(), torch.nn.Identity(),
                                              torch.nn.Conv2d(4, channels, 1)])
        self.calls: list[tuple[int, torch.Tensor]] = []

    def eps(self, sample: torch.Tensor) -> torch.Tensor:
        return torch.tanh(sample) * 0.5 + self.up_blocks[2](sample).mean(1, keepdim=True) * 0.1

    def forward(self, sample, timestep, encoder_hidden_states):
        self.calls.append((int(timestep), sample.clone()))
        return SimpleNamespace(sample=self.eps(sample))


def _alphas() -> torch.Tensor:
    from diffusers import DDIMScheduler

    from engine.models import SD15_DDIM_CONFIG

    return DDIMScheduler.from_config(SD15_DDIM_CONFIG).alphas_cumprod


def test_time_weights_match_spec_values():
    w = time_weights(15, 5.0, 0.7)
    assert w.sum().item() == pytest.approx(1.0, abs=1e-6)
    assert w[0].item() == pytest.approx(0.09355, abs=1e-5)
    assert w[14].item() == pytest.approx(0.02289, abs=1e-5)
    assert torch.all(w[1:] < w[:-1])


def test_timesteps_are_leading_ddim():
    assert inversion_timesteps(Stage1Params()) == [1 + 66 * i for i in range(15)]
    assert inversion_timesteps(Stage1Params())[-1] == 925


def test_image_to_tensor_is_uint8_over_255():
    img = Image.fromarray(np.array([[[0, 128, 255]]], dtype=np.uint8))
    assert image_to_tensor(img).flatten().tolist() == pytest.approx([0.0, 128 / 255, 1.0])


def test_inversion_update_and_capture_follow_spec():
    unet = FakeUNet(channels=5)
    latent = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    alphas = _alphas()
    params = Stage1Params()
    result = ddim_invert(unet, latent, torch.zeros(1, 77, 8), alphas, params)

    # Independent float64 replay of SPEC step 1 (p = max(0, t - 66), alphas indexed directly).
    a = alphas.double().numpy()
    z = latent.double()
    weights = [1 / (1 + np.exp(5 * (i / 15 - 0.7))) for i in range(15)]
    weights = np.array(weights) / sum(weights)
    fmix = 0
    assert [t for t, _ in unet.calls] == inversion_timesteps(params)
    for i, (t, seen) in enumerate(unet.calls):
        assert torch.allclose(seen.double(), z, atol=1e-5)  # each call sees the current latent (F_0: the clean one)
        with torch.no_grad():
            feature = unet.up_blocks[2](z.float()).double()
            eps = unet.eps(z.float()).double()
        fmix = fmix + weights[i] * feature
        a_p, a_t = a[max(0, t - 66)], a[t]
        z = (z - np.sqrt(1 - a_p) * eps) * (np.sqrt(a_t) / np.sqrt(a_p)) + np.sqrt(1 - a_t) * eps
        assert torch.allclose(result.latents[i].double(), z[0], atol=1e-4)
    assert a[0] == pytest.approx(0.99915, abs=1e-6)  # the first step uses alpha_bar_0, not 1
    assert result.fmix.shape == (5, 8, 8)  # the channel count comes from the model
    assert torch.allclose(result.fmix.double(), fmix[0], atol=1e-5)
    assert torch.equal(result.c15, result.latents[-1])


def test_inversion_checks_cancel_between_steps():
    unet = FakeUNet()
    flag = threading.Event()

    def on_step(i: int) -> None:
        if i == 2:
            flag.set()

    with pytest.raises(Cancelled):
        ddim_invert(unet, torch.zeros(1, 4, 8, 8), torch.zeros(1, 77, 8), _alphas(), Stage1Params(), flag, on_step)
    assert len(unet.calls) == 3
    assert not unet.up_blocks[2]._forward_hooks  # the capture hook is removed even on cancel


def test_batched_inversion_is_one_call_per_step_and_equals_one_by_one():
    latents = torch.randn(3, 4, 8, 8, generator=torch.Generator().manual_seed(2))
    params = Stage1Params()
    unet = FakeUNet()
    batched = ddim_invert_batch(unet, latents, torch.zeros(1, 77, 8), _alphas(), params)
    assert len(unet.calls) == params.inversion_steps  # the whole batch in every call
    assert all(sample.shape[0] == 3 for _, sample in unet.calls)
    for b, result in enumerate(batched):
        alone = ddim_invert(FakeUNet(), latents[b:b + 1], torch.zeros(1, 77, 8), _alphas(), params)
        assert result.latents.shape == alone.latents.shape and result.fmix.shape == alone.fmix.shape
        assert torch.allclose(result.latents, alone.latents, atol=1e-6)
        assert torch.allclose(result.fmix, alone.fmix, atol=1e-6)
