"""Stage 1, steps 4-5: standardisation, PCA projection, k-means, silhouette and the choice of k."""
from __future__ import annotations

import dataclasses
import threading
from collections import Counter

import numpy as np
import pytest
import torch

from engine.stage1.clustering import (choose_k, cluster_features, kmeans, project_pca, seeded_global_rng, silhouette,
                               standardize)
from torch.utils._python_dispatch import TorchDispatchMode

from engine.errors import Cancelled
from engine.params import Stage1Params

FAST = dataclasses.replace(Stage1Params(), pca_components=6, k_max=6, kmeans_restarts=3)


def blobs(n_per: int = 40, centres: int = 3, dim: int = 8, seed: int = 0) -> tuple[torch.Tensor, np.ndarray]:
    rng = np.random.default_rng(seed)
    means = rng.normal(0, 10, size=(centres, dim))
    truth = np.repeat(np.arange(centres), n_per)
    x = means[truth] + rng.normal(0, 0.3, size=(truth.size, dim))
    return torch.tensor(x, dtype=torch.float32), truth


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    pairs = set(zip(a.tolist(), b.tolist()))
    return len(pairs) == len(set(a.tolist())) == len(set(b.tolist()))


def test_standardize_uses_unbiased_std_and_zeroes_constant_channels():
    x = torch.tensor([[1.0, 5.0], [3.0, 5.0], [5.0, 5.0]])
    out = standardize(x)
    assert out[:, 0].tolist() == pytest.approx([-1.0, 0.0, 1.0])  # std (unbiased) of 1, 3, 5 is 2
    assert out[:, 1].tolist() == [0.0, 0.0, 0.0]


def test_pca_projection_shapes_and_seeded_determinism():
    x = standardize(blobs(dim=10)[0])
    with seeded_global_rng(42, x.device):
        a = project_pca(x, 4, "lowrank")
    with seeded_global_rng(42, x.device):
        b = project_pca(x, 4, "lowrank")
    assert a.shape == (120, 4) and torch.equal(a, b)
    exact = project_pca(x, 20, "exact")
    assert exact.shape == (120, 10)  # never more components than channels
    # Scores on all directions keep every pairwise distance.
    exact_mode = "donot_use_mm_for_euclid_dist"
    assert torch.allclose(torch.cdist(exact, exact, compute_mode=exact_mode),
                          torch.cdist(x, x, compute_mode=exact_mode), atol=1e-4)


def test_seeded_block_leaves_the_global_generator_alone():
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    with seeded_global_rng(42, torch.device("cpu")):
        torch.rand(100)
    assert torch.equal(torch.rand(3), expected)


def test_kmeans_recovers_separated_blobs_deterministically():
    x, truth = blobs()
    runs = [kmeans(x, 3, 5, 64, 1e-4, torch.Generator().manual_seed(42)) for _ in range(2)]
    assert same_partition(runs[0].labels.numpy(), truth)
    assert torch.equal(runs[0].labels, runs[1].labels)
    assert set(runs[0].labels.tolist()) == {0, 1, 2}


def literal_kmeans(data: torch.Tensor, k: int, restarts: int, max_iters: int, tol: float,
                   generator: torch.Generator) -> torch.Tensor:
    """The reference's k-means word for word (one masked mean per cluster per iteration): the labels the
    vectorised `kmeans` must reproduce."""
    n = data.shape[0]
    best_labels, best_inertia = None, None
    x2 = (data ** 2).sum(1, keepdim=True)
    for _ in range(restarts):
        centroids = data[torch.randperm(n, generator=generator)[:k]]
        for _ in range(max_iters):
            dist = x2 - 2 * (data @ centroids.T) + (centroids ** 2).sum(1)
            labels = dist.argmin(1)
            new_centroids = torch.stack([data[labels == i].mean(0) if (labels == i).any()
                                         else data[torch.randint(0, n, (1,))].squeeze(0) for i in range(k)])
            shift = (centroids - new_centroids).norm(dim=1).max()
            centroids = new_centroids
            if shift <= tol:
                break
        inertia = float(dist.gather(1, labels.view(-1, 1)).sum())
        if best_inertia is None or inertia < best_inertia:
            best_labels, best_inertia = labels.clone(), inertia
    return best_labels


