"""Hand edits of the region map (engine/stage1/edits.py) on known maps, the label PNG round trip, and the engine
using the edited map in matching and stage 3."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from PIL import Image

from engine.errors import InvalidRequest
from engine.params import EDIT_COLOUR_REGION_BASE, Stage1Params, Stage3Params
from engine.stage1 import edits
from engine.stage1.edits import RegionEdit
from engine.types import DraftRequest, ImageRef, TransferRequest

SQUARE = Stage1Params(size_policy="square", image_size=64)  # an 8 x 8 grid for any photo


def quarters() -> np.ndarray:
    """8 x 8: regions 1 (top left), 2 (top right), 3 (bottom left), 4 (bottom right)."""
    labels = np.ones((8, 8), dtype=np.int64)
    labels[:4, 4:] = 2
    labels[4:, :4] = 3
    labels[4:, 4:] = 4
    return labels


def test_no_edit_leaves_the_map_alone():
    automatic = quarters()
    assert np.array_equal(edits.edited_labels(automatic, edits.empty_override(automatic)), automatic)
    analysis = object()
    assert edits.apply_edit(analysis, None) is analysis
    assert edits.apply_edit(analysis, RegionEdit(edits.empty_override(automatic))) is analysis


def test_merge_keeps_the_smallest_id():
    automatic = quarters()
    override = edits.merge(automatic, edits.empty_override(automatic), [4, 2])
    expected = quarters()
    expected[:4, 4:] = 2
    expected[4:, 4:] = 2
    assert np.array_equal(edits.edited_labels(automatic, override), expected)
    assert edits.removed_regions(automatic, expected) == {4}
    with pytest.raises(InvalidRequest, match="two or more"):
        edits.merge(automatic, override, [2, 4])  # 4 is gone: one region left to merge


def test_split_by_stroke_gives_the_stroked_part_a_new_id():
    automatic = quarters()
    stroke = np.zeros((8, 8), dtype=bool)
    stroke[:, 0] = True  # column 0 crosses regions 1 and 3; only region 1's part moves
    edited = edits.edited_labels(automatic, edits.split_by_mask(automatic, edits.empty_override(automatic), 1,
                                                                stroke))
    expected = quarters()
    expected[:4, 0] = 5
    assert np.array_equal(edited, expected)
    with pytest.raises(InvalidRequest, match="part of region 2"):
        edits.split_by_mask(automatic, edits.empty_override(automatic), 2, stroke)


def test_automatic_split_follows_the_features():
    automatic = quarters()
    fmix = np.zeros((3, 8, 8), dtype=np.float32)
    fmix[0, 2:4, :4] = 5.0  # region 1's lower half differs in channel 0
    fmix[1] = np.arange(64, dtype=np.float32).reshape(8, 8) * 1e-3
    override = edits.split_automatic(automatic, edits.empty_override(automatic), 1, fmix, SQUARE)
    expected = quarters()
    expected[2:4, :4] = 5
    assert np.array_equal(edits.edited_labels(automatic, override), expected)
    with pytest.raises(InvalidRequest, match="uniform"):
        edits.split_automatic(automatic, override, 4, np.zeros((3, 8, 8), np.float32), SQUARE)


def test_brush_paints_into_a_region_or_a_new_one_and_the_eraser_restores():
    automatic = quarters()
    cells = edits.brush_cells((8, 8), (1.0, 1.0), 2)
    assert cells.sum() == 4 and cells[:2, :2].all()
    into_two = edits.paint(automatic, edits.empty_override(automatic), cells, 2)
    expected = quarters()
    expected[:2, :2] = 2
    assert np.array_equal(edits.edited_labels(automatic, into_two), expected)
    fresh = edits.paint(automatic, into_two, edits.brush_cells((8, 8), (7.5, 7.5), 1), None)
    expected[7, 7] = 5
    assert np.array_equal(edits.edited_labels(automatic, fresh), expected)
    erased = edits.erase(fresh, np.ones((8, 8), dtype=bool))
    assert np.array_equal(edits.edited_labels(automatic, erased), automatic) and not erased.any()


def test_painting_a_cell_its_own_automatic_label_needs_no_override():
    automatic = quarters()
    override = edits.paint(automatic, edits.empty_override(automatic), np.ones((8, 8), dtype=bool), 1)
    assert set(np.unique(override)) == {0, 1} and not override[:4, :4].any()


def test_label_png_round_trip_is_exact(tmp_path):
    automatic = quarters()
    override = edits.merge(automatic, edits.empty_override(automatic), [3, 4])
    override = edits.paint(automatic, override, edits.brush_cells((8, 8), (1.0, 6.0), 2), None)
    edited = edits.edited_labels(automatic, override)
    path = tmp_path / "regions.png"
    edits.label_png(edited).save(path)
    with Image.open(path) as png:
        assert png.size == (64, 64) and png.mode == "L"
        back = edits.read_label_png(png, (200, 120), SQUARE)
    assert np.array_equal(edits.edited_labels(automatic, back.override), edited)


def test_grey_zero_keeps_the_automatic_map_and_colours_make_new_regions():
    automatic = quarters()
    grey = np.zeros((120, 200), dtype=np.uint8)  # photo-sized
    grey[:, :25] = 3  # the first cell column joins region 3
    edit = edits.read_label_png(Image.fromarray(grey), (200, 120), SQUARE)
    expected = quarters()
    expected[:, 0] = 3
    assert np.array_equal(edits.edited_labels(automatic, edit.override), expected)
    colour = np.zeros((64, 64, 3), dtype=np.uint8)
    colour[:8, :8] = (255, 0, 0)
    edit = edits.read_label_png(Image.fromarray(colour), (200, 120), SQUARE)
    assert edit.override[0, 0] == EDIT_COLOUR_REGION_BASE + 1 and edit.override.sum() == EDIT_COLOUR_REGION_BASE + 1


def test_wrong_size_and_too_many_labels_are_refused():
    with pytest.raises(InvalidRequest, match="must be exactly 64x64 or 200x120"):
        edits.read_label_png(Image.new("L", (65, 64)), (200, 120), SQUARE)
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
    with pytest.raises(InvalidRequest, match="colours"):
        edits.read_label_png(Image.fromarray(noise), (200, 120), SQUARE)
    many = np.arange(64, dtype=np.int64).reshape(8, 8) + 200
    with pytest.raises(InvalidRequest, match="at most 255"):
        edits.paint(many, np.zeros_like(many), np.ones((8, 8), dtype=bool), None)
    with pytest.raises(InvalidRequest, match="8x9 cells"):
        edits.edited_labels(np.ones((8, 8), np.int64), np.zeros((8, 9), np.int64))


def test_edit_is_a_value_in_keys():
    a, b = np.zeros((8, 8), np.int64), np.zeros((8, 8), np.int64)
    assert RegionEdit(a) == RegionEdit(b) and hash(RegionEdit(a)) == hash(RegionEdit(b))
    b[0, 0] = 2
    assert RegionEdit(a) != RegionEdit(b)


def test_match_and_transfer_use_the_edited_map(tiny_engine, sample_images, monkeypatch):
    content = tiny_engine.analyze(ImageRef(sample_images["content"]))
    automatic = content.labels
    first, *others = content.region_ids
    override = edits.paint(automatic, edits.empty_override(automatic), np.ones(automatic.shape, dtype=bool), first)
    edit = RegionEdit(override)
    references = [ImageRef(sample_images["ref0"])]
    table = tiny_engine.match(ImageRef(sample_images["content"], region_edit=edit), references)
    assert sorted(table.matches) == [first]
    import engine.stage3.stylize as stylize_module

    seen = {}
    real = stylize_module.stylize

    def spy(sd, embeds, content_inputs, *args, **kwargs):
        seen["labels"] = np.array(content_inputs.labels)
        return real(sd, embeds, content_inputs, *args, **kwargs)

    monkeypatch.setattr(stylize_module, "stylize", spy)
    request = TransferRequest(ImageRef(sample_images["content"], region_edit=edit), references,
                              stage3=dataclasses.replace(Stage3Params(), steps=1))
    result = tiny_engine.transfer(request)
    assert np.array_equal(seen["labels"], edits.edited_labels(automatic, override))
    assert sorted(result.matches.matches) == [first]
    assert others, "the tiny analysis should find more than one region"


def c_shape() -> list[tuple[float, float]]:
    """A concave 'C' (row, col corners on the 8 x 8 grid): arms rows 1-2 and 5-6, back cols 1-2, notch open right."""
    return [(1, 1), (1, 7), (3, 7), (3, 3), (5, 3), (5, 7), (7, 7), (7, 1)]


def test_the_lasso_fills_the_inside_of_a_polygon_concave_too():
    square = edits.polygon_cells((8, 8), [(1, 1), (1, 5), (5, 5), (5, 1)])
    expected = np.zeros((8, 8), dtype=bool)
    expected[1:5, 1:5] = True
    assert np.array_equal(square, expected)
    inside = edits.polygon_cells((8, 8), c_shape())
    expected = np.zeros((8, 8), dtype=bool)
    expected[1:3, 1:7] = True  # top arm
    expected[3:5, 1:3] = True  # the back of the C
    expected[5:7, 1:7] = True  # bottom arm; the notch (rows 3-4, cols 3-6) stays out
    assert np.array_equal(inside, expected)
    assert np.array_equal(edits.polygon_cells((8, 8), c_shape()[::-1]), expected)  # either way round
    triangle = edits.polygon_cells((8, 8), [(0, 0), (0, 8), (8, 0)])
    assert np.array_equal(triangle, np.add.outer(np.arange(8), np.arange(8)) + 1 < 8)  # centres below the diagonal
    with pytest.raises(InvalidRequest, match="three points"):
        edits.polygon_cells((8, 8), [(0, 0), (4, 4)])


def test_the_lasso_splits_the_region_it_takes_part_of():
    automatic, empty = quarters(), edits.empty_override(quarters())
    inside = edits.polygon_cells((8, 8), [(0, 1), (0, 6), (4, 6), (4, 1)])  # 12 cells of region 1, 8 of region 2
    expected = quarters()
    expected[:4, 1:4] = 5
    assert np.array_equal(edits.edited_labels(automatic, edits.split_by_lasso(automatic, empty, inside)), expected)
    expected = quarters()
    expected[:4, 4:6] = 5  # the selected region, when the lasso takes part of it
    assert np.array_equal(edits.edited_labels(automatic, edits.split_by_lasso(automatic, empty, inside, 2)), expected)
    whole_and_part = edits.polygon_cells((8, 8), [(0, 0), (0, 4), (5, 4), (5, 0)])  # all of 1, a row of 3
    assert edits.lasso_region(automatic, whole_and_part) == 3
    with pytest.raises(InvalidRequest, match="not none or all"):
        edits.split_by_lasso(automatic, empty, edits.polygon_cells((8, 8), [(0, 0), (0, 4), (4, 4), (4, 0)]))
    with pytest.raises(InvalidRequest, match="draw it larger"):
        edits.lasso_region(automatic, np.zeros((8, 8), dtype=bool))


def test_match_transfer_and_draft_use_the_edited_reference_map(tiny_engine, sample_images, monkeypatch):
    content = ImageRef(sample_images["content"])
    reference = tiny_engine.analyze(ImageRef(sample_images["ref0"]))
    corner = np.zeros(reference.labels.shape, dtype=bool)
    corner[: corner.shape[0] // 2, : corner.shape[1] // 2] = True
    override = edits.paint(reference.labels, edits.empty_override(reference.labels), corner, None)  # a new region
    labels = edits.edited_labels(reference.labels, override)
    new = int(labels.max())
    assert new not in reference.region_ids
    edited = ImageRef(sample_images["ref0"], region_edit=RegionEdit(override))
    table = tiny_engine.match(content, [edited])
    assert {pair.style_region for pair in table.pairs} == {int(r) for r in np.unique(labels)}
    import engine.stage3.stylize as stylize_module

    seen = {}
    real = stylize_module.stylize

    def spy(sd, embeds, content_inputs, reference_inputs, *args, **kwargs):
        seen["labels"] = np.array(reference_inputs[0].labels)
        return real(sd, embeds, content_inputs, reference_inputs, *args, **kwargs)

    monkeypatch.setattr(stylize_module, "stylize", spy)
    tiny_engine.transfer(TransferRequest(content, [edited], stage3=dataclasses.replace(Stage3Params(), steps=1)))
    assert np.array_equal(seen["labels"], labels)
    drafter = tiny_engine.drafter
    given = []
    monkeypatch.setattr(drafter, "draft", lambda *args, **kwargs: given.append(kwargs["reference_labels"][0]))
    for ref in (ImageRef(sample_images["ref0"]), edited):  # the draft's match key holds the reference's edit
        tiny_engine.draft(DraftRequest(content, [ref], regions="method"))
    assert np.array_equal(given[0], reference.labels) and np.array_equal(given[1], labels)
