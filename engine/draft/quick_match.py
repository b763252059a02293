"""Quick matching: each content region takes the reference whose style vector and colours it resembles most.

Used when no stage-2 match table is given (no Stable Diffusion models). The score mixes the cosine of the region's
own style vector with a reference's (mapped to [0, 1]) and the Bhattacharyya coefficient of their a*b* colour
histograms; it ranks references for one region and means nothing across regions.

Spreading: each region's best reference alone often gives every region the same one, while the artist checked
several. So references are spread where the scores allow: among assignments in which no region loses more than
`QuickMatchParams.spread_max_loss` against its own best score, the one using the most distinct references (then
losing the least in total) is kept; a reference still unused gets a reason, which reaches the draft's metadata.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import cv2
import numpy as np
from scipy.optimize import linear_sum_assignment

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


@dataclass
class QuickMatching:
    """Quick matches per region and, for each reference no region took, the reason in words."""

    matches: dict[int, RegionMatch]
    unused: dict[int, str] = field(default_factory=dict)


def spread_assignment(scores: np.ndarray, max_loss: float) -> np.ndarray:
    """scores (regions, references) -> the chosen reference per region.

    The most distinct references any assignment can use when no region scores more than `max_loss` below its
    own best equals the largest matching over such (region, reference) pairs; a min-cost assignment with the
    other pairs priced out finds one that loses the least. Regions left out of it keep their best reference.
    """
    loss = scores.max(axis=1, keepdims=True) - scores
    allowed = loss <= max_loss
    priced_out = float(loss.sum()) + 1.0  # dearer than every allowed pair together
    rows, cols = linear_sum_assignment(np.where(allowed, loss, priced_out))
    chosen = scores.argmax(axis=1)
    keep = allowed[rows, cols]
    chosen[rows[keep]] = cols[keep]
    return chosen


def unused_reasons(scores: np.ndarray, chosen: np.ndarray, regions: list[int], max_loss: float) -> dict[int, str]:
    """Why each reference no region took lost: its closest region and by how much."""
    reasons = {}
    for ref in sorted(set(range(scores.shape[1])) - set(chosen.tolist())):
        loss = scores.max(axis=1) - scores[:, ref]
        row = int(np.argmin(loss))
        if loss[row] > max_loss:
            reasons[ref] = (f"no region suits it: its closest, region {regions[row]}, scores {scores[row, ref]:.3f} "
                            f"against {scores[row].max():.3f} for reference {int(scores[row].argmax())}, more than "
                            f"{max_loss} lower")
        else:
            reasons[ref] = (f"{len(regions)} region{'s' if len(regions) != 1 else ''} for "
                            f"{scores.shape[1]} references: the regions suit other references better")
    return reasons


def quick_matches(image: np.ndarray, full_labels: np.ndarray, references: list[np.ndarray],
                  reference_vectors: list[np.ndarray], vector_of: Callable[[np.ndarray], np.ndarray],
                  params: QuickMatchParams = QuickMatchParams()) -> QuickMatching:
    """A reference per region of `full_labels` (same size as `image`), spread over the references where the scores
    allow; `references` are uint8 RGB images and `vector_of` encodes a uint8 crop into a style vector."""

    def histogram(pixels: np.ndarray) -> np.ndarray:
        return ab_histogram(subsample(pixels, params.hist_pixels), params.hist_bins)

    ref_hists = [histogram(ref.reshape(-1, 3)) for ref in references]
    ref_units = [v / (np.linalg.norm(v) + 1e-8) for v in reference_vectors]
    regions = [int(r) for r in np.unique(full_labels)]
    scores = np.zeros((len(regions), len(references)))
    for row, region in enumerate(regions):
        mask = full_labels == region
        vector = vector_of(region_crop(image, mask))
        vector = vector / (np.linalg.norm(vector) + 1e-8)
        hist = histogram(image[mask])
        scores[row] = [params.style_weight * (1 + float(vector @ unit)) / 2
                       + params.colour_weight * float(np.sqrt(hist * ref_hist).sum())
                       for unit, ref_hist in zip(ref_units, ref_hists)]
    chosen = spread_assignment(scores, params.spread_max_loss)
    matches = {region: RegionMatch(region, int(ref), None, float(scores[row, ref]))
               for row, (region, ref) in enumerate(zip(regions, chosen))}
    return QuickMatching(matches, unused_reasons(scores, chosen, regions, params.spread_max_loss))
