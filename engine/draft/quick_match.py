"""Quick matching: each content region takes the reference whose style vector and colours it resembles most.

Used when no stage-2 match table is given (no Stable Diffusion models). The score mixes the cosine of the region's
own style vector with a reference's (mapped to [0, 1]) and the Bhattacharyya coefficient of their a*b* colour
histograms; it ranks references for one region and means nothing across regions.
"""
from __future__ import annotations

from typing import Callable

import cv2
import numpy as np

from ..params import QuickMatchParams
from ..types import RegionMatch


def region_crop(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The region's bounding box, pixels outside the region filled with its mean colour (the predictor pools
    globally, so foreign pixels would leak their style into the region's vector)."""
    rows, cols = np.nonzero(mask)
    box = (slice(rows.min(), rows.max() + 1), slice(cols.min(), cols.max() + 1))
    crop = image[box].copy()
    inside = mask[box]
    crop[~inside] = image[mask].mean(axis=0).astype(np.uint8)
    return crop


def ab_histogram(pixels: np.ndarray, bins: int) -> np.ndarray:
    """uint8 RGB pixels (N, 3) -> normalised a*b* histogram (bins**2,)."""
    lab = cv2.cvtColor(pixels.reshape(-1, 1, 3), cv2.COLOR_RGB2Lab).reshape(-1, 3)  # 8-bit Lab: a, b in 0..255
    hist, _, _ = np.histogram2d(lab[:, 1], lab[:, 2], bins=bins, range=[[0, 256], [0, 256]])
    hist = hist.ravel()
    return hist / max(hist.sum(), 1.0)


def subsample(pixels: np.ndarray, at_most: int) -> np.ndarray:
    step = max(1, len(pixels) // at_most)
    return pixels[::step]


def quick_matches(image: np.ndarray, full_labels: np.ndarray, references: list[np.ndarray],
                  reference_vectors: list[np.ndarray],
                  vector_of: Callable[[np.ndarray], np.ndarray],
                  params: QuickMatchParams = QuickMatchParams()) -> dict[int, RegionMatch]:
    """Best reference per region of `full_labels` (same size as `image`); `references` are uint8 RGB images and
    `vector_of` encodes a uint8 crop into a style vector."""

    def histogram(pixels: np.ndarray) -> np.ndarray:
        return ab_histogram(subsample(pixels, params.hist_pixels), params.hist_bins)

    ref_hists = [histogram(ref.reshape(-1, 3)) for ref in references]
    ref_units = [v / (np.linalg.norm(v) + 1e-8) for v in reference_vectors]
    matches = {}
    for region in np.unique(full_labels):
        mask = full_labels == region
        vector = vector_of(region_crop(image, mask))
        vector = vector / (np.linalg.norm(vector) + 1e-8)
        hist = histogram(image[mask])
        scores = [params.style_weight * (1 + float(vector @ unit)) / 2
                  + params.colour_weight * float(np.sqrt(hist * ref_hist).sum())
                  for unit, ref_hist in zip(ref_units, ref_hists)]
        best = int(np.argmax(scores))
        matches[int(region)] = RegionMatch(int(region), best, None, scores[best])
    return matches
