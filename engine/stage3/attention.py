"""Attention processors that record the UNet's self-attention tensors for stage 3.

Stage 3 needs, per head, the queries, keys, values and attention outputs of a few self-attention
layers, numbered in the UNet's EXECUTION order (down blocks, mid block, up blocks). diffusers'
`unet.attn_processors` lists the mid block last, so the order is derived from the processor names.

The processors are plain diffusers processors on `AttnProcessor2_0`'s math; they keep their tensors in
an explicit `FeatureStore` that the caller clears, and `capture_self_attention` installs them with a
FRESH dict covering every attention layer (diffusers consumes the dict it is given) and puts the
previous processors back in `finally`.

A pass that only needs the recorded tensors can stop there: with `stop`, the processor of the LAST recorded layer
raises `StopForward` once it has what the caller needs ("qkv": before that layer's attention, for the no-grad
reference-feature passes; "out": after it, for the pass through z, whose loss needs the output), and
`forward_until_recorded` swallows it. Everything after that point (at SD1.5 size: the last 64x64 attention and
its feed-forward, conv_out) is skipped; the recorded tensors, and their autograd graph, are unchanged.
"""
from __future__ import annotations

import re
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Literal

import torch
import torch.nn.functional as F
from diffusers.models.attention_processor import Attention, AttnProcessor2_0

_SECTION_ORDER = {"down_blocks": 0, "mid_block": 1, "up_blocks": 2}
Stop = Literal["none", "qkv", "out"]
_NAME = re.compile(r"^(down_blocks|mid_block|up_blocks)(?:\.(\d+))?\.attentions\.(\d+)"
                   r"\.transformer_blocks\.(\d+)\.attn1\.processor$")


def self_attention_names(processor_names: list[str]) -> list[str]:
    """The self-attention (attn1) processor names sorted into execution order.

    Down blocks run first, then the mid block, then the up blocks; inside a block its attentions and
    their transformer blocks run in index order. Cross-attention (attn2) layers are left out.
    """
    keyed = []
    for name in processor_names:
        m = _NAME.match(name)
        if m:
            section, block, attention, transformer = m.groups()
            keyed.append(((_SECTION_ORDER[section], int(block or 0), int(attention), int(transformer)), name))
    return [name for _, name in sorted(keyed)]


@dataclass
class AttentionTensors:
    """One layer's per-head tensors, each (batch, heads, tokens, head_dim); `out` is before head merge (None when
    the pass stopped before this layer's attention)."""

    query: torch.Tensor
    key: torch.Tensor
    value: torch.Tensor
    out: torch.Tensor | None


class StopForward(Exception):
    """Raised by the last recording processor of a pass that needs nothing after it."""


class FeatureStore:
    """Tensors recorded in one UNet call, by execution-order layer index. Clear it before each call."""

    def __init__(self) -> None:
        self.layers: dict[int, AttentionTensors] = {}

    def clear(self) -> None:
        self.layers.clear()

    def __getitem__(self, layer: int) -> AttentionTensors:
        return self.layers[layer]


class RecordingProcessor:
    """`AttnProcessor2_0` that also records Q, K, V and the attention output per head into a store.

    The recorded tensors stay in the autograd graph, so a loss built from them reaches the UNet input.
    `stop` ends the UNet call here by raising `StopForward` (see the module docstring).
    """

    def __init__(self, store: FeatureStore, layer: int, stop: Stop = "none") -> None:
        self.store = store
        self.layer = layer
        self.stop = stop

    def __call__(self, attn: Attention, hidden_states: torch.Tensor,
                 encoder_hidden_states: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None,
                 temb: torch.Tensor | None = None, *args, **kwargs) -> torch.Tensor:
        residual = hidden_states
        if attn.spatial_norm is not None:
            hidden_states = attn.spatial_norm(hidden_states, temb)
        input_ndim = hidden_states.ndim
        if input_ndim == 4:
            batch, channel, height, width = hidden_states.shape
            hidden_states = hidden_states.view(batch, channel, height * width).transpose(1, 2)
        batch, context_length, _ = (hidden_states if encoder_hidden_states is None else encoder_hidden_states).shape
        if attention_mask is not None:
            attention_mask = attn.prepare_attention_mask(attention_mask, context_length, batch)
            attention_mask = attention_mask.view(batch, attn.heads, -1, attention_mask.shape[-1])
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)
        context = hidden_states if encoder_hidden_states is None else encoder_hidden_states
        if encoder_hidden_states is not None and attn.norm_cross:
            context = attn.norm_encoder_hidden_states(context)

        query, key, value = (_split_heads(proj(x), attn.heads)
                             for proj, x in ((attn.to_q, hidden_states), (attn.to_k, context), (attn.to_v, context)))
        if attn.norm_q is not None:
            query = attn.norm_q(query)
        if attn.norm_k is not None:
            key = attn.norm_k(key)
        if self.stop == "qkv":
            self.store.layers[self.layer] = AttentionTensors(query, key, value, None)
            raise StopForward
        out = F.scaled_dot_product_attention(query, key, value, attn_mask=attention_mask, dropout_p=0.0,
                                             is_causal=False)
        self.store.layers[self.layer] = AttentionTensors(query, key, value, out)
        if self.stop == "out":
            raise StopForward

        hidden_states = out.transpose(1, 2).reshape(batch, -1, out.shape[1] * out.shape[3]).to(query.dtype)
        hidden_states = attn.to_out[1](attn.to_out[0](hidden_states))
        if input_ndim == 4:
            hidden_states = hidden_states.transpose(-1, -2).reshape(batch, channel, height, width)
        if attn.residual_connection:
            hidden_states = hidden_states + residual
        return hidden_states / attn.rescale_output_factor


def _split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """(batch, tokens, heads * d) -> (batch, heads, tokens, d)."""
    batch, tokens, width = x.shape
    return x.view(batch, tokens, heads, width // heads).transpose(1, 2)


@contextmanager
def capture_self_attention(unet, layers: tuple[int, ...] | list[int], store: FeatureStore,
                           stop: Stop = "none") -> Iterator[FeatureStore]:
    """Record the given self-attention layers (execution order) into `store` while the block runs.

    With `stop`, the last of the layers ends the pass (call the UNet through `forward_until_recorded`).

    Every other attention layer gets a plain SDPA processor. The UNet's previous processors are
    restored on exit, also when the block raises.
    """
    snapshot = unet.attn_processors
    order = self_attention_names(list(snapshot))
    bad = [i for i in layers if not 0 <= i < len(order)]
    if bad:
        raise ValueError(f"self-attention layers {bad} do not exist: this UNet has {len(order)} (0..{len(order) - 1})")
    recorded = {order[i]: i for i in layers}
    last = max(layers, default=None)
    fresh = {name: RecordingProcessor(store, recorded[name], stop if recorded[name] == last else "none")
             if name in recorded else AttnProcessor2_0() for name in snapshot}
    unet.set_attn_processor(fresh)
    try:
        yield store
    finally:
        unet.set_attn_processor(dict(snapshot))


def forward_until_recorded(unet, *args, **kwargs) -> None:
    """Call the UNet for its recorded tensors only: a `StopForward` from the last recording processor ends it."""
    try:
        unet(*args, **kwargs)
    except StopForward:
        pass
