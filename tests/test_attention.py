"""Self-attention recording: execution order, recorded tensors, processors restored."""
from __future__ import annotations

import random

import pytest
import torch
import torch.nn.functional as F
from diffusers import UNet2DConditionModel
from diffusers.models.attention_processor import AttnProcessor2_0

from engine.stage3.attention import FeatureStore, capture_self_attention, forward_until_recorded, self_attention_names
from tests.tiny_models import UNET_CONFIG


@pytest.fixture(scope="module")
def unet():
    torch.manual_seed(0)
    return UNet2DConditionModel(**UNET_CONFIG).eval().requires_grad_(False)


def _forward(unet, batch: int = 1) -> torch.Tensor:
    gen = torch.Generator().manual_seed(1)
    z = torch.randn(batch, 4, 16, 16, generator=gen)
    context = torch.randn(batch, 77, UNET_CONFIG["cross_attention_dim"], generator=gen)
    return unet(z, torch.tensor(401), encoder_hidden_states=context, return_dict=False)[0]


def test_execution_order_puts_the_mid_block_between_down_and_up():
    down = [f"down_blocks.{b}.attentions.{a}.transformer_blocks.0.attn1.processor" for b in range(3) for a in range(2)]
    mid = ["mid_block.attentions.0.transformer_blocks.0.attn1.processor"]
    up = [f"up_blocks.{b}.attentions.{a}.transformer_blocks.0.attn1.processor" for b in (1, 2, 3) for a in range(3)]
    cross = [name.replace("attn1", "attn2") for name in down + mid + up]
    names = down + up + mid + cross
    random.Random(0).shuffle(names)
    assert self_attention_names(names) == down + mid + up


def test_sd15_layout_has_16_layers_with_10_to_15_in_the_last_two_up_blocks(unet):
    order = self_attention_names(list(unet.attn_processors))
    assert len(order) == 16
    assert order[6].startswith("mid_block.")
    assert [name.split(".attentions")[0] for name in order[10:]] == ["up_blocks.2"] * 3 + ["up_blocks.3"] * 3


def test_recording_changes_nothing_and_records_per_head_tensors(unet):
    plain = _forward(unet, batch=2)
    store = FeatureStore()
    with capture_self_attention(unet, (10, 13), store):
        recorded = _forward(unet, batch=2)
    torch.testing.assert_close(recorded, plain, rtol=0, atol=1e-6)
    assert sorted(store.layers) == [10, 13]
    heads = 8
    for layer, tokens, width in ((10, 8 * 8, 64), (13, 16 * 16, 32)):
        rec = store[layer]
        for t in (rec.query, rec.key, rec.value, rec.out):
            assert t.shape == (2, heads, tokens, width // heads)
        torch.testing.assert_close(rec.out, F.scaled_dot_product_attention(rec.query, rec.key, rec.value))
    store.clear()
    assert store.layers == {}


def test_processors_are_restored_even_when_the_forward_fails(unet):
    before = unet.attn_processors
    with pytest.raises(RuntimeError, match="boom"):
        with capture_self_attention(unet, (15,), FeatureStore()):
            assert len(unet.attn_processors) == 32
            assert sum(not isinstance(p, AttnProcessor2_0) for p in unet.attn_processors.values()) == 1
            raise RuntimeError("boom")
    after = unet.attn_processors
    assert list(after) == list(before)
    assert all(after[name] is before[name] for name in before)


def test_unknown_layer_is_rejected_before_anything_changes(unet):
    before = unet.attn_processors
    with pytest.raises(ValueError, match="16"):
        with capture_self_attention(unet, (16,), FeatureStore()):
            pass
    assert all(unet.attn_processors[name] is p for name, p in before.items())


@pytest.mark.parametrize("stop", ["qkv", "out"])
def test_stopping_after_the_last_layer_records_the_same_tensors_and_skips_the_rest(unet, stop):
    layers = (10, 11, 12, 13, 14, 15)
    full, early = FeatureStore(), FeatureStore()
    with torch.no_grad(), capture_self_attention(unet, layers, full):
        _forward(unet)
    gen = torch.Generator().manual_seed(1)
    z = torch.randn(1, 4, 16, 16, generator=gen)
    context = torch.randn(1, 77, UNET_CONFIG["cross_attention_dim"], generator=gen)
    calls = []
    hook = unet.conv_out.register_forward_hook(lambda *_: calls.append(1))
    try:
        with torch.no_grad(), capture_self_attention(unet, layers, early, stop=stop):
            forward_until_recorded(unet, z, torch.tensor(401), encoder_hidden_states=context)
    finally:
        hook.remove()
    assert calls == [] and sorted(early.layers) == list(layers)
    for layer in layers:
        for name in ("query", "key", "value", "out"):
            ours = getattr(early[layer], name)
            if name == "out" and layer == 15 and stop == "qkv":
                assert ours is None
            else:
                torch.testing.assert_close(ours, getattr(full[layer], name), rtol=0, atol=0)
    assert isinstance(unet.attn_processors[self_attention_names(list(unet.attn_processors))[15]], AttnProcessor2_0)
