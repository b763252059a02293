"""Stage 1 end to end on the tiny random-weight models: invariants, events, determinism, cache, cancel, user mask.

The models have random weights: the regions found here are blobs, not a segmentation. Settings are shrunk
(128-pixel analysis, 3 inversion steps, k up to 4) to keep the suite fast; parity runs the defaults.
"""
from __future__ import annotations

import dataclasses
import threading

import numpy as np
import pytest
import torch
from PIL import Image

from engine.cache import DiskCache
from engine.errors import Cancelled, InvalidRequest
from engine.images import load_image, pixel_sha256
from engine.params import Stage1Params
from engine.stage1.segment import analysis_key, analyze_image, analyze_images, segment, total_steps

SMALL = dataclasses.replace(Stage1Params(), image_size=128, inversion_steps=3, k_max=4, kmeans_restarts=2,
                            pca_components=16)
GRID = SMALL.image_size // 8


@pytest.fixture(scope="module")
def bundle(tiny_model_source):
    from engine.models import ModelBundle

    return ModelBundle(tiny_model_source, torch.device("cpu"), torch.float32)


@pytest.fixture(scope="module")
def image() -> Image.Image:
    rng = np.random.default_rng(5)
    pixels = np.zeros((96, 120, 3), dtype=np.uint8)
    pixels[:, :60] = (200, 60, 40)
    pixels[:, 60:] = (30, 90, 220)
    pixels[30:60, 20:50] = (250, 250, 250)
    noise = rng.integers(-20, 20, pixels.shape)
    return Image.fromarray(np.clip(pixels + noise, 0, 255).astype(np.uint8))


@pytest.fixture
def unet_calls(bundle):
    """A list that grows by one on every UNet forward during the test."""
    calls: list[int] = []
    handle = bundle.sd.unet.register_forward_hook(lambda *_: calls.append(1))
    yield calls
    handle.remove()


def test_analysis_invariants_events_and_determinism(bundle, image):
    events = []
    first = analyze_image(bundle, image, SMALL, on_event=events.append)
    second = analyze_image(bundle, image, SMALL)

    assert [e.step for e in events] == list(range(1, total_steps(SMALL) + 1))
    assert all(e.stage == "analyze" and e.total == total_steps(SMALL) for e in events)
    assert first.labels.shape == (GRID, GRID) and first.labels.min() >= 1
    kmeans_ids = np.unique(first.steps["step5_kmeans"])
    assert 1 <= kmeans_ids.size <= SMALL.k_max and kmeans_ids.max() < first.chosen_k
    assert 1 <= np.unique(first.steps["step6_merge"]).size <= SMALL.k_max
    assert first.steps["step5_kmeans_per_k"].shape == (SMALL.k_max - SMALL.k_min + 1, GRID, GRID)
    # F_mix has the captured block's channel count (64 for the tiny UNet), read from the model.
    assert first.fmix.shape == (bundle.sd.unet.up_blocks[2].resnets[-1].out_channels, GRID, GRID)
    assert first.c15.shape == first.vae_latent.shape == (4, GRID, GRID)
    assert first.depth.shape == (image.size[1], image.size[0])  # native size, not the 128 resize
    assert first.image_sha256 == pixel_sha256(image)
    for name in ("labels", "fmix", "c15", "vae_latent", "depth"):
        assert np.array_equal(getattr(first, name), getattr(second, name)), name
    assert first.silhouette == second.silhouette


def test_second_analysis_is_a_cache_hit_keyed_by_pixels_not_path(bundle, image, tmp_path, unet_calls):
    cache = DiskCache(tmp_path / "cache")
    calls = unet_calls
    a_path, b_path = tmp_path / "a.png", tmp_path / "copy.png"
    image.save(a_path)
    image.save(b_path)
    first = analyze_image(bundle, load_image(a_path), SMALL, cache=cache)
    assert len(calls) == SMALL.inversion_steps
    events = []
    again = analyze_image(bundle, load_image(b_path), SMALL, cache=cache, on_event=events.append)
    assert len(calls) == SMALL.inversion_steps  # no UNet call: served from disk
    assert events[-1].step == events[-1].total
    assert np.array_equal(again.labels, first.labels) and np.array_equal(again.fmix, first.fmix)
    analyze_image(bundle, load_image(a_path), dataclasses.replace(SMALL, use_depth=False), cache=cache)
    assert len(calls) == 2 * SMALL.inversion_steps  # another setting: recomputed


