"""Quick matching spreads the checked references where the scores allow, and says why a reference went unused."""
from __future__ import annotations

import numpy as np
import pytest

from engine.draft.quick_match import quick_matches, spread_assignment, unused_reasons
from engine.params import QuickMatchParams


def test_a_small_loss_buys_a_second_reference():
    scores = np.array([[0.80, 0.78], [0.90, 0.70]])  # both prefer 0; region 0 loses only 0.02 on reference 1
    assert spread_assignment(scores, 0.05).tolist() == [1, 0]


def test_a_large_loss_keeps_each_region_on_its_best():
    scores = np.array([[0.90, 0.50], [0.90, 0.60]])
    chosen = spread_assignment(scores, 0.05)
    assert chosen.tolist() == [0, 0]
    why = unused_reasons(scores, chosen, [4, 7], 0.05)
    assert set(why) == {1} and "region 7" in why[1] and "0.600" in why[1] and "0.05" in why[1]


def test_the_spread_that_loses_least_is_kept_and_extra_regions_keep_their_best():
    scores = np.array([[0.90, 0.88, 0.10],
                       [0.90, 0.86, 0.87],
                       [0.95, 0.20, 0.20],
                       [0.50, 0.40, 0.45]])
    chosen = spread_assignment(scores, 0.05)
    assert sorted(set(chosen.tolist())) == [0, 1, 2]  # all three used: region 0 -> 1, region 1 -> 2
    assert chosen.tolist() == [1, 2, 0, 0]  # region 3 could take 2 (loss 0.05) but needs not: it keeps its best
    assert unused_reasons(scores, chosen, [1, 2, 3, 4], 0.05) == {}


def test_fewer_regions_than_references_says_so():
    scores = np.array([[0.7, 0.69, 0.5]])
    chosen = spread_assignment(scores, 0.05)
    why = unused_reasons(scores, chosen, [1], 0.05)
    assert chosen.tolist() == [0] and set(why) == {1, 2}
    assert "1 region for 3 references" in why[1] and "more than 0.05 lower" in why[2]


@pytest.mark.parametrize("max_loss,expected", [(0.0, [0, 0]), (0.1, [0, 1])])
def test_the_threshold_is_the_named_parameter(max_loss, expected):
    """Two regions of one photo, both a little closer to reference 0 (same colours, style vectors nearly equal)."""
    image = np.zeros((8, 8, 3), np.uint8)
    image[:, 4:] = 40
    labels = np.ones((8, 8), np.int64)
    labels[:, 4:] = 2
    references = [np.zeros((4, 4, 3), np.uint8), np.full((4, 4, 3), 40, np.uint8)]
    vectors = [np.array([1.0, 0.0]), np.array([0.9, 0.1])]
    matching = quick_matches(image, labels, references, vectors, lambda crop: np.array([1.0, 0.0]),
                             QuickMatchParams(spread_max_loss=max_loss))
    assert [matching.matches[r].style_index for r in (1, 2)] == expected
    assert set(matching.unused) == ({1} if expected == [0, 0] else set())
