"""Draft composite and quick regions on synthetic images: pure numpy/OpenCV, no ONNX files needed."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from engine.draft import composite as comp
from engine.draft.quick_regions import merge_small_pieces, quick_regions


def two_tone_guide(n: int = 128, edge: int = 70) -> np.ndarray:
    guide = np.full((n, n), 0.2, np.float32)
    guide[:, edge:] = 0.8
    return guide


def test_composite_puts_each_pass_inside_its_own_region():
    n = 128
    labels = np.ones((16, 16), np.int64)
    labels[4:12, 4:12] = 7  # a square region in the middle, ids with a gap
    full = comp.snap_labels(labels, np.full((n, n, 3), 128, np.uint8))
    passes = {0: np.tile(np.array([1.0, 0, 0], np.float32), (n, n, 1)),
              3: np.tile(np.array([0, 0, 1.0], np.float32), (n, n, 1))}
    weights = comp.reference_weights(full, {1: 0, 7: 3}, np.full((n, n), 0.5, np.float32))
    np.testing.assert_allclose(weights[0] + weights[3], 1.0, atol=1e-5)
    image = comp.composite(passes, weights)
    assert (image[40:88, 40:88] == [0, 0, 255]).all()  # inside the square, away from the seam
    assert (image[:24] == [255, 0, 0]).all() and (image[:, :24] == [255, 0, 0]).all()
    seam = image[64, 20:44, 0].astype(int)  # across the left seam (x = 32)
    assert np.all(np.diff(seam) <= 0) and 0 < np.count_nonzero((seam > 5) & (seam < 250)) <= 10  # narrow feather


def test_seams_snap_to_the_photo_edge_not_to_the_coarse_grid():
    labels = np.ones((16, 16), np.int64)
    labels[:, 8:] = 2  # coarse border at x = 64; the photo's edge is at x = 70
    full = comp.snap_labels(labels, (np.repeat(two_tone_guide()[..., None], 3, 2) * 255).astype(np.uint8))
    borders = np.argmax(full == 2, axis=1)
    assert np.abs(borders - 70).max() <= 1
    assert (np.diff(full, axis=1) >= 0).all()  # one clean border per row


def test_feather_stays_sharp_across_a_real_edge():
    full = np.ones((128, 128), np.int64)
    full[:, 70:] = 2
    weights = comp.reference_weights(full, {1: 0, 2: 1}, two_tone_guide())
    flat = comp.reference_weights(full, {1: 0, 2: 1}, np.full((128, 128), 0.5, np.float32))
    soft = lambda w: np.count_nonzero((w[64] > 0.02) & (w[64] < 0.98))  # noqa: E731
    assert soft(weights[0]) < soft(flat[0])
    assert 2 <= soft(flat[0]) <= 8  # about 6 px at 512 scales to about 2 px at 128, never zero


def test_one_reference_everywhere_is_the_pass_itself():
    full = np.arange(4).repeat(32)[None].repeat(128, 0)
    stylised = np.random.default_rng(0).random((128, 128, 3)).astype(np.float32)
    weights = comp.reference_weights(full, {0: 2, 1: 2, 2: 2, 3: 2}, np.zeros((128, 128), np.float32))
    np.testing.assert_array_equal(comp.composite({2: stylised}, weights), (stylised * 255 + 0.5).astype(np.uint8))


def test_a_region_without_reference_is_an_error():
    with pytest.raises(ValueError, match=r"regions \[2\]"):
        comp.reference_weights(np.array([[1, 2]]), {1: 0}, np.zeros((1, 2), np.float32))


def test_preserve_colour_keeps_chroma_and_takes_brightness():
    photo = np.zeros((8, 8, 3), np.uint8)
    photo[..., 0] = 200  # a red photo
    stylised = np.full((8, 8, 3), 90, np.uint8)  # a grey style
    out = comp.preserve_colour(stylised, photo).astype(int)
    assert (out[..., 0] > out[..., 1] + 40).all()  # still red
    assert abs(out.mean(axis=(0, 1)) @ [0.299, 0.587, 0.114] - 90) < 4  # with the style's brightness


def halves_image(n: int = 256) -> np.ndarray:
    """Left: noisy grass green; right: smooth sky blue, both with mild gradients."""
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[0:n, 0:n] / n
    img = np.empty((n, n, 3), np.float32)
    img[..., 0] = np.where(xx < 0.5, 60 + 30 * yy, 90 + 20 * yy)
    img[..., 1] = np.where(xx < 0.5, 140 + 20 * yy, 150 + 20 * yy)
    img[..., 2] = np.where(xx < 0.5, 50, 230 - 30 * yy)
    img[:, : n // 2] += rng.normal(0, 18, (n, n // 2, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def test_quick_regions_find_two_different_halves():
    labels = quick_regions(halves_image())
    assert labels.shape == (128, 128)
    assert sorted(np.unique(labels)) == [1, 2]
    left = labels[:, :64]
    assert (left == 1).mean() > 0.97 and (labels[:, 64:] == 2).mean() > 0.97


def test_small_pieces_join_their_neighbour():
    labels = np.ones((20, 20), np.int64)
    labels[:, 10:] = 2
    labels[3:5, 3:5] = 3  # a 4-pixel island inside region 1
    merged = merge_small_pieces(labels, min_pixels=10)
    assert set(np.unique(merged)) == {1, 2} and (merged[3:5, 3:5] == 1).all()


def portrait(n: int = 128) -> np.ndarray:
    """A dark head on a plain light wall, with a soft outline and some noise: the case of the reported bright band."""
    yy, xx = np.mgrid[0:n, 0:n]
    head = ((yy - 0.6 * n) / 0.45) ** 2 + (xx - n / 2) ** 2 < (0.3 * n) ** 2
    photo = np.where(head[..., None], [60.0, 45, 40], [235.0, 228, 215])
    photo = cv2.GaussianBlur(photo, (0, 0), 1.5) + np.random.default_rng(5).normal(0, 4, photo.shape)
    return np.clip(photo, 0, 255).astype(np.uint8)


def test_seams_blend_the_passes_and_never_show_the_photo():
    """Along every seam each output pixel lies on the segment between the two passes' colours (one region's style
    or a blend of both), however the photo's edge and the coarse border disagree."""
    photo = portrait()
    n = photo.shape[0]
    coarse = np.where(cv2.resize(photo[..., 0], (16, 16), interpolation=cv2.INTER_AREA) < 150, 2, 1)
    full = comp.snap_labels(coarse, photo)
    wall, skin = np.array([0.1, 0.8, 0.2], np.float32), np.array([0.9, 0.2, 0.6], np.float32)
    passes = {0: np.tile(wall, (n, n, 1)), 1: np.tile(skin, (n, n, 1))}
    out = comp.composite(passes, comp.reference_weights(full, {1: 0, 2: 1}, comp.gray_guide(photo)))
    near = cv2.dilate((full == 1).astype(np.uint8), np.ones((15, 15))) & cv2.dilate((full == 2).astype(np.uint8),
                                                                                    np.ones((15, 15)))
    assert near.sum() > 100
    a, b, pixels = wall * 255, skin * 255, out[near.astype(bool)].astype(np.float32)
    t = np.clip((pixels - a) @ (b - a) / ((b - a) @ (b - a)), 0, 1)
    off_segment = np.linalg.norm(pixels - (a + t[:, None] * (b - a)), axis=1)
    assert off_segment.max() <= 1.5  # uint8 rounding only
