"""Stage 1, steps 4-5: standardisation, PCA projection, k-means, silhouette and the choice of k."""
from __future__ import annotations

import dataclasses
import threading

import numpy as np
import pytest
import torch

from engine.stage1.clustering import (choose_k, cluster_features, kmeans, project_pca, seeded_global_rng, silhouette,
                               standardize)
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
