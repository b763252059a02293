"""Stage 3: the energy-guided optimisation of the latent (SPEC "Stage 3").

z starts from the content's C15 normalised per pixel and is moved by Adam on
`L = L_style + content_weight * L_content`, built from the self-attention tensors of the layers in
`params.layers` (execution order). At each timestep the content's queries and the references' keys
and values come from `ReferenceFeatures` (one batched no-grad UNet call, optionally cached); only
the pass through z needs gradients. The scheduler only supplies timestep values: z is optimised
directly, nothing calls `step()`.
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import DDIMScheduler, EulerDiscreteScheduler, LCMScheduler
from diffusers.loaders import StableDiffusionLoraLoaderMixin

from .attention import FeatureStore, capture_self_attention, forward_until_recorded
from ..params import FAST_MODES, VAE_SCALING_FACTOR, Stage3Params
from ..preview import latent_to_rgb
from ..stage1.regions import sample_grid
from .features import FeatureCache, ReferenceFeatures, StepFeatures, autocast_for
from ..types import CancelFlag, EventCallback, LossRecord, RegionMatch, StepEvent, is_cancelled

if TYPE_CHECKING:
    from ..models import SDModels

LORA_ADAPTER = "stylegallery_fast_mode"
LCM_ORIGINAL_STEPS = 50


@dataclass
class StyleInputs:
    """What stage 3 needs of one image: its clean scaled VAE latent (4, H, W), its label map (H, W)
    and, for the content, C15 (4, H, W). The label grid is the latent grid (64x64 at 512 px)."""

    vae_latent: np.ndarray
    labels: np.ndarray
    c15: np.ndarray | None = None


@dataclass
class StylizeOutcome:
    """A run's result; `cancelled` marks a partial run (its latent is decoded all the same)."""

    latent: np.ndarray  # float32 (4, H, W)
    image: np.ndarray  # uint8 (8H, 8W, 3)
    losses: list[LossRecord]
    steps_done: int
    steps_total: int
    cancelled: bool = False
    skipped_steps: int = 0  # fp16 only: steps the loss scaler skipped because gradients overflowed


