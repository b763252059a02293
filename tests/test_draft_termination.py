"""Every loop of the draft's regions finishes: small-piece merging and quick regions on random and adversarial
label maps and images, each call under an in-process time limit (a hang fails the test instead of freezing it)."""
from __future__ import annotations

import signal
from contextlib import contextmanager
from typing import Iterator

import cv2
import numpy as np
import pytest
from scipy import ndimage

from engine.draft.quick_regions import merge_small_pieces, quick_regions
from engine.params import QuickRegionParams

pytestmark = pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="needs SIGALRM for the time limit")

CALL_LIMIT_S = 5.0  # far above any finishing call; only a call that never returns reaches it


class Hung(Exception):
    pass


@contextmanager
def time_limit(seconds: float = CALL_LIMIT_S) -> Iterator[None]:
    """Raise Hung inside the block once `seconds` have passed (the main thread's SIGALRM)."""
    def on_alarm(signum, frame):
        raise Hung(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def piece_sizes(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(piece id per pixel, pixels per piece id) over the 4-connected pieces of equal labels (scipy's labelling,
    independent of the code under test)."""
    ids = np.zeros(labels.shape, np.int64)
    count = 0
    for label in np.unique(labels):
        comp, n = ndimage.label(labels == label)  # the default structure is 4-connected
        ids[comp > 0] = comp[comp > 0] + count - 1
        count += n
    return ids, np.bincount(ids.ravel(), minlength=count)


def check_merged(before: np.ndarray, min_pixels: int) -> None:
    """merge_small_pieces finishes and returns a valid map: same shape and dtype, only labels it was given,
    pieces already big enough keep their label, and no piece is left small unless one piece covers everything."""
    with time_limit():
        after = merge_small_pieces(before, min_pixels)
    assert after.shape == before.shape and after.dtype == before.dtype
    assert set(np.unique(after)) <= set(np.unique(before))
    ids, sizes = piece_sizes(before)
    big = sizes[ids] >= min_pixels
    assert (after[big] == before[big]).all()
    _, sizes = piece_sizes(after)
    assert len(sizes) == 1 or sizes.min() >= min_pixels


def checkerboard(height: int, width: int, cell: int = 1, labels: int = 2) -> np.ndarray:
    rows, cols = np.indices((height, width)) // cell
    return (rows + cols) % labels + 1


def diagonal_chains(height: int, width: int, period: int = 3) -> np.ndarray:
    rows, cols = np.indices((height, width))
    return np.where((rows + cols) % period == 0, 1, np.where((rows - cols) % period == 0, 2, 3))


def islands(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    labels = np.ones((height, width), np.int64)
    labels[:, width // 2:] = 2
    count = max(1, height * width // 20)
    labels[rng.integers(0, height, count), rng.integers(0, width, count)] = rng.integers(3, 9, count)
    return labels


def stripes(height: int, width: int, thickness: int, vertical: bool) -> np.ndarray:
    index = np.indices((height, width))[1 if vertical else 0]
    return index // thickness % 3 + 1


def test_a_piece_tied_with_its_own_label_through_a_corner_does_not_hang():
    """The map that hung: the one-pixel piece at the corner touches its own label only diagonally, and its
    8-neighbour ring is a three-way tie that picked its own label, so every round changed nothing."""
    labels = np.array([[1, 2, 2, 2], [3, 1, 1, 1], [3, 1, 1, 1], [3, 1, 1, 1]])
    check_merged(labels, 2)
    with time_limit():
        assert merge_small_pieces(labels, 2)[0, 0] != 1


SHAPES = [(1, 1), (1, 9), (9, 1), (2, 2), (3, 7), (8, 8), (16, 5), (5, 31), (24, 24), (40, 13), (64, 64)]


@pytest.mark.parametrize("height,width", SHAPES)
def test_adversarial_maps_finish(height, width):
    rng = np.random.default_rng(height * 100 + width)
    maps = [np.ones((height, width), np.int64) * 7,  # one label
            checkerboard(height, width), checkerboard(height, width, 1, 3), checkerboard(height, width, 2),
            diagonal_chains(height, width), diagonal_chains(height, width, 2), islands(height, width, rng),
            stripes(height, width, 1, True), stripes(height, width, 1, False), stripes(height, width, 2, True)]
    area = height * width
    for labels in maps:
        for min_pixels in sorted({0, 1, 2, 3, 5, max(1, area // 10), area, area + 1}):
            check_merged(labels, min_pixels)


def test_random_maps_finish():
    """Random maps (with the adversarial ones above, over two thousand calls): noise with few and many labels, blobs, at several sizes and aspect ratios."""
    rng = np.random.default_rng(0)
    for _ in range(1200):
        height, width = rng.integers(1, 25, 2)
        n_labels = int(rng.choice([2, 3, 5, 16, 200]))
        labels = rng.integers(0, n_labels, (height, width)).astype(np.int64) - int(rng.integers(0, 2)) * 3
        if rng.random() < 0.3:  # blobs: noise upsampled, so pieces of every size
            small = rng.integers(0, n_labels, (max(1, height // 4), max(1, width // 4)))
            labels = cv2.resize(small.astype(np.float32), (int(width), int(height)),
                                interpolation=cv2.INTER_NEAREST).astype(np.int64)
        check_merged(labels, int(rng.integers(0, height * width // 3 + 2)))


def test_quick_regions_finish_on_random_and_flat_images():
    rng = np.random.default_rng(1)
    images = [np.zeros((40, 60, 3), np.uint8), np.full((7, 300, 3), 255, np.uint8),
              (checkerboard(64, 64)[..., None] * 100).repeat(3, 2).astype(np.uint8)]
    images += [rng.integers(0, 256, (int(h), int(w), 3), dtype=np.uint8) for h, w in rng.integers(4, 90, (6, 2))]
    for image in images:
        for grid in (16, 32):
            with time_limit():
                labels = quick_regions(image, QuickRegionParams(grid=grid, superpixels=40))
            assert labels.shape == (grid, grid)
            ids = np.unique(labels)
            assert ids[0] == 1 and (ids == np.arange(1, len(ids) + 1)).all()
