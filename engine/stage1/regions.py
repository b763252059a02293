"""Stage 1, steps 6-10: latent merge, depth split, latent + depth re-merge, user mask, small-piece clean-up.

Label maps are flat (N,) int64 tensors for steps 6-8 (the reference works on flattened pixels in
torch float32, and the threshold comparisons are reproduced in that precision) and (h, w) numpy
arrays for steps 9-10. A cluster id with no pixels takes a random pixel's values from the global
generator, as in the reference; run inside `clustering.seeded_global_rng` to make that deterministic.
"""
from __future__ import annotations

import colorsys

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from scipy import ndimage

from .clustering import kmeans
from ..errors import InvalidRequest
from ..params import Stage1Params

_CROSS = ndimage.generate_binary_structure(2, 1)  # 4-connectivity


def _cluster_means(values: torch.Tensor, labels: torch.Tensor, n_clusters: int) -> torch.Tensor:
    """Per-cluster mean of `values` (N, D); an empty id takes a random pixel's value (reference behaviour)."""
    means = []
    for i in range(n_clusters):
        member = labels == i
        if member.any():
            means.append(values[member].mean(dim=0))
        else:
            means.append(values[torch.randint(0, values.shape[0], (1,), device=values.device)].squeeze(0))
    return torch.stack(means).float()


def _attach_reference(close: torch.Tensor) -> list[int]:
    """Each j attaches to the highest i < j it is close to; roots are found by following attachments.

    Not transitive closure: with only d(0,2) and d(1,2) close, 2 joins 1 and 0 stays alone.
    """
    n = close.shape[0]
    parent = list(range(n))
    for j in range(n):
        for i in range(j):
            if close[i, j]:
                parent[j] = i
    roots = []
    for j in range(n):
        root = j
        while parent[root] != root:
            root = parent[root]
        roots.append(root)
    return roots


def _attach_union_find(close: torch.Tensor) -> list[int]:
    """Transitive closure: every chain of close pairs becomes one region, rooted at its smallest id."""
    n = close.shape[0]
    parent = list(range(n))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for i in range(n):
        for j in range(i + 1, n):
            if close[i, j]:
                a, b = find(i), find(j)
                parent[max(a, b)] = min(a, b)
    return [find(j) for j in range(n)]


def merge_clusters(labels: torch.Tensor, n_clusters: int, latent: torch.Tensor, threshold: float,
                   rule: str = "reference", depth: torch.Tensor | None = None,
                   depth_threshold: float | None = None) -> tuple[torch.Tensor, int]:
    """Steps 6 and 8: merge clusters whose mean latents (N, 4) are closer than `threshold` (strict) and,
    when `depth` (N,) is given, whose mean normalised depths differ by less than `depth_threshold`.

    Returns the new 0-based labels (surviving roots renumbered in ascending order) and their count.
    """
    means = _cluster_means(latent, labels, n_clusters)
    close = torch.cdist(means, means) < threshold
    if depth is not None:
        depth_means = torch.zeros(n_clusters, device=depth.device)
        for i in range(n_clusters):
            member = labels == i
            if member.any():
                depth_means[i] = depth[member].mean()
        close &= torch.abs(depth_means.unsqueeze(0) - depth_means.unsqueeze(1)) < depth_threshold
    attach = {"reference": _attach_reference, "union_find": _attach_union_find}[rule]
    roots = torch.tensor(attach(close.cpu()), dtype=torch.long)
    kept, mapping = torch.unique(roots, return_inverse=True)
    return mapping.to(labels.device)[labels], int(kept.numel())


