"""The instant draft on the real Magenta ONNX files from the installed draft extra, at 128 px (fast on 2 cores)."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from engine.draft import Drafter, draft_available
from engine.errors import InvalidRequest
from engine.params import DraftParams, QuickRegionParams
from engine.types import Pin

AVAILABLE, WHY_NOT = draft_available()
requires_draft = pytest.mark.skipif(not AVAILABLE, reason=f"draft extra not installed: {WHY_NOT}")


def synthetic_photo(n: int = 128) -> Image.Image:
    """Soft gradients and a pale disc: photo-like colours, nothing like the paintings below."""
    yy, xx = np.mgrid[0:n, 0:n] / n
    img = np.stack([0.3 + 0.4 * xx, 0.5 + 0.3 * yy, 0.6 - 0.2 * xx], -1)
    img[(xx - 0.5) ** 2 + (yy - 0.55) ** 2 < 0.06] = [0.85, 0.8, 0.7]
    return Image.fromarray((img * 255).astype(np.uint8))


def synthetic_painting(colours: tuple, period: int = 8, n: int = 128, seed: int = 0) -> Image.Image:
    """Noisy diagonal stripes in two colours: a strong, easily measured style."""
    yy, xx = np.mgrid[0:n, 0:n]
    stripes = ((xx + yy) // period) % 2
    img = np.where(stripes[..., None], colours[0], colours[1]).astype(np.float32)
    img += np.random.default_rng(seed).normal(0, 15, img.shape)
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))


WARM = ((220, 40, 30), (250, 200, 20))
COOL = ((20, 60, 200), (30, 200, 220))


@pytest.fixture(scope="module")
def drafter(tmp_path_factory) -> Drafter:
    if not AVAILABLE:
        pytest.skip(f"draft extra not installed: {WHY_NOT}")
    return Drafter(cache_dir=tmp_path_factory.mktemp("draft_cache"))


def mean_colour(image) -> np.ndarray:
    return np.asarray(image, np.float64).reshape(-1, 3).mean(0)


@requires_draft
def test_transformer_runs_at_any_multiple_of_4_and_the_file_stays_fixed(drafter):
    import onnx

    from engine.draft.onnx_models import locate_models

    out = drafter.networks.transform(np.full((96, 132, 3), 0.5, np.float32), np.zeros(100, np.float32))
    assert out.shape == (96, 132, 3)
    assert 0.0 <= out.min() and out.max() <= 1.0
    shipped = onnx.load(str(locate_models().transformer)).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in shipped] == [1, 384, 384, 3]  # relaxed in memory only


@requires_draft
def test_stylises_toward_the_reference_colours(drafter):
    photo, painting = synthetic_photo(), synthetic_painting(WARM)
    result = drafter.draft(photo, [painting], DraftParams(size=128))
    assert result.image.shape == (128, 128, 3) and result.image.dtype == np.uint8
    assert np.abs(result.image.astype(float) - np.asarray(photo, float)).mean() > 20
    target = mean_colour(painting)
    assert np.linalg.norm(mean_colour(result.image) - target) < 0.5 * np.linalg.norm(mean_colour(photo) - target)
    assert result.region_source == "quick" and result.match_source == "quick"
    assert result.full_labels.shape == (128, 128)
    assert set(np.unique(result.full_labels)) == set(np.unique(result.labels)) == set(result.matches)


@requires_draft
def test_strength_zero_and_preserve_colour_stay_closer_to_the_photo(drafter):
    photo, painting = synthetic_photo(), synthetic_painting(WARM)
    full = drafter.draft(photo, [painting], DraftParams(size=128))
    weak = drafter.draft(photo, [painting], DraftParams(size=128, strength=0.0))
    kept = drafter.draft(photo, [painting], DraftParams(size=128, preserve_colour=True))
    photo_mean = mean_colour(photo)
    far = np.linalg.norm(mean_colour(full.image) - photo_mean)
    assert np.linalg.norm(mean_colour(weak.image) - photo_mean) < 0.5 * far
    assert np.linalg.norm(mean_colour(kept.image) - photo_mean) < 0.5 * far
    grey = drafter.draft(photo.convert("L"), [painting.convert("RGBA")], DraftParams(size=128))
    assert grey.image.shape == (128, 128, 3)


@requires_draft
def test_draft_params_reach_the_draft_and_key_its_caches(drafter):
    """The numbers come from DraftParams, and the in-memory caches tell one set of them from another."""
    photo, painting = synthetic_photo(), synthetic_painting(WARM)
    coarse = drafter.draft(photo, [painting], DraftParams(size=96, quick_regions=QuickRegionParams(grid=32)))
    assert coarse.labels.shape == (32, 32) and coarse.image.shape == (96, 96, 3)
    assert drafter.draft(photo, [painting], DraftParams(size=96)).labels.shape == (QuickRegionParams().grid,) * 2


@requires_draft
def test_pins_change_the_draft_and_only_recomposite(drafter, monkeypatch):
    photo = synthetic_photo()
    refs = [synthetic_painting(WARM), synthetic_painting(COOL, period=12, seed=1)]
    labels = np.ones((64, 64), np.int64)
    labels[:, 32:] = 2
    both = drafter.draft(photo, refs, DraftParams(size=128), labels=labels, assignment={1: 0, 2: 1})
    assert both.region_source == "method" and both.match_source == "method"
    calls = []
    monkeypatch.setattr(drafter.networks, "transform", lambda *a: calls.append(a))  # cached passes only
    pinned = drafter.draft(photo, refs, DraftParams(size=128), labels=labels, assignment={1: 0, 2: 1},
                           pins=[Pin(2, 0)])
    assert calls == []
    assert pinned.matches[2].pinned and pinned.matches[2].style_index == 0
    assert np.abs(pinned.image[:, 80:].astype(float) - both.image[:, 80:]).mean() > 20  # the pinned half changed
    np.testing.assert_allclose(pinned.image[:, :40], both.image[:, :40], atol=2)  # the other one did not


@requires_draft
def test_quick_matching_says_why_a_checked_reference_is_unused(drafter):
    photo = synthetic_photo()
    refs = [synthetic_painting(WARM), synthetic_painting(COOL, period=12, seed=1)]
    one_region = np.ones((16, 16), np.int64)
    draft = drafter.draft(photo, refs, DraftParams(size=64), labels=one_region)
    taken = draft.matches[1].style_index
    unused = draft.metadata()["matches"]["unused_references"]
    assert list(unused) == [str(1 - taken)] and "region 1" in unused[str(1 - taken)]
    pinned = drafter.draft(photo, refs, DraftParams(size=64), labels=one_region, pins=[Pin(1, 1 - taken)])
    assert "pinned" in pinned.metadata()["matches"]["unused_references"][str(taken)]
    method = drafter.draft(photo, refs, DraftParams(size=64), labels=one_region, assignment={1: 0})
    assert method.metadata()["matches"]["unused_references"] == {}


@requires_draft
def test_style_vectors_persist_on_disk(tmp_path, monkeypatch):
    painting = synthetic_painting(COOL)
    first = Drafter(cache_dir=tmp_path).style_vector(painting)
    again = Drafter(cache_dir=tmp_path)
    monkeypatch.setattr(again.networks, "predict", lambda x: pytest.fail("recomputed a cached vector"))
    np.testing.assert_array_equal(again.style_vector(painting), first)
    assert first.shape == (100,)


@requires_draft
@pytest.mark.parametrize("params, pins, message", [
    (DraftParams(size=130), [], "multiple of 4"),
    (DraftParams(size=2048), [], "multiple of 4"),
    (DraftParams(strength=1.5), [], "Strength"),
    (DraftParams(), [Pin(99, 0)], "content region 99, which does not exist"),
    (DraftParams(), [Pin(1, 5)], "names reference 5, but there are 1 references"),
])
def test_bad_requests_say_what_is_wrong(drafter, params, pins, message):
    labels = np.ones((8, 8), np.int64)
    with pytest.raises(InvalidRequest, match=message):
        drafter.draft(synthetic_photo(), [synthetic_painting(WARM)], params, labels=labels, assignment={1: 0},
                      pins=pins)


@requires_draft
@pytest.mark.parametrize("labels, message", [
    (np.ones((8, 8), np.float64), "whole numbers"),
    (np.ones((3, 3), np.int64), "too coarse"),
    (-np.ones((8, 8), np.int64), "negative"),
])
def test_bad_label_maps_are_refused(drafter, labels, message):
    with pytest.raises(InvalidRequest, match=message):
        drafter.draft(synthetic_photo(), [synthetic_painting(WARM)], labels=labels)


@requires_draft
def test_a_pin_to_a_missing_reference_region_is_refused_as_the_method_refuses_it(drafter):
    labels = np.ones((8, 8), np.int64)
    with pytest.raises(InvalidRequest, match=r"names region 7 of reference 0, which has regions \[1\]"):
        drafter.draft(synthetic_photo(), [synthetic_painting(WARM)], DraftParams(size=64), labels=labels,
                      assignment={1: 0}, pins=[Pin(1, 0, 7)], reference_labels=[labels])


@requires_draft
@pytest.mark.parametrize("cores, sessions, spinning_off", [(2, 2, True), (2, 1, False), (16, 2, False)])
def test_thread_spinning_is_off_when_two_sessions_share_two_cores(monkeypatch, cores, sessions, spinning_off):
    import onnxruntime

    from engine import threads
    from engine.draft import onnx_models

    monkeypatch.setattr(onnx_models, "current_policy", lambda: threads.plan_threads(cores))
    options = onnx_models.session_options(onnxruntime, sessions_in_process=sessions)
    try:
        value = options.get_session_config_entry("session.intra_op.allow_spinning")
    except RuntimeError:  # not set: onnxruntime's default (spinning on)
        value = None
    assert (value == "0") == spinning_off
