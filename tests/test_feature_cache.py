"""FeatureCache's memory budget: re-runs that read their steps in order still hit, older runs' entries go first."""
from __future__ import annotations

import torch
from diffusers import UNet2DConditionModel

from engine.stage3.features import FeatureCache, ReferenceFeatures
from tests.tiny_models import UNET_CONFIG

ENTRY = {"q": torch.zeros(256)}  # 1 KiB


def _scan(cache: FeatureCache, keys: list[str], run: int | None) -> list[bool]:
    """A run's access pattern: each step read, and written when missing; which steps hit."""
    hits = []
    for key in keys:
        hit = cache.get(key, run) is not None
        if not hit:
            cache.put(key, ENTRY, run)
        hits.append(hit)
    return hits


def test_a_rerun_that_does_not_fit_keeps_its_first_steps():
    cache = FeatureCache(max_bytes=3 * 1024)
    steps = [f"t{i}" for i in range(5)]
    assert _scan(cache, steps, cache.new_run()) == [False] * 5
    assert _scan(cache, steps, cache.new_run()) == [True, True, True, False, False]
    assert _scan(cache, steps, cache.new_run()) == [True, True, True, False, False]


def test_plain_lru_without_runs_finds_nothing_on_the_same_scan():
    cache = FeatureCache(max_bytes=3 * 1024)
    steps = [f"t{i}" for i in range(5)]
    _scan(cache, steps, None)
    assert _scan(cache, steps, None) == [False] * 5  # why runs are tracked


def test_a_new_run_evicts_earlier_runs_oldest_first():
    cache = FeatureCache(max_bytes=3 * 1024)
    _scan(cache, ["a0", "a1", "a2"], cache.new_run())
    _scan(cache, ["b0", "b1"], cache.new_run())
    assert [cache.get(k) is not None for k in ("a0", "a1", "a2", "b0", "b1")] == [False, False, True, True, True]
    assert cache._bytes == 3 * 1024


def test_smaller_feature_batches_give_the_same_features_in_more_calls():
    torch.manual_seed(0)
    unet = UNet2DConditionModel(**UNET_CONFIG).eval().requires_grad_(False)
    gen = torch.Generator().manual_seed(1)
    latents = [torch.randn(1, 4, 16, 16, generator=gen) for _ in range(4)]
    embeds = torch.randn(1, 77, UNET_CONFIG["cross_attention_dim"], generator=gen)
    calls = []
    unet.register_forward_pre_hook(lambda _module, args: calls.append(args[0].shape[0]))
    features = {}
    for batch_size in (0, 2):
        provider = ReferenceFeatures(unet, embeds, latents[0], {0: latents[1], 2: latents[2], 3: latents[3]},
                                     (10, 13, 15), "fp32", model_key="tiny", batch_size=batch_size)
        features[batch_size] = provider.at(401.0)
    assert calls == [4, 2, 2]
    for layer in (10, 13, 15):
        torch.testing.assert_close(features[2].content_query[layer], features[0].content_query[layer])
        for ref in (0, 2, 3):
            torch.testing.assert_close(features[2].keys[ref][layer], features[0].keys[ref][layer])
            torch.testing.assert_close(features[2].values[ref][layer], features[0].values[ref][layer])
