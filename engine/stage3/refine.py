"""Refine: stage 3 continued on a larger latent grid, for a result at (nearer) the photo's own resolution.

The optimised working-size latent is enlarged (about x2 per side, never past the output size), the content's
clean latent is encoded again from the photo at the larger size (its queries then see the photo's real detail),
the regions are enlarged by nearest sampling and the matches kept; then the last `refine_steps` timesteps of the
stage-3 schedule (the low-noise ones, which shape fine detail) run again at the larger grid. The references keep
their own grids: a region's keys and values do not depend on the content's size. Attention runs through SDPA, so
the 16k-token layers of a 1024 x 1024 grid fit in memory on a GPU; the decode tiles the VAE above
`vae_tiling_pixels`.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..images import resize_to
from ..params import LATENT_FACTOR, OutputParams, Stage3Params
from ..stage1.inversion import encode_latent
from ..stage1.regions import sample_grid
from ..types import CancelFlag, EventCallback, RegionMatch, StepEvent
from .features import FeatureCache
from .stylize import (LossParts, Optimisation, StyleInputs, decode_latent, evaluate_loss, fast_mode_lora, frozen,
                      optimise, prepare_embeds, reference_features, region_terms, stage3_timesteps, to_uint8)

if TYPE_CHECKING:
    from ..models import SDModels


def refine_size(working: tuple[int, int], output: tuple[int, int], params: OutputParams,
                multiple: int = 64) -> tuple[int, int] | None:
    """The (width, height) in pixels of the refine grid: the output's aspect, long side at most refine_factor times
    the working size's and at most the output's, sides multiples of `multiple`. None when it would not be larger
    than the working size (nothing to refine)."""
    long_side = min(max(working) * params.refine_factor, max(output))
    scale = long_side / max(output)
    size = tuple(max(multiple, int(side * scale) // multiple * multiple) for side in output)
    return size if size[0] * size[1] > working[0] * working[1] else None


@contextmanager
def vae_tiling(vae, enabled: bool) -> Iterator[None]:
    """The VAE's tiled decode for the block where diffusers offers it (AutoencoderKL), switched back off after."""
    tiled = enabled and hasattr(vae, "enable_tiling")
    if tiled:
        vae.enable_tiling()
    try:
        yield
    finally:
        if tiled:
            vae.disable_tiling()


@dataclass
class RefineOutcome:
    latent: np.ndarray  # float32 (4, H/8, W/8)
    image: np.ndarray  # uint8 (H, W, 3) at the refine size
    run: Optimisation


class Refiner:
    """Stage 3's loss at the refine grid (regions enlarged, matches kept), and the optimisation that lowers it."""

    def __init__(self, sd: "SDModels", text_embeds: torch.Tensor, photo: Image.Image, size: tuple[int, int],
                 content: StyleInputs, references: list[StyleInputs], matches: dict[int, RegionMatch],
                 stage3: Stage3Params, params: OutputParams, feature_cache: FeatureCache | None = None):
        self.sd, self.stage3, self.params, self.size = sd, stage3, params, size
        self.grid = (size[1] // LATENT_FACTOR, size[0] // LATENT_FACTOR)
        self.device = sd.unet.device
        self.embeds = prepare_embeds(text_embeds, self.device)
        clean = encode_latent(sd.vae, resize_to(photo, size))[0].cpu().numpy()
        large = StyleInputs(clean, sample_grid(content.labels, self.grid))
        self.terms = region_terms(large, references, matches)
        self.timesteps = stage3_timesteps(sd.scheduler_config, stage3)[-params.refine_steps:]
        self._provider_args = (clean, references, feature_cache)

    def start(self, latent: np.ndarray) -> torch.Tensor:
        """The working-size latent (4, h, w) enlarged bicubically to the refine grid, (1, 4, H, W), requiring grad."""
        z = torch.as_tensor(np.asarray(latent), dtype=torch.float32)[None].to(self.device)
        return F.interpolate(z, size=self.grid, mode="bicubic", align_corners=False).requires_grad_(True)

    @contextmanager
    def _session(self):
        with fast_mode_lora(self.sd.unet, self.stage3.fast_mode, self.stage3.lora_source), frozen(self.sd.unet):
            clean, references, cache = self._provider_args
            yield reference_features(self.sd, self.embeds, clean, references, self.terms, self.stage3, cache)

    def loss(self, z: torch.Tensor, timestep: float) -> LossParts:
        """The stage-3 loss of z at the refine grid and `timestep` (for checks and tests)."""
        with self._session() as provider:
            return evaluate_loss(self.sd.unet, z, timestep, self.embeds, provider.at(timestep), self.terms,
                                 self.stage3)

    def run(self, z: torch.Tensor, on_event: EventCallback | None = None, cancel: CancelFlag | None = None,
            first_step: int = 0, total_steps: int | None = None) -> RefineOutcome:
        """Optimise z over the tail of the schedule (z is updated in place), then decode it (tiled when large)."""
        with self._session() as provider:
            run = optimise(self.sd.unet, z, self.timesteps, provider, self.terms, self.embeds, self.stage3,
                           self.params.refine_lr, on_event, cancel, first_step, total_steps)
        if on_event is not None:
            on_event(StepEvent("decode", 0, 1, message="decoding the refined latent"))
        with vae_tiling(self.sd.vae, self.size[0] * self.size[1] > self.params.vae_tiling_pixels):
            image = decode_latent(self.sd.vae, z)
        return RefineOutcome(z.detach()[0].float().cpu().numpy(), to_uint8(image), run)

    @property
    def steps(self) -> int:
        return len(self.timesteps) * self.stage3.iters_per_step
