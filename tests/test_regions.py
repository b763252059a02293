"""Stage 1, steps 6-10 on hand-made label maps: merge rules, depth split, re-merge, user mask, clean-up."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from PIL import Image

from engine.errors import InvalidRequest
from engine.params import Stage1Params
from engine.stage1.regions import (apply_user_mask, depth_grid, depth_split, merge_clusters, region_colours,
                            remove_small_pieces, user_mask_grid)

PARAMS = Stage1Params()


def latents_for(cluster_means: list[list[float]], per_cluster: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    """Flat labels 0..n-1 (per_cluster pixels each) and a 4-channel latent whose cluster means are given."""
    labels = torch.arange(len(cluster_means)).repeat_interleave(per_cluster)
    latent = torch.tensor(cluster_means, dtype=torch.float32)[labels]
    return labels, latent


def test_merge_is_not_transitive_closure():
    # SPEC step 6: only d(0,2) and d(1,2) are under 0.85, so 2 joins 1 (the highest close i) and 0 stays alone.
    labels, latent = latents_for([[0, 0, 0, 0], [1, 0, 0, 0], [0.5, 0, 0, 0]])
    merged, count = merge_clusters(labels, 3, latent, 0.85, "reference")
    assert count == 2
    assert merged.tolist() == [0] * 5 + [1] * 10
    closure, count = merge_clusters(labels, 3, latent, 0.85, "union_find")
    assert count == 1 and set(closure.tolist()) == {0}


def test_merge_follows_attachments_to_the_root_and_renumbers_roots():
    # 1 -> 0, 3 -> 1 (chain to root 0); 2 stays; roots 0 and 2 become 0 and 1.
    labels, latent = latents_for([[0, 0, 0, 0], [0.6, 0, 0, 0], [5, 5, 0, 0], [1.2, 0, 0, 0]])
    merged, count = merge_clusters(labels, 4, latent, 0.85, "reference")
    assert count == 2
    assert merged.tolist() == [0] * 10 + [1] * 5 + [0] * 5


def test_remerge_needs_both_conditions_strictly():
    labels, latent = latents_for([[0, 0, 0, 0], [0.34, 0, 0, 0]])
    depth = torch.tensor([0.0] * 5 + [0.29] * 5)
    merged, count = merge_clusters(labels, 2, latent, 0.35, "reference", depth, 0.3)
    assert count == 1
    # Exactly at either threshold: no merge (both comparisons are strict).
    _, count = merge_clusters(labels, 2, latent, 0.35, "reference", torch.tensor([0.0] * 5 + [0.3] * 5), 0.3)
    assert count == 2
    _, latent_at = latents_for([[0, 0, 0, 0], [0.35, 0, 0, 0]])
    _, count = merge_clusters(labels, 2, latent_at, 0.35, "reference", depth, 0.3)
    assert count == 2
    # Close latents but far in depth: no merge.
    _, count = merge_clusters(labels, 2, latent, 0.35, "reference", torch.tensor([0.0] * 5 + [0.9] * 5), 0.3)
    assert count == 2


def test_depth_split_splits_wide_clusters_only_and_numbers_new_halves():
    # cluster 0: 40 px, half near, half far -> split; cluster 1: 40 px, narrow -> kept;
    # cluster 2: 10 px (under 20), wide -> kept; cluster 3: 30 px, wide -> split (second new id).
    labels = torch.tensor([0] * 40 + [1] * 40 + [2] * 10 + [3] * 30)
    depth = torch.cat([torch.tensor([0.05] * 20 + [0.95] * 20), torch.full((40,), 0.5),
                       torch.linspace(0, 1, 10), torch.tensor([1.0] * 15 + [0.0] * 15)])
    split, count = depth_split(labels, 4, depth, PARAMS)
    assert count == 6
    assert sorted(set(split[:40].tolist())) == [0, 4]
    assert (split[:40] == 4).sum() == 20 and len(set(split[:20].tolist())) == 1
    assert split[40:90].tolist() == labels[40:90].tolist()
    assert sorted(set(split[90:].tolist())) == [3, 5]
    assert len(set(split[90:105].tolist())) == 1 and len(set(split[105:].tolist())) == 1


def test_depth_split_threshold_is_inclusive_on_the_5_95_span():
    labels = torch.zeros(100, dtype=torch.long)
    depth = torch.tensor([0.0] * 50 + [0.75] * 50)
    _, count = depth_split(labels, 1, depth, PARAMS)
    assert count == 2
    narrow = dataclasses.replace(PARAMS, depth_split_threshold=0.76)
    assert depth_split(labels, 1, depth, narrow)[1] == 1


def test_depth_grid_samples_floor_index_and_normalises():
    depth = torch.arange(512 * 512, dtype=torch.float32).reshape(512, 512)
    grid = depth_grid(depth, (64, 64), 1e-6)
    raw = depth[::8, ::8]
    expected = (raw - raw.min()) / (raw.max() - raw.min() + 1e-6)
    assert torch.allclose(grid, expected)
    assert grid.min() == 0 and grid.max() <= 1


def test_user_mask_colours_numbered_by_first_appearance_black_keeps():
    mask = np.zeros((512, 512, 3), dtype=np.uint8)
    mask[0:64, 256:512] = (255, 0, 0)  # first in raster order
    mask[8:16, 0:8] = (0, 0, 255)  # appears later (row 8)
    mask[1:8, 1:8] = (0, 255, 0)  # never sampled at (8i, 8j): vanishes
    ids = user_mask_grid(Image.fromarray(mask), ((512, 512),), (64, 64))
    assert ids.shape == (64, 64)
    assert set(np.unique(ids)) == {0, 1, 3}
    assert (ids[0:8, 32:] == 1).all() and ids[1, 0] == 3 and ids[0, 0] == 0


def test_user_mask_must_be_exactly_the_analysis_size():
    with pytest.raises(InvalidRequest):
        user_mask_grid(Image.new("RGB", (256, 256)), ((512, 512),), (64, 64))


def test_user_mask_overwrites_and_renumbers():
    labels = np.array([[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 2, 2], [2, 2, 2, 2]])
    mask = np.array([[0, 0, 0, 0], [0, 0, 0, 0], [2, 2, 0, 0], [0, 0, 0, 5]])
    out = apply_user_mask(labels, mask)
    # old ids 0, 1, 2 keep their order (1, 2, 3); mask region 2 -> 4, mask region 5 -> 5; all renumbered 1..
    assert out.tolist() == [[1, 1, 2, 2], [1, 1, 2, 2], [4, 4, 3, 3], [3, 3, 3, 5]]
    covered = apply_user_mask(np.array([[0, 1], [1, 1]]), np.array([[7, 0], [0, 0]]))
    assert covered.tolist() == [[2, 1], [1, 1]]  # an automatic id wholly covered disappears, ids stay 1..K


def test_cleanup_absorbs_small_pieces_by_most_frequent_neighbour():
    labels = np.ones((10, 10), dtype=np.int64)
    labels[:, 6:] = 2
    labels[4:6, 5:7] = 3  # 4 px straddling 1 and 2: ring holds 3 px of label 1 and 3 px of label 2 -> tie -> 1
    labels[0, 0] = 4  # 1 px in label 1's corner -> 1
    labels[9, 9] = 5  # 1 px in label 2's corner -> 2
    out = remove_small_pieces(labels, 20)
    assert out[4:6, 5:7].tolist() == [[1, 1], [1, 1]]
    assert out[0, 0] == 1 and out[9, 9] == 2
    assert set(np.unique(out)) == {1, 2}


def test_cleanup_ties_go_to_the_smallest_id():
    labels = np.full((8, 8), 1)
    labels[:, 4:] = 2
    labels[0:2, 3] = 3  # ring: 1 px of 1 (below), 2 px of 2 (right), 2 px of 4 (left) -> tie 2 / 4 -> 2
    labels[0:2, 2] = 4  # ring: 3 px of 1, 2 px of 3 -> 1
    out = remove_small_pieces(labels, 20)
    assert out[0:2, 3].tolist() == [2, 2]
    assert out[0:2, 2].tolist() == [1, 1]


def test_cleanup_reads_neighbours_as_they_were_before_the_pass():
    labels = np.full((6, 6), 1)
    labels[0, 0] = 4  # its only neighbours are piece 3's cells
    labels[0, 1] = labels[1, 1] = labels[1, 0] = 3  # piece 3 is absorbed by 1
    out = remove_small_pieces(labels, 20)
    assert out[0, 1] == out[1, 1] == out[1, 0] == 1
    assert out[0, 0] == 3  # voted from the map before clean-up, where its neighbours were 3


def test_cleanup_keeps_isolated_small_pieces_and_large_pieces():
    single = np.full((4, 4), 7)  # 16 px, under 20, but nothing around it
    assert remove_small_pieces(single, 20).tolist() == single.tolist()
    labels = np.ones((10, 10), dtype=np.int64)
    labels[0:5, 0:5] = 2  # 25 px: stays
    assert remove_small_pieces(labels, 20).tolist() == labels.tolist()


def test_region_colours_are_stable_and_distinct():
    colours = region_colours(list(range(1, 21)))
    assert len(set(colours.values())) == 20
    assert region_colours([3])[3] == colours[3]
