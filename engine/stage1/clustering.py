"""Stage 1, steps 4-5: standardised features, a 60-d PCA projection, k-means for k = 2..10, silhouette choice.

The default reproduces the reference's arithmetic so that its label maps are reproduced exactly:
`torch.pca_lowrank` drawn from the global generator right after `torch.manual_seed(seed)`, Lloyd's
algorithm with the expanded squared distance |x|^2 - 2 x.c + |c|^2, restarts drawn from one
`torch.Generator` per k, and empty clusters refilled from the global generator. Cluster means come from
one float64 scatter-add per iteration; they differ from per-cluster masked means only in rounding, and the labels
are the same (tests/test_clustering.py compares both on random data, tests/test_parity_stage1.py on the
goldens). `seeded_global_rng`
scopes those global draws so the caller's random state is left as it was.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator

import torch
import torch.nn.functional as F

from ..errors import Cancelled
from ..params import Stage1Params
from ..types import CancelFlag


@contextmanager
def seeded_global_rng(seed: int, device: torch.device) -> Iterator[None]:
    """`torch.manual_seed(seed)` for the block only: the reference seeds the global generator before
    clustering; forking keeps that from leaking into the rest of the program."""
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def standardize(features: torch.Tensor) -> torch.Tensor:
    """(N, C) -> per-channel (x - mean) / unbiased std, no epsilon. A constant channel (0 / 0, NaN in
    the reference) becomes 0 so that a flat image cannot poison every distance."""
    return torch.nan_to_num((features - features.mean(dim=0)) / features.std(dim=0), nan=0.0)


def project_pca(x: torch.Tensor, components: int, method: str = "lowrank") -> torch.Tensor:
    """Scores of `x` (N, C) on its top principal directions, not whitened and not centred again.

    "lowrank" is the reference's randomised `torch.pca_lowrank(x, q, center=False)`: it draws from the
    global generator, so call it inside `seeded_global_rng`. "exact" uses a full SVD (a different 60-d
    space; labels then agree only partly, see SPEC step 4).
    """
    q = min(x.shape[1], components)
    if method == "lowrank":
        _, _, v = torch.pca_lowrank(x, q=q, center=False)
    elif method == "exact":
        v = torch.linalg.svd(x, full_matrices=False).Vh.mT
    else:
        raise ValueError(f"unknown PCA method {method!r}")
    return x @ v[:, :q]


@dataclass
class KMeansResult:
    labels: torch.Tensor  # (N,) int64, ids = centroid index in the winning restart
    centroids: torch.Tensor  # (k, D)
    inertia: float


def kmeans(data: torch.Tensor, k: int, restarts: int, max_iters: int, tol: float,
           generator: torch.Generator) -> KMeansResult:
    """Lloyd's algorithm, best of `restarts`, each started from `randperm(N, generator)[:k]` pixels.

    Stops when the largest centroid move <= tol; labels and inertia are those of the last assignment.
    Each iteration is a fixed handful of whole-array operations (one assignment, one scatter of sums and
    counts), never a Python loop over clusters: thousands of tiny tensor calls per image stall whenever
    another process holds a core.
    """
    n = data.shape[0]
    best: KMeansResult | None = None
    x2 = (data ** 2).sum(1, keepdim=True)
    for _ in range(restarts):
        centroids = data[torch.randperm(n, generator=generator, device=data.device)[:k]]
        for _ in range(max_iters):
            dist = x2 - 2 * (data @ centroids.T) + (centroids ** 2).sum(1)
            labels = dist.argmin(1)
            new_centroids = cluster_means(data, labels, k)
            shift = (centroids - new_centroids).norm(dim=1).max()
            centroids = new_centroids
            if shift <= tol:
                break
        inertia = float(dist.gather(1, labels.view(-1, 1)).sum())
        if best is None or inertia < best.inertia:
            best = KMeansResult(labels.clone(), centroids.clone(), inertia)
    return best


def cluster_means(data: torch.Tensor, labels: torch.Tensor, k: int) -> torch.Tensor:
    """(k, D) mean of each cluster's rows by one scatter-add. An empty cluster is re-seeded at a row drawn
    from the global generator, in increasing cluster order, one draw each (the reference's choice and
    draw order, so seeded runs keep their labels)."""
    counts = torch.bincount(labels, minlength=k)
    # float64 sums: a float32 scatter adds row after row (error growing with the cluster's size), while the
    # reference's per-cluster mean sums in cascades; rounded from float64 the means land on the reference's
    # labels (a sequential float32 sum moved labels on overlapping clusters in tests/test_clustering.py).
    sums = torch.zeros(k, data.shape[1], dtype=torch.float64, device=data.device).index_add_(0, labels, data.double())
    means = (sums / counts.clamp_min(1).unsqueeze(1)).to(data.dtype)
    for cluster in (counts == 0).nonzero().flatten().tolist():
        means[cluster] = data[torch.randint(0, data.shape[0], (1,), device=data.device)].squeeze(0)
    return means


def silhouette(data: torch.Tensor, labels: torch.Tensor, sample_size: int | None = None) -> float:
    """Mean silhouette (Euclidean); a point alone in its cluster scores 0.

    Above `sample_size` points a random subset (global generator) is scored, as the reference does;
    the 64x64 grid (4096 points) is always scored whole.
    """
    labels = labels.view(-1)
    n = data.shape[0]
    if sample_size is not None and n > sample_size:
        keep = torch.randperm(n, device=data.device)[:sample_size]
        data, labels, n = data[keep], labels[keep], sample_size
    k = int(labels.max()) + 1
    one_hot = F.one_hot(labels, num_classes=k).float()
    sizes = one_hot.sum(0).clamp_min(1.0)
    sums = torch.cdist(data, data) @ one_hot
    a = sums[torch.arange(n, device=data.device), labels] / (sizes[labels] - 1).clamp_min(1.0)
    b = (sums / sizes).masked_fill(one_hot.bool(), float("inf")).min(dim=1).values
    s = (b - a) / torch.clamp(torch.maximum(a, b), min=1e-12)
    s = torch.where(sizes[labels] <= 1, torch.zeros_like(s), s)
    return float(s.mean())


@dataclass
class Clustering:
    """Result of steps 4-5. labels_per_k[k] are 0-based; `labels` is the chosen k's map."""

    x_pca: torch.Tensor
    labels_per_k: dict[int, torch.Tensor]
    silhouettes: dict[int, float]
    chosen_k: int

    @property
    def labels(self) -> torch.Tensor:
        return self.labels_per_k[self.chosen_k]