def mixture(n: int, dim: int, centres: int, seed: int) -> torch.Tensor:
    """Overlapping Gaussian clusters (spread 1, centres ~2.5 apart): many points near a boundary."""
    generator = torch.Generator().manual_seed(seed)
    means = torch.randn(centres, dim, generator=generator) * 2.5 / dim ** 0.5 * 2
    return means[torch.randint(0, centres, (n,), generator=generator)] + torch.randn(n, dim, generator=generator)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_vectorised_kmeans_gives_the_literal_loops_labels(seed):
    data = mixture(1500, 20, 5, seed)
    for k in range(2, 11):
        with seeded_global_rng(42, data.device):
            literal = literal_kmeans(data, k, 3, 64, 1e-4, torch.Generator().manual_seed(42))
        with seeded_global_rng(42, data.device):
            vectorised = kmeans(data, k, 3, 64, 1e-4, torch.Generator().manual_seed(42)).labels
        assert torch.equal(vectorised, literal), k


def test_empty_clusters_are_reseeded_in_the_literal_loops_draw_order():
    # 8 distinct points, 6 of them duplicates of two values: with k = 6 some starting centroids coincide and
    # their clusters empty out, so the global generator is drawn from in the middle of the iterations.
    data = torch.tensor([[0.0, 0.0]] * 6 + [[5.0, 5.0]] * 6 + [[9.0, 0.0], [0.0, 9.0]])
    for seed in range(5):
        with seeded_global_rng(seed, data.device):
            literal = literal_kmeans(data, 6, 4, 20, 1e-4, torch.Generator().manual_seed(seed))
            after_literal = torch.rand(1)
        with seeded_global_rng(seed, data.device):
            vectorised = kmeans(data, 6, 4, 20, 1e-4, torch.Generator().manual_seed(seed)).labels
            after_vectorised = torch.rand(1)
        assert torch.equal(vectorised, literal) and torch.equal(after_vectorised, after_literal)


class OperationCounter(TorchDispatchMode):
    """Counts the tensor operations run under it."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: Counter[str] = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.calls[str(func)] += 1
        return func(*args, **(kwargs or {}))


def test_kmeans_work_per_iteration_does_not_grow_with_k():
    data = mixture(600, 8, 10, 3)
    totals = {}
    for k in (2, 9):
        with OperationCounter() as counter:
            kmeans(data, k, 1, 10, -1.0, torch.Generator().manual_seed(0))  # tol < 0: all 10 iterations run
        totals[k] = sum(counter.calls.values())
    assert totals[9] == totals[2], totals


def test_silhouette_matches_scikit_learn():
    from sklearn.metrics import silhouette_score

    x, _ = blobs(n_per=15, centres=4)
    labels = torch.tensor(np.random.default_rng(3).integers(0, 4, size=x.shape[0]))
    labels[0] = 4  # a singleton scores 0 in both
    assert silhouette(x, labels) == pytest.approx(silhouette_score(x.numpy(), labels.numpy()), abs=1e-5)


def test_choose_k_prefers_the_best_score_and_the_smaller_k_on_ties():
    assert choose_k({2: 0.4, 3: 0.6, 4: 0.5}) == 3
    assert choose_k({2: 0.5, 3: 0.5, 4: 0.1}) == 2


def test_cluster_features_picks_the_true_k_and_reports_each_k():
    x, truth = blobs(centres=4, dim=12)
    seen = []
    with seeded_global_rng(FAST.seed, x.device):
        result = cluster_features(x, FAST, on_k=seen.append)
    assert seen == list(range(FAST.k_min, FAST.k_max + 1))
    assert result.chosen_k == 4
    assert same_partition(result.labels.numpy(), truth)
    assert set(result.silhouettes) == set(seen)
    assert result.x_pca.shape == (x.shape[0], FAST.pca_components)


def test_cluster_features_checks_cancel_inside_the_k_sweep():
    x, _ = blobs()
    flag = threading.Event()

    def on_k(k: int) -> None:
        if k == 3:
            flag.set()

    with seeded_global_rng(FAST.seed, x.device), pytest.raises(Cancelled):
        cluster_features(x, FAST, cancel=flag, on_k=on_k)
