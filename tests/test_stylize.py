"""Stage 3 mechanics on tiny random-weight models at a 16x16 latent grid (128 px images)."""
from __future__ import annotations

import dataclasses
import threading

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from engine.stage3.attention import FeatureStore, capture_self_attention
from engine.models import load_sd_folder
from engine.params import Stage3Params, stage3_for_fast_mode
from engine.stage3.features import FeatureCache, ReferenceFeatures
from engine.stage3.stylize import (StyleInputs, evaluate_loss, fast_mode_lora, initial_latent, latent_tensor, mask_to_tokens,
                            region_terms, stage3_timesteps, style_term, stylize)
from engine.types import RegionMatch

GRID = 16
SHORT = Stage3Params(steps=1, iters_per_step=3, preview_every=2)


@pytest.fixture(scope="module")
def sd(tiny_models_dir):
    return load_sd_folder(tiny_models_dir / "sd15", torch.device("cpu"), torch.float32, False, "tiny-sd15")


@pytest.fixture(scope="module")
def embeds(sd):
    gen = torch.Generator().manual_seed(3)
    return torch.randn(1, 77, sd.unet.config.cross_attention_dim, generator=gen)


def _latent(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((4, GRID, GRID)).astype(np.float32)


@pytest.fixture(scope="module")
def scene():
    """Content in two halves (top 1, bottom 2), reference 0 in quadrant-ish regions, reference 1 whole."""
    content_labels = np.ones((GRID, GRID), np.int64)
    content_labels[GRID // 2:] = 2
    ref_labels = np.ones((GRID, GRID), np.int64)
    ref_labels[:, GRID // 2:] = 3
    content = StyleInputs(_latent(0), content_labels, _latent(1))
    references = [StyleInputs(_latent(2), ref_labels), StyleInputs(_latent(3), np.ones((GRID, GRID), np.int64))]
    matches = {1: RegionMatch(1, 0, 3, None), 2: RegionMatch(2, 1, None, None, pinned=True)}
    return content, references, matches


def test_timesteps_follow_the_schedules_in_spec(sd):
    config = sd.scheduler_config
    assert stage3_timesteps(config, Stage3Params(steps=5)) == [801, 601, 401, 201, 1]
    assert stage3_timesteps(config, Stage3Params()) == [895 - 6 * k for k in range(150)]
    assert stage3_timesteps(config, stage3_for_fast_mode("lcm")) == [
        999, 979, 939, 899, 859, 839, 799, 759, 719, 679, 659, 619, 579, 539, 499, 479, 439, 399, 359, 339, 299,
        259, 219, 179, 159, 119, 79, 39]
    assert stage3_timesteps(config, stage3_for_fast_mode("hyper")) == [
        999, 963, 928, 892, 856, 820, 785, 749, 713, 678, 642, 606, 570, 535, 499, 463, 428, 392, 356, 320, 285,
        249, 213, 178, 142, 106, 70, 35]


def test_initial_latent_is_normalised_per_pixel():
    c15 = _latent(5) * 3 + 1
    z = initial_latent(c15)
    assert z.shape == (1, 4, GRID, GRID)
    expected = (c15 - c15.mean(0)) / (c15.std(0, ddof=1) + 1e-8)
    np.testing.assert_allclose(z[0].numpy(), expected, atol=1e-5)
    np.testing.assert_allclose(z.std(dim=1, unbiased=True).numpy(), 1.0, atol=1e-5)


def test_masks_at_each_layer_grid_sample_the_labels_by_floor_index(sd, embeds):
    labels = np.arange(GRID * GRID).reshape(GRID, GRID)
    store = FeatureStore()
    with torch.no_grad(), capture_self_attention(sd.unet, Stage3Params().layers, store):
        sd.unet(torch.zeros(1, 4, GRID, GRID), torch.tensor(1), encoder_hidden_states=embeds)
    grids = {layer: rec.query.shape[2] for layer, rec in store.layers.items()}
    assert grids == {10: 64, 11: 64, 12: 64, 13: 256, 14: 256, 15: 256}
    assert (mask_to_tokens(labels, 256) == labels.reshape(-1)).all()
    assert (mask_to_tokens(labels, 64) == labels[::2, ::2].reshape(-1)).all()
    with pytest.raises(ValueError):
        mask_to_tokens(labels, 60)


@pytest.mark.parametrize("region_rows", [[0, 3, 4, 9], list(range(12)), []])
def test_style_term_equals_the_literal_formula(region_rows):
    gen = torch.Generator().manual_seed(2)
    query, out = (torch.randn(1, 2, 12, 4, generator=gen) for _ in range(2))
    keys, values = (torch.randn(1, 2, 10, 4, generator=gen) for _ in range(2))
    m_c = torch.zeros(1, 1, 12, 1)
    m_c[0, 0, region_rows] = 1.0
    m_s = (torch.arange(10) % 3 != 0).float().view(1, 1, 10, 1)
    literal = (out * m_c - F.scaled_dot_product_attention(1.5 * query * m_c, keys * m_s, values * m_s)).abs().mean()
    ours = style_term(query, out, keys * m_s, values * m_s, torch.tensor(region_rows, dtype=torch.long), 1.5)
    torch.testing.assert_close(ours, literal, rtol=1e-6, atol=1e-7)


def test_region_terms_skip_unmatched_regions_and_pin_whole_references(scene):
    content, references, matches = scene
    terms = region_terms(content, references, {2: matches[2], 7: RegionMatch(7, 0, 1, None)})
    assert [t.content_region for t in terms] == [2]
    assert terms[0].style_mask.all() and terms[0].content_mask.sum() == GRID * GRID // 2


def test_style_loss_vanishes_when_z_is_the_reference_with_full_masks_and_query_scale_one(sd, embeds):
    """With Q from z = the reference's latent, O = Attn(Q, K_s, V_s) = the target only without the 1.5 scale."""
    ref = StyleInputs(_latent(7), np.ones((GRID, GRID), np.int64))
    content = StyleInputs(_latent(8), np.ones((GRID, GRID), np.int64), _latent(9))
    terms = region_terms(content, [ref], {1: RegionMatch(1, 0, None, None)})
    z = latent_tensor(ref.vae_latent, torch.device("cpu"))
    for scale, vanishes in ((1.0, True), (1.5, False)):
        params = Stage3Params(query_scale=scale)
        provider = ReferenceFeatures(sd.unet, embeds, latent_tensor(content.vae_latent, "cpu"), {0: z},
                                     params.layers, "fp32", "tiny")
        with torch.no_grad():
            parts = evaluate_loss(sd.unet, z, 401.0, embeds, provider.at(401.0), terms, params)
        assert (parts.style.item() < 1e-5) == vanishes, (scale, parts.style.item())


def _run(sd, embeds, scene, params=SHORT, **kwargs):
    content, references, matches = scene
    return stylize(sd, embeds, content, references, matches, params, **kwargs)


def test_short_run_lowers_the_loss_and_reports_events(sd, embeds, scene):
    events = []
    out = _run(sd, embeds, scene, on_event=events.append)
    assert not out.cancelled and out.steps_done == out.steps_total == 3
    assert out.image.shape == (8 * GRID, 8 * GRID, 3) and out.image.dtype == np.uint8
    assert out.latent.shape == (4, GRID, GRID)
    # one timestep, three evaluations: each comes after an Adam step on the previous one's loss
    assert out.losses[2].total < out.losses[1].total < out.losses[0].total
    for record in out.losses:
        assert record.total == pytest.approx(record.style + SHORT.content_weight * record.content, rel=1e-5)
    transfer = [e for e in events if e.stage == "transfer"]
    assert [e.step for e in transfer] == [1, 2, 3]
    assert [e.preview is not None for e in transfer] == [False, True, False]
    assert transfer[1].preview.shape == (GRID, GRID, 3)
    assert events[-1].stage == "decode"


def test_cancel_returns_promptly_with_the_partial_result(sd, embeds, scene):
    flag = threading.Event()
    out = _run(sd, embeds, scene, on_event=lambda e: flag.set(), cancel=flag)
    assert out.cancelled and out.steps_done == 1 and len(out.losses) == 1
    assert out.image.shape == (8 * GRID, 8 * GRID, 3)
    assert not np.allclose(out.latent, initial_latent(scene[0].c15)[0].numpy())


def test_same_inputs_give_the_same_result_and_cached_features_change_nothing(sd, embeds, scene, tmp_path):
    params = dataclasses.replace(SHORT, steps=2, iters_per_step=1)
    plain = _run(sd, embeds, scene, params)
    cache = FeatureCache(directory=tmp_path)
    filled = _run(sd, embeds, scene, params, feature_cache=cache)
    assert (cache.hits, cache.misses) == (0, 3 * 2)  # content + 2 references at 2 timesteps
    reused = _run(sd, embeds, scene, params, feature_cache=cache)
    assert (cache.hits, cache.misses) == (6, 6)
    for out in (filled, reused):
        assert out.losses == plain.losses
        assert (out.latent == plain.latent).all() and (out.image == plain.image).all()
    on_disk = FeatureCache(directory=tmp_path)
    for key, tensors in cache._memory.items():
        assert all(torch.equal(on_disk.get(key)[name], t) for name, t in tensors.items())


def test_fp16_loss_scaler_skips_overflowing_steps(sd, embeds, scene):
    params = dataclasses.replace(SHORT, steps=1, iters_per_step=1, precision="fp16", loss_scale_init=3e38)
    out = _run(sd, embeds, scene, params)
    assert out.skipped_steps == 1
    np.testing.assert_array_equal(out.latent, initial_latent(scene[0].c15)[0].numpy())


def test_bf16_autocast_keeps_z_in_fp32_and_stays_close_to_fp32(sd, embeds, scene):
    params = dataclasses.replace(SHORT, steps=1, iters_per_step=1)
    full = _run(sd, embeds, scene, params)
    half = _run(sd, embeds, scene, dataclasses.replace(params, precision="bf16"))
    assert half.latent.dtype == np.float32 and half.skipped_steps == 0
    assert half.losses[0].total == pytest.approx(full.losses[0].total, rel=5e-2)


def _tiny_lora(unet, path) -> None:
    """A random rank-2 LoRA on every self-attention query and value projection, in diffusers' file layout."""
    gen = torch.Generator().manual_seed(11)
    tensors = {}
    for name, module in unet.named_modules():
        if name.endswith(("attn1.to_q", "attn1.to_v")):
            tensors[f"unet.{name}.lora_A.weight"] = torch.randn(2, module.in_features, generator=gen) * 0.3
            tensors[f"unet.{name}.lora_B.weight"] = torch.randn(module.out_features, 2, generator=gen) * 0.3
    save_file(tensors, str(path))


def test_fast_mode_lora_is_fused_for_the_run_and_removed_after(sd, embeds, scene, tmp_path):
    lora = tmp_path / "tiny_lora.safetensors"
    _tiny_lora(sd.unet, lora)
    z = torch.randn(1, 4, GRID, GRID, generator=torch.Generator().manual_seed(4))

    def forward():
        with torch.no_grad():
            return sd.unet(z, torch.tensor(999), encoder_hidden_states=embeds, return_dict=False)[0]

    base = forward()
    processors = sd.unet.attn_processors
    with fast_mode_lora(sd.unet, "lcm", str(lora)):
        fused = forward()
    assert (fused - base).abs().max() > 1e-3
    torch.testing.assert_close(forward(), base, rtol=0, atol=1e-5)
    assert not any("lora" in name for name, _ in sd.unet.named_parameters())

    params = dataclasses.replace(stage3_for_fast_mode("lcm"), steps=2, iters_per_step=1, lora_source=str(lora))
    out = _run(sd, embeds, scene, params)
    assert [r.timestep for r in out.losses] == [999, 499]
    assert not any("lora" in name for name, _ in sd.unet.named_parameters())
    assert all(sd.unet.attn_processors[n] is p for n, p in processors.items())
