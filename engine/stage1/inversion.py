"""Stage 1, steps 1-3: VAE encoding, DDIM inversion with feature capture, and the time-weighted F_mix.

Functions take the modules and tensors they need (not a model bundle) so each piece can be tested with
small or fake models. The arithmetic follows ../shared/SPEC.md "Preprocessing" and "Stage 1" exactly:
the reference's inversion indexes `alphas_cumprod` directly at t_i and p = max(0, t_i - stride), so the
first step uses alpha_bar_0 = 0.99915 rather than 1.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
import torch
from PIL import Image

from ..errors import Cancelled
from ..params import VAE_SCALING_FACTOR, Stage1Params
from ..types import CancelFlag


def image_to_tensor(image: Image.Image) -> torch.Tensor:
    """8-bit RGB PIL image -> float32 (1, 3, H, W) in [0, 1] (the arithmetic of torchvision's ToTensor)."""
    array = np.asarray(image.convert("RGB"), dtype=np.uint8)
    return torch.from_numpy(array.copy()).permute(2, 0, 1).unsqueeze(0).float().div(255.0)


@torch.no_grad()
def encode_latent(vae: torch.nn.Module, image: Image.Image, scaling_factor: float = VAE_SCALING_FACTOR) -> torch.Tensor:
    """`latent_dist.mean(VAE(2x - 1)) * scaling_factor` of an already resized image, float32 (1, 4, h, w).

    The mean (not a sample) keeps the analysis deterministic, as the reference does.
    """
    param = next(vae.parameters())
    x = image_to_tensor(image).to(device=param.device, dtype=param.dtype) * 2.0 - 1.0
    return (vae.encode(x).latent_dist.mean * scaling_factor).float()


def inversion_timesteps(params: Stage1Params) -> list[int]:
    """t_i = 1 + stride * i for i = 0..steps-1 (DDIM's "leading" 15-step schedule, ascending)."""
    return [1 + params.inversion_stride * i for i in range(params.inversion_steps)]


def time_weights(steps: int, sharpness: float, centre: float) -> torch.Tensor:
    """w_i = 1 / (1 + exp(sharpness (i / steps - centre))), normalised to sum 1 (float32, as the reference)."""
    index = torch.arange(steps)
    weights = 1.0 / (1.0 + torch.exp(sharpness * (index / steps - centre)))
    return weights / weights.sum()


@contextmanager
def capture_output(module: torch.nn.Module) -> Iterator[list[torch.Tensor]]:
    """Collect `module`'s output (first element when it returns a tuple) on every forward, hook removed after."""
    captured: list[torch.Tensor] = []

    def hook(_module, _inputs, output):
        captured.append(output[0] if isinstance(output, (tuple, list)) else output)

    handle = module.register_forward_hook(hook)
    try:
        yield captured
    finally:
        handle.remove()


@dataclass
class InversionResult:
    """latents: float32 (steps, 4, h, w), the latent after each step (latents[-1] is C15);
    fmix: float32 (C, h, w), the time-weighted captured features."""

    latents: torch.Tensor
    fmix: torch.Tensor

    @property
    def c15(self) -> torch.Tensor:
        return self.latents[-1]


def ddim_invert(unet: torch.nn.Module, latent: torch.Tensor, text_embeds: torch.Tensor,
                alphas_cumprod: torch.Tensor, params: Stage1Params, cancel: CancelFlag | None = None,
                on_step: Callable[[int], None] | None = None) -> InversionResult:
    """DDIM inversion of one clean latent (1, 4, h, w): `ddim_invert_batch` with a batch of one."""
    return ddim_invert_batch(unet, latent, text_embeds, alphas_cumprod, params, cancel, on_step)[0]


@torch.no_grad()
def ddim_invert_batch(unet: torch.nn.Module, latents: torch.Tensor, text_embeds: torch.Tensor,
                      alphas_cumprod: torch.Tensor, params: Stage1Params, cancel: CancelFlag | None = None,
                      on_step: Callable[[int], None] | None = None) -> list[InversionResult]:
    """DDIM inversion of B clean latents of one size (B, 4, h, w) with the empty-prompt embeddings (1, 77, D),
    one UNet call per step for the whole batch (the images never interact: the same results as one by one, up to
    the rounding of the batched kernels).

    Each UNet call predicts eps at the target t_i on the current latents; the output of
    `unet.up_blocks[params.feature_block]` is captured on the same call (so F_0 comes from the clean
    latent) and accumulated into F_mix with the time weights. The latent update runs in float32 whatever
    the UNet's dtype. `on_step(i)` is called after step i; `cancel` is checked before every UNet call.
    """
    param = next(unet.parameters())
    alphas = alphas_cumprod.to(dtype=torch.float32, device="cpu")
    weights = time_weights(params.inversion_steps, params.time_weight_sharpness, params.time_weight_centre)
    block = unet.up_blocks[params.feature_block]
    batch = latents.shape[0]
    embeds = text_embeds.to(device=param.device, dtype=param.dtype).expand(batch, -1, -1)
    z = latents.to(device=param.device, dtype=torch.float32)
    steps: list[torch.Tensor] = []
    fmix: torch.Tensor | None = None
    with capture_output(block) as captured:
        for i, t in enumerate(inversion_timesteps(params)):
            if cancel is not None and cancel.is_set():
                raise Cancelled("Analysis cancelled")
            timestep = torch.tensor([t], dtype=torch.long, device=param.device)
            eps = unet(z.to(param.dtype), timestep, encoder_hidden_states=embeds).sample.float()
            feature = captured.pop().float()
            term = feature * weights[i].to(feature.device)
            fmix = term if fmix is None else fmix + term
            a_p = alphas[max(0, t - params.inversion_stride)].to(z.device)
            a_t = alphas[t].to(z.device)
            z = (z - (1 - a_p).sqrt() * eps) * (a_t.sqrt() / a_p.sqrt()) + (1 - a_t).sqrt() * eps
            steps.append(z)
            if on_step is not None:
                on_step(i)
    trajectory = torch.stack(steps, dim=1)  # (B, steps, 4, h, w)
    return [InversionResult(latents=trajectory[b], fmix=fmix[b]) for b in range(batch)]
