"""Quick regions: a classical segmentation for drafts made without the Stable Diffusion models.

Superpixels (SLIC, Achanta et al. 2012) on a small copy of the photo are clustered on colour, position and texture;
the cluster count is the one with the best silhouette; pieces too small to style are merged into a neighbour.
These regions are not the method's (stage 1): everything that shows them labels them "quick".
"""
from __future__ import annotations

import heapq

import cv2
import numpy as np

from ..params import QuickRegionParams


def slic(lab: np.ndarray, n_segments: int, compactness: float, iters: int) -> np.ndarray:
    """SLIC superpixels on a Lab image (H, W, 3) float32 -> int labels (H, W), each pixel choosing among the
    nine centres seeded in its own and the neighbouring grid cells (SLIC's 2S x 2S search window)."""
    height, width = lab.shape[:2]
    step = np.sqrt(height * width / n_segments)
    rows, cols = max(1, int(round(height / step))), max(1, int(round(width / step)))
    cy = (np.arange(rows) + 0.5) * height / rows
    cx = (np.arange(cols) + 0.5) * width / cols
    positions = np.stack(np.meshgrid(cy, cx, indexing="ij"), -1).reshape(-1, 2)
    centres = np.concatenate([lab[cy.astype(int)][:, cx.astype(int)].reshape(-1, 3), positions], 1).astype(np.float32)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    cell_r = np.minimum((yy * rows / height).astype(int), rows - 1)
    cell_c = np.minimum((xx * cols / width).astype(int), cols - 1)
    candidates = []
    for dr in (-1, 0, 1):
        for dc in (-1, 0, 1):
            r, c = cell_r + dr, cell_c + dc
            valid = (r >= 0) & (r < rows) & (c >= 0) & (c < cols)
            candidates.append(np.where(valid, r * cols + c, -1))
    candidates = np.stack(candidates)  # (9, H, W)
    spatial = (compactness / step) ** 2
    features = np.concatenate([lab, yy[..., None], xx[..., None]], axis=-1).reshape(-1, 5)
    flat = candidates.reshape(9, -1)
    for _ in range(iters):
        picked = centres[np.maximum(flat, 0)]  # (9, N, 5)
        diff = picked - features[None]
        dist = (diff[..., :3] ** 2).sum(-1) + spatial * (diff[..., 3:] ** 2).sum(-1)
        dist[flat < 0] = np.inf
        assign = flat[np.argmin(dist, axis=0), np.arange(flat.shape[1])]
        counts = np.bincount(assign, minlength=len(centres))
        sums = np.stack([np.bincount(assign, features[:, j], minlength=len(centres)) for j in range(5)], 1)
        alive = counts > 0
        centres[alive] = sums[alive] / counts[alive, None]
    return assign.reshape(height, width)