def cluster_features(features: torch.Tensor, params: Stage1Params, cancel: CancelFlag | None = None,
                     on_k: Callable[[int], None] | None = None) -> Clustering:
    """Steps 4-5 on (N, C) features: standardise, project, k-means for every k, keep the best silhouette.

    Must run inside `seeded_global_rng(params.seed, ...)` for the reference's draws. Ties in the
    silhouette go to the smaller k. `cancel` is checked before each k; `on_k(k)` after it.
    """
    x_pca = project_pca(standardize(features.float()), params.pca_components, params.pca_method)
    labels_per_k: dict[int, torch.Tensor] = {}
    scores: dict[int, float] = {}
    for k in range(params.k_min, params.k_max + 1):
        if cancel is not None and cancel.is_set():
            raise Cancelled("Analysis cancelled")
        generator = torch.Generator(device=x_pca.device)
        generator.manual_seed(params.seed)
        result = kmeans(x_pca, k, params.kmeans_restarts, params.kmeans_max_iters, params.kmeans_tol, generator)
        labels_per_k[k] = result.labels
        scores[k] = silhouette(x_pca, result.labels, params.silhouette_sample_size)
        if on_k is not None:
            on_k(k)
    return Clustering(x_pca=x_pca, labels_per_k=labels_per_k, silhouettes=scores, chosen_k=choose_k(scores))


def choose_k(scores: dict[int, float]) -> int:
    """The k with the best silhouette; ties go to the smaller k (the reference's first argmax)."""
    return max(sorted(scores), key=lambda k: (scores[k], -k))