@dataclass
class RegionTerm:
    """One content region's style term: its mask and the mask of the reference region it copies.

    Masks are kept at the label grid and resized (floor-index nearest) to each layer's token grid once.
    """

    content_region: int
    reference: int
    content_mask: np.ndarray  # bool (H, W)
    style_mask: np.ndarray  # bool (H, W); all True for a whole-reference pin
    _resized: dict = field(default_factory=dict, repr=False)

    def masks(self, tokens_c: int, tokens_s: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """For a layer with that many content / reference tokens: the content region's token indices and the
        (1, 1, tokens_s, 1) float style mask."""
        key = (tokens_c, tokens_s, str(device))
        if key not in self._resized:
            rows = torch.from_numpy(np.flatnonzero(mask_to_tokens(self.content_mask, tokens_c))).to(device)
            style = torch.from_numpy(mask_to_tokens(self.style_mask, tokens_s).astype(np.float32)).to(device)
            self._resized[key] = rows, style.view(1, 1, tokens_s, 1)
        return self._resized[key]


@dataclass
class LossParts:
    """A loss evaluation. `total` carries the graph; the parts are detached, keyed by layer / region."""

    total: torch.Tensor
    style: torch.Tensor
    content: torch.Tensor
    content_per_layer: dict[int, torch.Tensor]
    style_per_region_layer: dict[int, dict[int, torch.Tensor]]


def mask_to_tokens(mask: np.ndarray, tokens: int) -> np.ndarray:
    """A (H, W) map sampled down to the layer grid holding `tokens` cells, flattened row-major.

    Floor-index nearest sampling (as `F.interpolate(mode="nearest")`): cell i takes row floor(i * H / h).
    """
    height, width = mask.shape
    factor = math.isqrt(height * width // tokens)
    rows, cols = height // factor, width // factor
    if rows * cols != tokens:
        raise ValueError(f"a {height}x{width} label grid does not scale to a layer of {tokens} tokens")
    return sample_grid(mask, (rows, cols)).reshape(-1)


def region_terms(content: StyleInputs, references: list[StyleInputs],
                 matches: dict[int, RegionMatch]) -> list[RegionTerm]:
    """One term per content region that is present in the label map and has a match (ascending id)."""
    terms = []
    for region in np.unique(content.labels):
        match = matches.get(int(region))
        if match is None:
            continue
        ref = references[match.style_index]
        style = (np.ones_like(ref.labels, dtype=bool) if match.style_region is None
                 else ref.labels == match.style_region)
        terms.append(RegionTerm(int(region), match.style_index, content.labels == region, style))
    return terms


def initial_latent(c15: np.ndarray | torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """z0: C15 normalised per pixel across its channels, (z - mean_c) / (unbiased std_c + eps); (1, 4, H, W)."""
    z = torch.as_tensor(np.asarray(c15) if not isinstance(c15, torch.Tensor) else c15, dtype=torch.float32)
    z = z.reshape(1, *z.shape[-3:])
    return (z - z.mean(dim=1, keepdim=True)) / (z.std(dim=1, keepdim=True) + eps)


def stage3_timesteps(scheduler_config: dict, params: Stage3Params) -> list[float]:
    """The timestep values of a run: DDIM's `set_timesteps(steps)`, or a fast mode's LCM / trailing Euler list."""
    if params.fast_mode == "none":
        scheduler = DDIMScheduler.from_config(scheduler_config)
    elif FAST_MODES[params.fast_mode].scheduler == "lcm":
        scheduler = LCMScheduler.from_config(scheduler_config, original_inference_steps=LCM_ORIGINAL_STEPS)
    else:
        scheduler = EulerDiscreteScheduler.from_config(scheduler_config, timestep_spacing="trailing")
    scheduler.set_timesteps(params.steps)
    return [float(t) for t in scheduler.timesteps]


@contextmanager
def fast_mode_lora(unet, mode: str, source: str | None = None) -> Iterator[None]:
    """Load and fuse a fast mode's LoRA into the UNet for the block, then unfuse and remove it.

    `source` overrides the hub id of FAST_MODES (a local folder or .safetensors file). Unfusing
    subtracts the update again, so the base weights come back up to float rounding.
    """
    if mode == "none":
        yield
        return
    spec = FAST_MODES[mode]
    weight_name = spec.weight_name if source is None else None
    state_dict, alphas = StableDiffusionLoraLoaderMixin.lora_state_dict(source or spec.lora, weight_name=weight_name)
    StableDiffusionLoraLoaderMixin.load_lora_into_unet(state_dict, alphas, unet=unet, adapter_name=LORA_ADAPTER)
    try:
        unet.fuse_lora(adapter_names=[LORA_ADAPTER])
        yield
    finally:
        unet.unfuse_lora()
        unet.delete_adapters(LORA_ADAPTER)


@contextmanager
def frozen(module: torch.nn.Module) -> Iterator[None]:
    """No parameter gradients inside the block (only z is optimised), the flags restored after."""
    flags = [(p, p.requires_grad) for p in module.parameters()]
    module.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


def style_term(query: torch.Tensor, out: torch.Tensor, keys: torch.Tensor, values: torch.Tensor,
               rows: torch.Tensor, query_scale: float) -> torch.Tensor:
    """mean over ALL elements of |O*M_c - Attn(query_scale * Q*M_c, K, V)|, K and V already style-masked.

    Only the region's query rows need an attention: outside the region Q*M_c = 0, every logit is 0, so the
    target row is the plain mean of V over all keys and O*M_c is 0 there. Computing it this way gives the
    same number at one attention per layer for all regions together instead of one per region.
    """
    with torch.no_grad():
        inside_target = F.scaled_dot_product_attention(query_scale * query[:, :, rows], keys, values)
        outside = values.mean(dim=2).abs().sum() * (query.shape[2] - rows.numel())
    inside = (out[:, :, rows] - inside_target).abs().sum()
    return (inside + outside) / out.numel()


def regional_loss(store: FeatureStore, features: StepFeatures, terms: list[RegionTerm],
                  params: Stage3Params) -> LossParts:
    """SPEC's loss from the tensors of one pass through z, computed in float32.

    content: sum over layers of mean|Q - Q_c|. style: per region and layer, target =
    Attn(query_scale * Q*M_c, K_s*M_s, V_s*M_s) (detached, no attention mask), term = mean|O*M_c - target|
    (`style_term`).
    """
    content_parts: dict[int, torch.Tensor] = {}
    style_parts: dict[int, dict[int, torch.Tensor]] = {term.content_region: {} for term in terms}
    for layer in params.layers:
        rec = store[layer]
        query, out = rec.query.float(), rec.out.float()
        content_parts[layer] = (query - features.content_query[layer].float()).abs().mean()
        for term in terms:
            keys = features.keys[term.reference][layer].float()
            values = features.values[term.reference][layer].float()
            rows, style_mask = term.masks(query.shape[2], keys.shape[2], query.device)
            style_parts[term.content_region][layer] = style_term(query, out, keys * style_mask, values * style_mask,
                                                                 rows, params.query_scale)
    content = torch.stack(list(content_parts.values())).sum()
    flat_style = [p for parts in style_parts.values() for p in parts.values()]
    style = torch.stack(flat_style).sum() if flat_style else content.new_zeros(())
    detach = lambda parts: {k: v.detach() for k, v in parts.items()}  # noqa: E731
    return LossParts(total=style + params.content_weight * content, style=style.detach(), content=content.detach(),
                     content_per_layer=detach(content_parts),
                     style_per_region_layer={r: detach(p) for r, p in style_parts.items()})


def evaluate_loss(unet, z: torch.Tensor, timestep: float, text_embeds: torch.Tensor, features: StepFeatures,
                  terms: list[RegionTerm], params: Stage3Params) -> LossParts:
    """One pass of z through the UNet (with graph when z requires grad) and the loss of its tensors; the pass stops
    after the last recorded layer's attention, the rest of the UNet does not enter the loss."""
    store = FeatureStore()
    t = torch.tensor(timestep, device=z.device)
    with capture_self_attention(unet, params.layers, store, stop="out"), autocast_for(z.device, params.precision):
        forward_until_recorded(unet, z, t, encoder_hidden_states=text_embeds, return_dict=False)
    return regional_loss(store, features, terms, params)


def decode_latent(vae, z: torch.Tensor) -> np.ndarray:
    """z / 0.18215 -> VAE decode -> (x + 1) / 2 clamped to [0, 1]; float32 (H, W, 3)."""
    with torch.no_grad():
        x = vae.decode(z.detach().to(vae.device, vae.dtype) / VAE_SCALING_FACTOR, return_dict=False)[0]
    x = ((x.float() + 1) / 2).clamp(0, 1)
    return x[0].permute(1, 2, 0).cpu().numpy()


def to_uint8(image: np.ndarray) -> np.ndarray:
    """[0, 1] float -> uint8, floor(255 x + 0.5)."""
    return np.floor(np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def prepare_embeds(text_embeds: torch.Tensor | np.ndarray, device: torch.device) -> torch.Tensor:
    """The empty prompt's (77, D) or (1, 77, D) hidden state as a (1, 77, D) float32 tensor on the device."""
    embeds = torch.as_tensor(text_embeds, dtype=torch.float32)
    return embeds.reshape(1, *embeds.shape[-2:]).to(device)


def latent_tensor(latent: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.as_tensor(np.asarray(latent), dtype=torch.float32).reshape(1, *latent.shape[-3:]).to(device)


@dataclass
class Optimisation:
    """What `optimise` did to z (in place): the losses, fp16 steps skipped, and whether it was cancelled."""

    losses: list[LossRecord]
    skipped: int
    cancelled: bool


def optimise(unet, z: torch.Tensor, timesteps: list[float], provider: ReferenceFeatures, terms: list[RegionTerm],
             embeds: torch.Tensor, params: Stage3Params, lr: float, on_event: EventCallback | None = None,
             cancel: CancelFlag | None = None, first_step: int = 0, total_steps: int | None = None) -> Optimisation:
    """Adam on z (requires grad) over `timesteps`, `params.iters_per_step` updates each; `cancel` checked before
    every update. Events count from `first_step` out of `total_steps` (so a refine continues stage 3's count)."""
    total_steps = total_steps or len(timesteps) * params.iters_per_step
    optimizer = torch.optim.Adam([z], lr=lr, betas=params.adam_betas, eps=params.adam_eps)
    scaler = torch.amp.GradScaler(z.device.type, init_scale=params.loss_scale_init,
                                  enabled=params.precision == "fp16")
    losses: list[LossRecord] = []
    skipped = 0
    for timestep in timesteps:
        features = provider.at(timestep, cancel)  # checks `cancel` between its batched passes
        for _ in range(params.iters_per_step):
            if features is None or is_cancelled(cancel):
                return Optimisation(losses, skipped, True)
            parts = evaluate_loss(unet, z, timestep, embeds, features, terms, params)
            if is_cancelled(cancel):  # between the z pass and its backward, the costlier half of a step
                return Optimisation(losses, skipped, True)
            (z.grad,) = torch.autograd.grad(scaler.scale(parts.total), [z])
            scale_before = scaler.get_scale() if scaler.is_enabled() else 0.0
            scaler.step(optimizer)
            scaler.update()
            skipped += int(scaler.is_enabled() and scaler.get_scale() < scale_before)
            total, style, content_loss = torch.stack([parts.total.detach(), parts.style, parts.content]).tolist()
            step = first_step + len(losses)
            losses.append(LossRecord(step, timestep, total, style, content_loss))
            if on_event is not None:
                show = params.preview_every > 0 and (step + 1) % params.preview_every == 0
                on_event(StepEvent("transfer", step + 1, total_steps, total, latent_to_rgb(z) if show else None))
    return Optimisation(losses, skipped, False)


def reference_features(sd: "SDModels", embeds: torch.Tensor, content_latent: np.ndarray,
                       references: list[StyleInputs], terms: list[RegionTerm], params: Stage3Params,
                       feature_cache: FeatureCache | None) -> ReferenceFeatures:
    """The feature provider of a run: the content's queries and the keys and values of the references it uses."""
    device = sd.unet.device
    return ReferenceFeatures(
        sd.unet, embeds, latent_tensor(content_latent, device),
        {r: latent_tensor(references[r].vae_latent, device) for r in sorted({t.reference for t in terms})},
        params.layers, params.precision, model_key=f"{sd.model_id}|{params.fast_mode}", cache=feature_cache,
        batch_size=params.feature_batch)


def stylize(sd: "SDModels", text_embeds: torch.Tensor, content: StyleInputs, references: list[StyleInputs],
            matches: dict[int, RegionMatch], params: Stage3Params, on_event: EventCallback | None = None,
            cancel: CancelFlag | None = None, feature_cache: FeatureCache | None = None) -> StylizeOutcome:
    """Run stage 3 and decode the result. A cancelled run stops at the next check (between steps, between the
    feature passes and the z pass, between the z pass and its backward) and returns its partial latent."""
    if content.c15 is None:
        raise ValueError("the content's StyleInputs needs c15 (the start of the optimisation)")
    unet = sd.unet
    device = unet.device
    timesteps = stage3_timesteps(sd.scheduler_config, params)
    terms = region_terms(content, references, matches)
    embeds = prepare_embeds(text_embeds, device)
    z = initial_latent(content.c15, params.init_std_eps).to(device).requires_grad_(True)
    with fast_mode_lora(unet, params.fast_mode, params.lora_source), frozen(unet):
        provider = reference_features(sd, embeds, content.vae_latent, references, terms, params, feature_cache)
        run = optimise(unet, z, timesteps, provider, terms, embeds, params, params.lr, on_event, cancel)
    if on_event is not None:
        on_event(StepEvent("decode", 0, 1, message="decoding the latent"))
    image = decode_latent(sd.vae, z)
    return StylizeOutcome(latent=z.detach()[0].float().cpu().numpy(), image=to_uint8(image), losses=run.losses,
                          steps_done=len(run.losses), steps_total=len(timesteps) * params.iters_per_step,
                          cancelled=run.cancelled, skipped_steps=run.skipped)