def superpixel_features(lab: np.ndarray, texture: np.ndarray, sp: np.ndarray,
                        params: QuickRegionParams) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ids, sizes, features) per non-empty superpixel: mean Lab, mean position, mean local contrast."""
    height, width = sp.shape
    ids, inverse, sizes = np.unique(sp.ravel(), return_inverse=True, return_counts=True)
    yy, xx = np.mgrid[0:height, 0:width]
    columns = [lab[..., 0], lab[..., 1], lab[..., 2], texture, yy / height, xx / width]
    means = np.stack([np.bincount(inverse, c.ravel(), minlength=len(ids)) / sizes for c in columns], 1)
    scale = np.array([params.colour_scale] * 3 + [params.colour_scale / params.texture_weight]
                     + [1 / params.position_weight] * 2)
    return ids, sizes, means / scale


def kmeans(points: np.ndarray, k: int, rng: np.random.Generator, restarts: int, iters: int) -> np.ndarray:
    """Plain k-means++ / Lloyd in numpy: a few hundred points, where a library's thread pool costs more than the
    arithmetic (on a busy 2-core machine, tens of ms per call)."""
    best, best_inertia = None, np.inf
    for _ in range(restarts):
        centres = points[[rng.integers(len(points))]]
        for _ in range(1, k):
            d2 = ((points[:, None] - centres[None]) ** 2).sum(-1).min(1)
            pick = rng.choice(len(points), p=d2 / d2.sum()) if d2.sum() > 0 else rng.integers(len(points))
            centres = np.vstack([centres, points[pick]])
        for _ in range(iters):
            assign = ((points[:, None] - centres[None]) ** 2).sum(-1).argmin(1)
            moved = np.array([points[assign == j].mean(0) if (assign == j).any() else centres[j] for j in range(k)])
            if np.allclose(moved, centres):
                break
            centres = moved
        inertia = ((points - centres[assign]) ** 2).sum()
        if inertia < best_inertia:
            best, best_inertia = assign, inertia
    return best


def silhouette(distances: np.ndarray, assign: np.ndarray) -> float:
    """Mean silhouette (Rousseeuw 1987) from a precomputed distance matrix; singleton clusters score 0."""
    clusters = np.unique(assign)
    mean_to = np.stack([distances[:, assign == c].mean(1) for c in clusters], 1)  # (N, K)
    own = np.searchsorted(clusters, assign)
    sizes = np.bincount(own)
    a = mean_to[np.arange(len(assign)), own] * sizes[own] / np.maximum(sizes[own] - 1, 1)  # excluding itself
    mean_to[np.arange(len(assign)), own] = np.inf
    b = mean_to.min(1)
    scores = np.where(sizes[own] > 1, (b - a) / np.maximum(np.maximum(a, b), 1e-12), 0.0)
    return float(scores.mean())


def choose_clusters(features: np.ndarray, params: QuickRegionParams) -> np.ndarray:
    """k-means over superpixels for each k in range, keeping the k with the best silhouette."""
    rng = np.random.default_rng(params.seed)
    distances = np.sqrt(((features[:, None] - features[None]) ** 2).sum(-1))
    best, best_score = np.zeros(len(features), int), -np.inf
    for k in range(params.k_min, min(params.k_max, len(features) - 1) + 1):
        assign = kmeans(features, k, rng, params.kmeans_restarts, params.kmeans_iters)
        if len(np.unique(assign)) < 2:
            continue
        score = silhouette(distances, assign)
        if score > best_score:
            best, best_score = assign, score
    return best


def four_connected_pieces(labels: np.ndarray) -> np.ndarray:
    """int32 piece ids (H, W), 0..P-1: one per 4-connected piece of equal labels."""
    pieces = np.zeros(labels.shape, np.int32)
    count = 0
    for region in np.unique(labels):
        n, comp = cv2.connectedComponents((labels == region).astype(np.uint8), connectivity=4, ltype=cv2.CV_32S)
        inside = comp > 0
        pieces[inside] = comp[inside] + count - 1
        count += n - 1
    return pieces


def shared_borders(pieces: np.ndarray) -> list[dict[int, int]]:
    """Per piece, {neighbouring piece: number of 4-adjacent pixel pairs between them}."""
    count = int(pieces.max()) + 1
    firsts = np.concatenate([pieces[:, :-1].ravel(), pieces[:-1].ravel()]).astype(np.int64)
    seconds = np.concatenate([pieces[:, 1:].ravel(), pieces[1:].ravel()]).astype(np.int64)
    differ = firsts != seconds
    firsts, seconds = firsts[differ], seconds[differ]
    pairs, counts = np.unique(np.concatenate([firsts * count + seconds, seconds * count + firsts]),
                              return_counts=True)
    borders: list[dict[int, int]] = [{} for _ in range(count)]
    for pair, n in zip(pairs.tolist(), counts.tolist()):
        borders[pair // count][pair % count] = n
    return borders


def merge_small_pieces(labels: np.ndarray, min_pixels: int) -> np.ndarray:
    """Give each 4-connected piece under `min_pixels`, smallest first, to the label it shares the most border with
    (4-adjacent pixel pairs; ties to the smaller label), until no piece is small or one piece covers the map.

    Finite by construction: a piece's 4-neighbours never carry its own label (they would belong to the piece), so
    each merge gives the piece to a *different* label and joins it with that label's pieces beside it, leaving at
    least one piece fewer. With P pieces at the start there are at most P - 1 merges, and the loop pops at most
    2P - 1 heap entries (P at the start, one per merge).
    """
    pieces = four_connected_pieces(labels)
    count = int(pieces.max()) + 1
    label_of = np.zeros(count, labels.dtype)
    label_of[pieces.ravel()] = labels.ravel()
    size = np.bincount(pieces.ravel(), minlength=count)
    borders = shared_borders(pieces)
    owner = np.arange(count)  # a merged piece lives on under one member's id; the others point to it
    heap = [(int(size[p]), p) for p in range(count) if size[p] < min_pixels]
    heapq.heapify(heap)
    while heap:
        area, piece = heapq.heappop(heap)
        if owner[piece] != piece or area != size[piece] or not borders[piece]:
            continue  # stale entry (merged or grown since), or the only piece left
        by_label: dict = {}
        for neighbour, shared in borders[piece].items():
            by_label[label_of[neighbour]] = by_label.get(label_of[neighbour], 0) + shared
        target = min(by_label, key=lambda label: (-by_label[label], label))
        group = {piece} | {n for n in borders[piece] if label_of[n] == target}
        keep = max(group, key=lambda p: len(borders[p]))  # the fewest border entries to move
        label_of[keep], size[keep] = target, sum(size[p] for p in group)
        for member in group - {keep}:
            for neighbour, shared in borders[member].items():
                del borders[neighbour][member]
                if neighbour not in group:
                    borders[keep][neighbour] = borders[keep].get(neighbour, 0) + shared
                    borders[neighbour][keep] = borders[neighbour].get(keep, 0) + shared
            borders[member] = {}
            owner[member] = keep
        if size[keep] < min_pixels:
            heapq.heappush(heap, (int(size[keep]), keep))
    while (owner[owner] != owner).any():  # follow chains of merges; each step at least halves what is left
        owner = owner[owner]
    return label_of[owner][pieces]


def quick_regions(image: np.ndarray, params: QuickRegionParams = QuickRegionParams()) -> np.ndarray:
    """uint8 RGB (H, W, 3) -> int64 labels (grid, grid), ids 1..K in reading order of first appearance."""
    small = cv2.resize(image, (params.grid, params.grid), interpolation=cv2.INTER_AREA)
    lab = cv2.cvtColor(small.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)
    luminance = lab[..., 0]
    window = (params.texture_window, params.texture_window)
    local_mean = cv2.blur(luminance, window)
    texture = np.sqrt(np.maximum(cv2.blur(luminance * luminance, window) - local_mean ** 2, 0))
    sp = slic(lab, params.superpixels, params.compactness, params.slic_iters)
    ids, _, features = superpixel_features(lab, texture, sp, params)
    clusters = choose_clusters(features, params)
    lookup = np.zeros(sp.max() + 1, int)
    lookup[ids] = clusters
    labels = merge_small_pieces(lookup[sp], int(params.min_piece * params.grid * params.grid))
    _, first = np.unique(labels.ravel(), return_index=True)
    order = labels.ravel()[np.sort(first)]
    renumber = np.zeros(labels.max() + 1, np.int64)
    renumber[order] = np.arange(1, len(order) + 1)
    return renumber[labels]
