"""Stage 3 written out literally from SPEC.md: the yardstick the optimised `engine.stage3.stylize.stylize` is timed against.

Every timestep recomputes the content pass and each reference's pass SEPARATELY (one unbatched no-grad UNet call
per image, no cache), then runs z through the UNet with gradient. The recorded self-attention layers compute
`softmax(Q K^T / sqrt(d)) V` explicitly and every style target is the full masked attention of SPEC's formula,
`Attn(query_scale * Q*M_c, K_s*M_s, V_s*M_s)`, once per region and layer. Nothing here is shared with the engine's
stage-3 code except the timestep list (`stage3_timesteps`, parity-tested), so a speed-up of the engine that changed
the arithmetic shows up as a latent difference in the benchmark and in tests/test_benchmark_reference.py.
"""
from __future__ import annotations

import math
from contextlib import contextmanager, nullcontext
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F

from engine.params import Stage3Params
from engine.stage3.stylize import StyleInputs, stage3_timesteps
from engine.types import RegionMatch

HALF = {"fp16": torch.float16, "bf16": torch.bfloat16}


def self_attentions_in_execution_order(unet) -> list:
    """The `attn1` modules of the UNet in the order they run: down blocks, mid block, up blocks."""
    blocks = [*unet.down_blocks, unet.mid_block, *unet.up_blocks]
    return [module for block in blocks for name, module in block.named_modules() if name.endswith("attn1")]


class ExplicitRecorder:
    """Self-attention with the softmax written out, recording per-head Q, K, V and O (before head merge)."""

    def __init__(self, records: dict, layer: int) -> None:
        self.records = records
        self.layer = layer

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, **kwargs):
        batch, tokens, _ = hidden_states.shape
        heads = attn.heads

        def split(x: torch.Tensor) -> torch.Tensor:
            return x.view(batch, tokens, heads, -1).transpose(1, 2)

        q, k, v = split(attn.to_q(hidden_states)), split(attn.to_k(hidden_states)), split(attn.to_v(hidden_states))
        o = attention(q, k, v)
        self.records[self.layer] = (q, k, v, o)
        merged = o.transpose(1, 2).reshape(batch, tokens, -1)
        return attn.to_out[1](attn.to_out[0](merged))


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """softmax(Q K^T / sqrt(d)) V, no mask."""
    return torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]), dim=-1) @ v


@contextmanager
def recording(unet, layers: tuple[int, ...], records: dict) -> Iterator[None]:
    """Install `ExplicitRecorder` on the given layers for the block; the previous processors come back after."""
    modules = self_attentions_in_execution_order(unet)
    saved = [(modules[i], modules[i].processor) for i in layers]
    for i in layers:
        modules[i].processor = ExplicitRecorder(records, i)
    try:
        yield
    finally:
        for module, processor in saved:
            module.processor = processor


def layer_mask(mask: np.ndarray, tokens: int, device: torch.device) -> torch.Tensor:
    """A (H, W) indicator nearest-resized (floor index) to a square layer grid of `tokens` cells, as (1, 1, N, 1)."""
    side = math.isqrt(tokens)
    grid = F.interpolate(torch.from_numpy(mask.astype(np.float32))[None, None], size=(side, side), mode="nearest")
    return grid.reshape(1, 1, tokens, 1).to(device)


def unet_pass(unet, latent: torch.Tensor, timestep: float, embeds: torch.Tensor, layers: tuple[int, ...],
              precision: str) -> dict:
    """One UNet call on one latent; the recorded (Q, K, V, O) of each layer."""
    records: dict = {}
    autocast = (torch.autocast(latent.device.type, dtype=HALF[precision]) if precision in HALF else nullcontext())
    with recording(unet, layers, records), autocast:
        unet(latent, torch.tensor(timestep, device=latent.device), encoder_hidden_states=embeds, return_dict=False)
    return {layer: tuple(t.float() for t in records[layer]) for layer in layers}


def reference_stylize(unet, scheduler_config: dict, text_embeds: torch.Tensor, content: StyleInputs,
                      references: list[StyleInputs], matches: dict[int, RegionMatch], params: Stage3Params
                      ) -> torch.Tensor:
    """SPEC stage 3 (no fast mode), returning the final latent (1, 4, H, W) float32."""
    device = next(unet.parameters()).device
    embeds = torch.as_tensor(text_embeds, dtype=torch.float32).reshape(1, *text_embeds.shape[-2:]).to(device)

    def tensor(latent: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(latent, dtype=torch.float32).reshape(1, *latent.shape[-3:]).to(device)

    c15 = tensor(content.c15)
    z = ((c15 - c15.mean(1, keepdim=True)) / (c15.std(1, keepdim=True) + params.init_std_eps)).requires_grad_(True)
    optimizer = torch.optim.Adam([z], lr=params.lr, betas=params.adam_betas, eps=params.adam_eps)
    scaler = torch.amp.GradScaler(device.type, init_scale=params.loss_scale_init, enabled=params.precision == "fp16")
    regions = [(int(c), matches[int(c)]) for c in np.unique(content.labels) if int(c) in matches]
    grads = [(p, p.requires_grad) for p in unet.parameters()]
    unet.requires_grad_(False)
    try:
        for timestep in stage3_timesteps(scheduler_config, params):
            with torch.no_grad():
                content_rec = unet_pass(unet, tensor(content.vae_latent), timestep, embeds, params.layers,
                                        params.precision)
                style_rec = {r: unet_pass(unet, tensor(references[r].vae_latent), timestep, embeds, params.layers,
                                          params.precision)
                             for r in sorted({m.style_index for _, m in regions})}
            for _ in range(params.iters_per_step):
                rec = unet_pass(unet, z, timestep, embeds, params.layers, params.precision)
                loss_content = sum((rec[layer][0] - content_rec[layer][0]).abs().mean() for layer in params.layers)
                loss_style = z.new_zeros(())
                for region, match in regions:
                    ref = references[match.style_index]
                    style_mask = np.ones_like(ref.labels, bool) if match.style_region is None else \
                        ref.labels == match.style_region
                    for layer in params.layers:
                        q, _, _, o = rec[layer]
                        _, k_s, v_s, _ = style_rec[match.style_index][layer]
                        m_c = layer_mask(content.labels == region, q.shape[2], device)
                        m_s = layer_mask(style_mask, k_s.shape[2], device)
                        with torch.no_grad():
                            target = attention(params.query_scale * q * m_c, k_s * m_s, v_s * m_s)
                        loss_style = loss_style + (o * m_c - target).abs().mean()
                loss = loss_style + params.content_weight * loss_content
                optimizer.zero_grad()
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
    finally:
        for p, flag in grads:
            p.requires_grad_(flag)
    return z.detach()