def depth_at_grid(depth: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """Depth (H, W) -> the label grid's (h, w) by floor-index nearest sampling: the only values of it the method
    uses. Sampling a map already at the grid returns it unchanged, so the cache can keep this one."""
    return F.interpolate(depth.float()[None, None], size=tuple(shape), mode="nearest")[0, 0]


def depth_grid(depth: torch.Tensor, shape: tuple[int, int], eps: float) -> torch.Tensor:
    """Native-size depth (H, W) -> the label grid's (h, w) (`depth_at_grid`), min-max normalised with denominator
    (max - min + eps)."""
    grid = depth_at_grid(depth, shape)
    return (grid - grid.min()) / (grid.max() - grid.min() + eps)


def depth_split(labels: torch.Tensor, n_clusters: int, depth: torch.Tensor,
                params: Stage1Params) -> tuple[torch.Tensor, int]:
    """Step 7: split each cluster (ascending id, >= min pixels) whose 5-95 % depth span (`depth` (N,),
    normalised) reaches the threshold, by one 1-D 2-means; the half labelled 1 gets a new id. Halves are
    not re-split. Returns the labels and the cluster count (old count + splits)."""
    labels = labels.clone()
    next_id = int(labels.max()) + 1
    for cluster in torch.unique(labels).tolist():
        index = torch.nonzero(labels == cluster).squeeze(1)
        n = index.numel()
        if n < params.depth_split_min_pixels:
            continue
        values = depth[index]
        ordered = torch.sort(values).values
        span = ordered[min(int(params.depth_split_high_quantile * n), n - 1)] - \
            ordered[int(params.depth_split_low_quantile * n)]
        if span < params.depth_split_threshold:
            continue
        generator = torch.Generator(device=values.device)
        generator.manual_seed(params.seed)
        halves = kmeans(values.unsqueeze(1), 2, 1, params.kmeans_max_iters, params.kmeans_tol, generator).labels
        if (halves == 0).any() and (halves == 1).any():
            labels[index[halves == 1]] = next_id
            next_id += 1
            n_clusters += 1
    return labels, n_clusters


def user_mask_grid(mask: Image.Image, sizes: tuple[tuple[int, int], ...], grid: tuple[int, int]) -> np.ndarray:
    """Step 9 input: an RGB label image of one of `sizes` (width, height) -> (rows, cols) = `grid` int64 ids,
    0 = keep automatic.

    Each distinct non-black colour is a region, numbered in order of first appearance in raster order
    at full size; grid cell (i, j) takes pixel (floor(i H / rows), floor(j W / cols)) (at 512 px and 64 cells:
    (8 i, 8 j), the reference's sampling).
    """
    check_mask_size(mask, sizes)
    rgb = np.asarray(mask.convert("RGB"), dtype=np.int64)
    codes = (rgb[..., 0] + (rgb[..., 1] << 8) + (rgb[..., 2] << 16)).ravel()
    colours, first, inverse = np.unique(codes, return_index=True, return_inverse=True)
    first = np.where(colours == 0, -1, first)  # black sorts first and takes id 0
    rank = np.empty(colours.size, dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(colours.size) + int(not (colours == 0).any())
    width, height = mask.size
    return sample_grid(rank[inverse].reshape(height, width), grid)


def check_mask_size(mask: Image.Image, sizes: tuple[tuple[int, int], ...]) -> None:
    """A region mask must be exactly one of `sizes` (width, height): a resized one would shift every border."""
    if tuple(mask.size) not in {tuple(size) for size in sizes}:
        allowed = " or ".join(dict.fromkeys(f"{w}x{h}" for w, h in sizes))
        raise InvalidRequest(f"The region mask is {mask.size[0]}x{mask.size[1]} pixels; it must be exactly "
                             f"{allowed}", hint="Draw the mask on the photo itself, or on the image resized to "
                                                "the method's working size.")


def sample_grid(ids: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """A full-size id image (H, W) -> (rows, cols) = `grid`: cell (i, j) takes pixel (floor(i H / rows),
    floor(j W / cols))."""
    height, width = ids.shape
    rows, cols = grid
    return ids[np.ix_((np.arange(rows) * height) // rows, (np.arange(cols) * width) // cols)]


def apply_user_mask(labels: np.ndarray, mask_ids: np.ndarray) -> np.ndarray:
    """Step 9: each non-zero mask region (ascending id) overwrites its pixels with a fresh id; then all ids
    are renumbered 1.. in ascending old-id order."""
    out = labels.copy()
    for region in np.unique(mask_ids[mask_ids != 0]):
        out[mask_ids == region] = out.max() + 1
    return np.unique(out, return_inverse=True)[1].reshape(out.shape) + 1


def remove_small_pieces(labels: np.ndarray, min_size: int) -> np.ndarray:
    """Step 10, one pass: every 4-connected piece under `min_size` cells takes the most frequent label on
    its 4-neighbouring cells (as they were before the pass; ties -> smallest id). A piece with no other
    label around it stays."""
    cleaned = labels.copy()
    for value in np.unique(labels):
        pieces, count = ndimage.label(labels == value, structure=_CROSS)
        sizes = np.bincount(pieces.ravel(), minlength=count + 1)
        for piece_id in np.nonzero(sizes[1:] < min_size)[0] + 1:
            piece = pieces == piece_id
            ring = ndimage.binary_dilation(piece, structure=_CROSS) & ~piece
            around = labels[ring]
            around = around[around != value]
            if around.size:
                ids, counts = np.unique(around, return_counts=True)
                cleaned[piece] = ids[counts.argmax()]
    return cleaned


def region_colours(region_ids: list[int]) -> dict[int, tuple[int, int, int]]:
    """A stable, distinct RGB colour per region id (golden-ratio hues), shared by the CLI and the GUI."""
    colours = {}
    for region in region_ids:
        hue = (0.61803398875 * region) % 1.0
        r, g, b = colorsys.hsv_to_rgb(hue, 0.75, 0.95)
        colours[int(region)] = (round(r * 255), round(g * 255), round(b * 255))
    return colours
