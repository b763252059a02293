"""Stage 2 mechanics on hand-made label maps, features and tokens (no models): scores, tie rule, pins, geometry."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from engine.errors import InvalidRequest
from engine.stage2.matching import (circle_iou, describe_regions, kept_token_indices, match_regions, region_geometry,
                             stat_descriptor, stat_transformer)
from engine.params import MatchParams, Stage1Params
from engine.types import Analysis, Pin

GRID = 16  # small label grids keep the transformer's attention cheap; 512 / 16 = 32 px per cell
WIDTH = 8
TOKENS = 256
PARAMS = MatchParams()


def _analysis(labels: np.ndarray, fmix: np.ndarray) -> Analysis:
    zeros = np.zeros((4, *labels.shape), np.float32)
    return Analysis("test", labels.astype(np.int64), fmix.astype(np.float32), None, zeros, zeros, Stage1Params(),
                    "hand-made")


def _halves(left_feature: np.ndarray, right_feature: np.ndarray, rng: np.random.Generator) -> Analysis:
    """Region 1 = left half, region 2 = right half; each region's F_mix is its feature plus small noise."""
    labels = np.ones((GRID, GRID), np.int64)
    labels[:, GRID // 2:] = 2
    fmix = np.where(labels[None] == 1, left_feature[:, None, None], right_feature[:, None, None])
    return _analysis(labels, fmix + 0.01 * rng.standard_normal(fmix.shape))


def _half_tokens(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """16x16 row-major DINOv2-like tokens: `left` on the left 8 columns, `right` on the others."""
    cols = np.arange(TOKENS) % 16
    return np.where((cols < 8)[:, None], left[None], right[None]).astype(np.float32)


@pytest.fixture(scope="module")
def scene():
    """Content: A on the left, B on the right. Reference 0 is mirrored (B left, A right)."""
    rng = np.random.default_rng(0)
    feat_a, feat_b = rng.standard_normal(WIDTH), rng.standard_normal(WIDTH)
    tok_a, tok_b = np.array([1.0, 0, 0, 0]), np.array([0, 1.0, 0, 0])
    content = _halves(feat_a, feat_b, rng)
    mirrored = _halves(feat_b, feat_a, rng)
    return content, _half_tokens(tok_a, tok_b), mirrored, _half_tokens(tok_b, tok_a)


def test_obvious_partner_wins_and_every_pair_is_kept(scene):
    content, c_tok, ref, r_tok = scene
    table = match_regions(content, c_tok, [ref], [r_tok], PARAMS)
    assert {m: (r.style_index, r.style_region) for m, r in table.matches.items()} == {1: (0, 2), 2: (0, 1)}
    assert len(table.pairs) == 4
    for pair in table.pairs:
        assert pair.score == pytest.approx(0.25 * pair.s_stat + pair.s_sem + 0.125 * pair.s_pos)
    best = table.candidates(1)[0]
    assert (best.style_region, best.s_sem) == (2, pytest.approx(1.0))
    assert table.candidates(1)[1].s_sem == pytest.approx(0.0)


def test_ties_go_to_the_first_reference_and_many_to_one_is_allowed(scene):
    content, c_tok, ref, r_tok = scene
    table = match_regions(content, c_tok, [ref, ref], [r_tok, r_tok], PARAMS)
    assert [(r.style_index, r.style_region) for r in table.matches.values()] == [(0, 2), (0, 1)]
    one_region = _analysis(np.ones((GRID, GRID)), np.ones((WIDTH, GRID, GRID)))
    table = match_regions(content, c_tok, [one_region], [r_tok], PARAMS)
    assert {(r.style_index, r.style_region) for r in table.matches.values()} == {(0, 1)}


def test_pins_override_and_whole_reference_pin(scene):
    content, c_tok, ref, r_tok = scene
    table = match_regions(content, c_tok, [ref, ref], [r_tok, r_tok], PARAMS,
                          pins=[Pin(1, 1, 1), Pin(2, 0, None)])
    first, second = table.matches[1], table.matches[2]
    assert (first.style_index, first.style_region, first.pinned) == (1, 1, True)
    assert first.score == next(p.score for p in table.pairs if (p.content_region, p.style_index, p.style_region)
                               == (1, 1, 1))
    assert (second.style_index, second.style_region, second.score, second.pinned) == (0, None, None, True)
    unpinned = match_regions(content, c_tok, [ref, ref], [r_tok, r_tok], PARAMS, pins=[Pin(2, 1, 2)])
    assert not unpinned.matches[1].pinned and (unpinned.matches[1].style_region, unpinned.matches[2].pinned) == (2, True)


@pytest.mark.parametrize("pin, words", [(Pin(7, 0, 1), "content region 7"), (Pin(1, 3, 1), "reference 3"),
                                        (Pin(1, 0, 9), "region 9 of reference 0")])
def test_unknown_pin_targets_raise_invalid_request(scene, pin, words):
    content, c_tok, ref, r_tok = scene
    with pytest.raises(InvalidRequest, match=words):
        match_regions(content, c_tok, [ref], [r_tok], PARAMS, pins=[pin])


def test_region_without_kept_token_scores_zero_not_nan(scene):
    content, c_tok, ref, r_tok = scene
    labels = content.labels.copy()
    labels[0, 0] = 3  # one cell = 32x32 = 1024 px at 512: kept at threshold 10, dropped at 2000
    tiny = _analysis(labels, content.fmix)
    params = MatchParams(token_keep_threshold=2000)
    assert describe_regions(tiny, c_tok, params)[3].sem is None
    table = match_regions(tiny, c_tok, [ref], [r_tok], params)
    tiny_pairs = [p for p in table.pairs if p.content_region == 3]
    assert all(p.s_sem == 0.0 and math.isfinite(p.score) for p in tiny_pairs)


def test_kept_tokens_follow_the_upsampled_mask():
    mask = np.zeros((64, 64), bool)
    mask[0, 0] = True  # one cell = 8x8 = 64 px in block 0
    mask[0:4, 60:64] = True  # a whole 32x32 block (256 px): token 15
    mask[60:64, 0] = True  # 4 cells down one block edge (256 px): token 240
    assert kept_token_indices(mask, (16, 16), 10).tolist() == [0, 15, 240]
    assert kept_token_indices(mask, (16, 16), 64).tolist() == [15, 240]
    with pytest.raises(InvalidRequest):
        kept_token_indices(mask, (15, 16), 10)


def test_region_geometry_circle():
    labels = np.zeros((8, 8), np.int64)
    labels[2, 2:5] = 1  # cells (2,2) (2,3) (2,4)
    geometry = region_geometry(labels, 1, grid=(2, 2))
    assert (geometry.pixels, geometry.centre, geometry.radius) == (3, (2.0, 3.0), 1.0)


def test_circle_iou_analytic_values():
    assert circle_iou((0.0, 0.0), 3.0, (0.0, 0.0), 3.0) == pytest.approx(1.0)
    assert circle_iou((0.0, 0.0), 1.0, (5.0, 0.0), 2.0) == 0.0
    assert circle_iou((0.0, 0.0), 1.0, (0.5, 0.5), 3.0) == pytest.approx((1 / 3) ** 2)
    # partial overlap: the lens formula against a fine numerical integration
    ra, rb, d = 2.0, 1.5, 2.5
    xs = np.linspace(-2.5, 4.5, 1401)
    x, y = np.meshgrid(xs, xs)
    in_a, in_b = x**2 + y**2 <= ra**2, (x - d) ** 2 + y**2 <= rb**2
    numeric = (in_a & in_b).sum() / (in_a | in_b).sum()
    assert circle_iou((0.0, 0.0), ra, (0.0, d), rb) == pytest.approx(numeric, abs=2e-3)


def test_stat_transformer_is_seeded_cached_and_leaves_the_global_generator_alone():
    state = torch.random.get_rng_state()
    model = stat_transformer(WIDTH, PARAMS)
    assert torch.equal(state, torch.random.get_rng_state())
    assert stat_transformer(WIDTH, PARAMS) is model
    other_seed = stat_transformer(WIDTH, MatchParams(seed=7))
    assert not torch.equal(model.resblocks[0].mlp.c_fc.weight, other_seed.resblocks[0].mlp.c_fc.weight)
    assert len(model.resblocks) == PARAMS.stat_layers
    assert model.resblocks[0].mlp.c_fc.out_features == WIDTH * PARAMS.stat_mlp_ratio


def test_stat_descriptor_is_mean_and_zero_padded_variance_over_n():
    rng = np.random.default_rng(1)
    fmix = rng.standard_normal((WIDTH, GRID, GRID)).astype(np.float32)
    mask = np.zeros((GRID, GRID), bool)
    mask[3:7, 2:9] = True
    model = stat_transformer(WIDTH, PARAMS)
    desc = stat_descriptor(model, fmix, mask)
    with torch.no_grad():
        out = model(torch.from_numpy(fmix.reshape(WIDTH, -1).T[mask.reshape(-1)])).numpy().astype(np.float64)
    full = np.zeros((GRID * GRID, WIDTH))
    full[mask.reshape(-1)] = out
    n = int(mask.sum())
    np.testing.assert_allclose(desc[:WIDTH], out.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(desc[WIDTH:], full.var(0, ddof=1) / n, rtol=1e-5, atol=1e-7)
