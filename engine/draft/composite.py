"""Putting each reference's stylised pass inside its own regions, with seams that sit on the photo's real edges.

Two steps: coarse labels (64x64 from stage 1, or the quick regions) are snapped to the photo's edges once per
(content, labels, size) by a watershed in a one-cell band around each border; then, per pin change, a narrow
guided-filter feather (He et al. 2010; about 6 px at 512) of each reference's mask blends the passes. The feather
is narrow on purpose: a wide one shows two styles at once along every seam (a double-exposure band).
"""
from __future__ import annotations

import cv2
import numpy as np

from ..params import DraftParams


def guided_filter(guide: np.ndarray, src: np.ndarray, radius: int, eps: float) -> np.ndarray:
    """He et al.'s gray-guide filter: smooths `src` (H, W) but keeps its steps where `guide` (H, W) has edges."""
    size = (2 * radius + 1, 2 * radius + 1)

    def box(x: np.ndarray) -> np.ndarray:
        return cv2.boxFilter(x, cv2.CV_32F, size, borderType=cv2.BORDER_REFLECT)

    mean_i = box(guide)
    mean_p = box(src)
    var_i = box(guide * guide) - mean_i * mean_i
    a = (box(guide * src) - mean_i * mean_p) / (var_i + eps)
    b = mean_p - a * mean_i
    return box(a) * guide + box(b)


def gray_guide(image: np.ndarray) -> np.ndarray:
    """uint8 or [0, 1] float RGB (H, W, 3) -> float32 luminance in [0, 1], the guide for both steps."""
    rgb = image.astype(np.float32) / (255.0 if image.dtype == np.uint8 else 1.0)
    return np.ascontiguousarray(rgb @ np.array([0.299, 0.587, 0.114], np.float32))


def snap_labels(labels: np.ndarray, image: np.ndarray) -> np.ndarray:
    """Coarse int labels (h, w) -> labels at the image's size (H, W) whose borders follow the photo's edges.

    Pixels within one coarse cell of a border are unknown; a watershed on the uint8 RGB `image` floods them from
    the certain parts, so each border settles on the strongest edge near where the coarse map put it.
    """
    height, width = image.shape[:2]
    ids, index = np.unique(labels, return_inverse=True)
    index = index.reshape(labels.shape).astype(np.float32)
    if len(ids) == 1:
        return np.full((height, width), ids[0], dtype=labels.dtype)
    coarse = cv2.resize(index, (width, height), interpolation=cv2.INTER_NEAREST)
    cell = max(height / labels.shape[0], width / labels.shape[1])
    kernel = np.ones((2 * int(np.ceil(cell)) + 1,) * 2, np.uint8)
    near_border = cv2.dilate(coarse, kernel) != cv2.erode(coarse, kernel)
    markers = np.where(near_border, 0, coarse + 1).astype(np.int32)
    for k in range(len(ids)):
        if not (markers == k + 1).any():  # a region thinner than the band: seed it at its innermost pixel
            inside = (coarse == k).astype(np.uint8)
            centre = np.unravel_index(np.argmax(cv2.distanceTransform(inside, cv2.DIST_L2, 3)), inside.shape)
            markers[centre] = k + 1
    cv2.watershed(np.ascontiguousarray(image[..., ::-1]), markers)
    ridge = markers < 1  # watershed lines (-1) between basins: take a neighbour's label
    markers[ridge] = cv2.dilate(markers.astype(np.float32), np.ones((3, 3), np.uint8))[ridge].astype(np.int32)
    markers[markers < 1] = coarse[markers < 1].astype(np.int32) + 1
    return ids[markers - 1]


def feather_radius(width: int, height: int, px_at_512: float) -> int:
    """Box radius giving about `px_at_512` of blend at 512, scaled with the working size."""
    return max(1, int(round(px_at_512 / 2 * max(width, height) / 512)))


def reference_weights(full_labels: np.ndarray, region_to_ref: dict[int, int], guide: np.ndarray,
                      params: DraftParams = DraftParams()) -> dict[int, np.ndarray]:
    """Per reference, a feathered weight map (H, W) over the regions it styles (feather: `params.feather_*`);
    the maps sum to 1 everywhere."""
    refs = sorted(set(region_to_ref.values()))
    ref_of_pixel = np.full(full_labels.shape, -1, np.int64)
    for region, ref in region_to_ref.items():
        ref_of_pixel[full_labels == region] = ref
    if (ref_of_pixel < 0).any():
        missing = sorted(int(r) for r in np.unique(full_labels[ref_of_pixel < 0]))
        raise ValueError(f"regions {missing} have no reference")
    if len(refs) == 1:
        return {refs[0]: np.ones(full_labels.shape, np.float32)}
    radius = feather_radius(full_labels.shape[1], full_labels.shape[0], params.feather_px_at_512)
    weights = {ref: np.clip(guided_filter(guide, (ref_of_pixel == ref).astype(np.float32), radius,
                                          params.feather_eps), 0, 1) for ref in refs}
    total = np.maximum(sum(weights.values()), 1e-6)
    return {ref: w / total for ref, w in weights.items()}


def composite(passes: dict[int, np.ndarray], weights: dict[int, np.ndarray]) -> np.ndarray:
    """Blend the per-reference passes (H, W, 3) float in [0, 1] by their weights -> uint8 (H, W, 3)."""
    out = np.zeros(next(iter(passes.values())).shape, np.float32)
    for ref, weight in weights.items():
        out += passes[ref] * weight[..., None]
    return (np.clip(out, 0, 1) * 255 + 0.5).astype(np.uint8)


def preserve_colour(stylised: np.ndarray, photo: np.ndarray) -> np.ndarray:
    """Keep the stylised brightness (Y) but take chroma (Cb, Cr) from the photo; uint8 (H, W, 3) in and out."""
    y = cv2.cvtColor(stylised, cv2.COLOR_RGB2YCrCb)[..., 0]
    ycrcb = cv2.cvtColor(photo, cv2.COLOR_RGB2YCrCb)
    ycrcb[..., 0] = y
    return cv2.cvtColor(ycrcb, cv2.COLOR_YCrCb2RGB)