def test_cache_key_covers_pixels_models_settings_and_mask():
    base = dict(image_sha256="a", params=SMALL, sd_model_id="sd", depth_model_id="depth", mask_sha256=None,
                device=torch.device("cpu"), dtype=torch.float32, size=(128, 128))
    key = analysis_key(**base)
    for change in (dict(image_sha256="b"), dict(params=dataclasses.replace(SMALL, seed=1)),
                   dict(sd_model_id="other"), dict(depth_model_id="small"), dict(mask_sha256="m"),
                   dict(dtype=torch.float16), dict(size=(128, 192)),
                   dict(params=dataclasses.replace(SMALL, size_policy="square"))):
        assert analysis_key(**{**base, **change}) != key, change
    without_depth = dataclasses.replace(SMALL, use_depth=False)
    assert analysis_key(**{**base, "params": without_depth}) == \
        analysis_key(**{**base, "params": without_depth, "depth_model_id": "small"})  # depth model unused


def test_cancel_before_and_during(bundle, image, unet_calls):
    flag = threading.Event()
    flag.set()
    calls = unet_calls
    with pytest.raises(Cancelled):
        analyze_image(bundle, image, SMALL, cancel=flag)
    assert not calls

    flag = threading.Event()

    def on_event(event) -> None:
        if event.step == 2:
            flag.set()

    with pytest.raises(Cancelled):
        analyze_image(bundle, image, SMALL, cancel=flag, on_event=on_event)
    assert len(calls) == 1


def test_user_mask_region_overrides_the_automatic_labels(bundle, image):
    mask = np.zeros((SMALL.image_size, SMALL.image_size, 3), dtype=np.uint8)
    mask[:64, :64] = (255, 0, 0)
    result = analyze_image(bundle, image, dataclasses.replace(SMALL, use_depth=False),
                           user_mask=Image.fromarray(mask))
    quadrant = result.labels[:8, :8]
    assert np.unique(quadrant).size == 1
    assert quadrant[0, 0] == result.labels.max()  # the newest id after renumbering
    assert not np.isin(quadrant[0, 0], result.labels[8:, :]).any() and not np.isin(quadrant[0, 0], result.labels[:, 8:])
    assert sorted(np.unique(result.labels)) == list(range(1, result.labels.max() + 1))
    with pytest.raises(InvalidRequest):
        analyze_image(bundle, image, SMALL, user_mask=Image.new("RGB", (64, 64)))


def test_analysis_leaves_the_global_generator_alone(bundle, image):
    torch.manual_seed(3)
    expected = torch.rand(4)
    torch.manual_seed(3)
    analyze_image(bundle, image, dataclasses.replace(SMALL, use_depth=False))
    assert torch.equal(torch.rand(4), expected)


def test_segment_rejects_features_at_another_resolution():
    with pytest.raises(InvalidRequest):
        segment(torch.zeros(8, 8, 8), torch.zeros(4, 16, 16), None, SMALL)


def test_several_images_invert_in_one_batch_and_equal_one_by_one(bundle, image, tmp_path, unet_calls):
    other = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT).resize((80, 64))  # another size: same working size
    cache = DiskCache(tmp_path / "cache")
    analyze_image(bundle, image, SMALL, cache=cache)  # cached: not inverted again
    unet_calls.clear()
    events = []
    cached, second, third = analyze_images(bundle, [(image, None), (other, None), (image.rotate(90), None)], SMALL,
                                           on_event=events.append, cache=cache)
    assert len(unet_calls) == SMALL.inversion_steps  # two images, one UNet call per step
    steps = [e.step for e in events]
    assert steps == sorted(set(steps)) and steps[-1] == events[-1].total == 2 * total_steps(SMALL)
    for picture, batched in ((other, second), (image.rotate(90), third)):
        alone = analyze_image(bundle, picture, SMALL)
        assert np.array_equal(batched.labels, alone.labels)
        assert np.allclose(batched.fmix, alone.fmix, atol=1e-5) and np.allclose(batched.c15, alone.c15, atol=1e-5)
    assert np.array_equal(cached.labels, analyze_image(bundle, image, SMALL, cache=cache).labels)
