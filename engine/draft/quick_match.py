"""Quick matching: each content region takes the reference whose style vector and colours it resembles most.

Used when no stage-2 match table is given (no Stable Diffusion models). The score mixes the cosine of the region's
own style vector with a reference's (mapped to [0, 1]) and the Bhattacharyya coefficient of their a*b* colour
histograms; it ranks references for one region and means nothing across regions.
"""
from __future__ import annotations

from typing import Callable

import cv2
import numpy as np

from ..types import RegionMatch

STYLE_WEIGHT = 0.5
COLOUR_WEIGHT = 0.5
HIST_BINS = 12  # per a* and b* axis; coarse on purpose: palettes, not exact hues
HIST_PIXELS = 128 * 128  # colour statistics are taken on at most about this many pixels


def region_crop(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The region's bounding box, pixels outside the region filled with its mean colour (the predictor pools
    globally, so foreign pixels would leak their style into the region's vector)."""
    rows, cols = np.nonzero(mask)
    box = (slice(rows.min(), rows.max() + 1), slice(cols.min(), cols.max() + 1))
    crop = image[box].copy()
    inside = mask[box]
    crop[~inside] = image[mask].mean(axis=0).astype(np.uint8)
    return crop


def ab_histogram(pixels: np.ndarray) -> np.ndarray:
    """uint8 RGB pixels (N, 3) -> normalised a*b* histogram (HIST_BINS**2,)."""
    lab = cv2.cvtColor(pixels.reshape(-1, 1, 3), cv2.COLOR_RGB2Lab).reshape(-1, 3)  # 8-bit Lab: a, b in 0..255
    hist, _, _ = np.histogram2d(lab[:, 1], lab[:, 2], bins=HIST_BINS, range=[[0, 256], [0, 256]])
    hist = hist.ravel()
    return hist / max(hist.sum(), 1.0)


def subsample(pixels: np.ndarray) -> np.ndarray:
    step = max(1, len(pixels) // HIST_PIXELS)
    return pixels[::step]


def quick_matches(image: np.ndarray, full_labels: np.ndarray, references: list[np.ndarray],
                  reference_vectors: list[np.ndarray],
                  vector_of: Callable[[np.ndarray], np.ndarray]) -> dict[int, RegionMatch]:
    """Best reference per region of `full_labels` (same size as `image`); `references` are uint8 RGB images and
    `vector_of` encodes a uint8 crop into a style vector."""
    ref_hists = [ab_histogram(subsample(ref.reshape(-1, 3))) for ref in references]
    ref_units = [v / (np.linalg.norm(v) + 1e-8) for v in reference_vectors]
    matches = {}
    for region in np.unique(full_labels):
        mask = full_labels == region
        vector = vector_of(region_crop(image, mask))
        vector = vector / (np.linalg.norm(vector) + 1e-8)
        hist = ab_histogram(subsample(image[mask]))
        scores = [STYLE_WEIGHT * (1 + float(vector @ unit)) / 2 + COLOUR_WEIGHT * float(np.sqrt(hist * ref_hist).sum())
                  for unit, ref_hist in zip(ref_units, ref_hists)]
        best = int(np.argmax(scores))
        matches[int(region)] = RegionMatch(int(region), best, None, scores[best])
    return matches
