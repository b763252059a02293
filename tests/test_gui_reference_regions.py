"""The region tools on a reference's map (a pin can target a reference's region) and the polygon lasso, through the
real actions and mouse input on the window's views: each tool gives the expected map, undo restores it exactly, redo
re-applies it; matching and the draft receive the edited reference map; pins on a reference region an edit removes
are dropped with a notice and come back on undo."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from PySide6.QtCore import QPoint, Qt

from gui.model.session import PinTarget
from tests.test_gui_region_tools import (SIZE, analysed_window, brush_into_region_2, features, point, quarters,
                                         split_by_stroke, stroke)
from tests.test_gui_support import FakeEngine, make_window  # noqa: F401 (fixture)


@pytest.fixture
def window(make_window, qtbot, tmp_path):
    """A window showing its first reference large, whose map is the known quarters (region 3's right half differs
    in its stage-1 features); the photo keeps the fake engine's map."""
    window = analysed_window(make_window, qtbot, tmp_path, (1500, 1000))
    ref = window.gallery.references[0].id
    analysis = window.gallery.analysis(ref)
    window.gallery.set_analysis(ref, dataclasses.replace(analysis, labels=quarters(),
                                                         fmix=features(slice(32, None), slice(16, 32))))
    window.matches_panel.show_reference(ref)
    window.ref_id = ref
    return window


def reference_labels(window) -> np.ndarray:
    return window.session.reference_labels(window.ref_id, window.gallery.analysis(window.ref_id).labels)


def check_undo_redo(window, before: np.ndarray, after: np.ndarray) -> None:
    photo = window.session.region_labels().copy()
    view = window.matches_panel.ref_view
    assert np.array_equal(reference_labels(window), after)
    assert np.array_equal(view.labels, after)  # the map shown follows
    window.undo_action.trigger()
    assert np.array_equal(reference_labels(window), before) and np.array_equal(view.labels, before)
    window.redo_action.trigger()
    assert np.array_equal(reference_labels(window), after)
    assert np.array_equal(window.session.region_labels(), photo)  # the photo's map is another map
    assert window.session.region_override is None


def pick(qtbot, view, row: int, col: int, modifier=Qt.KeyboardModifier.NoModifier) -> None:
    qtbot.mouseClick(view, Qt.MouseButton.LeftButton, modifier, point(view, row, col))


def test_brush_into_a_picked_reference_region_then_the_eraser(window, qtbot):
    tools, view = window.content_panel.tools, window.matches_panel.ref_view
    pick(qtbot, view, 5, 40)  # region 2 of the reference: the brush's colour there
    assert window.session.selected_style_region == (window.ref_id, 2) and 2 in view.strong
    assert not window.session.pins  # no photo region selected: nothing pinned
    expected = brush_into_region_2(qtbot, tools, view)
    check_undo_redo(window, quarters(), expected)
    assert f"Editing {window.gallery.get(window.ref_id).name}" in tools.target_label.text()
    tools.tool_actions["eraser"].trigger()
    stroke(qtbot, view, [(10, 11), (10, 11)])
    erased = expected.copy()
    erased[10, 11] = 1
    check_undo_redo(window, expected, erased)


def test_split_by_stroke_on_a_reference(window, qtbot):
    expected = split_by_stroke(qtbot, window.content_panel.tools, window.matches_panel.ref_view)
    check_undo_redo(window, quarters(), expected)


def test_automatic_split_of_a_picked_reference_region(window, qtbot):
    tools, view = window.content_panel.tools, window.matches_panel.ref_view
    pick(qtbot, view, 40, 10)  # region 3, and the reference map becomes the one the tools act on
    tools.auto_split_action.trigger()
    expected = quarters()
    expected[32:, 16:32] = 5
    check_undo_redo(window, quarters(), expected)
    assert window.session.region_edit() is None  # the photo's edit is untouched


def test_merge_on_a_reference_drops_the_pin_on_the_merged_away_region(window, qtbot):
    tools, view, session = window.content_panel.tools, window.matches_panel.ref_view, window.session
    first, second = session.analysis.region_ids[:2]
    session.pin(first, PinTarget(window.ref_id, 4))
    session.pin(second, PinTarget(window.ref_id, 3))
    session.selected_region = None
    pick(qtbot, view, 40, 10)  # pick region 3
    pick(qtbot, view, 40, 40, Qt.KeyboardModifier.ControlModifier)  # mark region 4
    assert tools.marked == {4} and 4 in view.strong
    tools.merge_action.trigger()
    expected = quarters()
    expected[expected == 4] = 3
    assert session.pins == {second: PinTarget(window.ref_id, 3)}  # kept where the region survives
    assert session.error.kind == "pins_dropped"
    assert "reference region 4" in session.error.message and f"photo region {first}" in session.error.message
    check_undo_redo(window, quarters(), expected)
    window.undo_action.trigger()
    assert session.pins == {first: PinTarget(window.ref_id, 4), second: PinTarget(window.ref_id, 3)}


def test_matching_and_the_draft_receive_the_edited_reference_map(window, qtbot):
    tools, view, engine = window.content_panel.tools, window.matches_panel.ref_view, window.engine_for_test
    pick(qtbot, view, 40, 10)
    pick(qtbot, view, 40, 40, Qt.KeyboardModifier.ControlModifier)
    tools.merge_action.trigger()
    expected = quarters()
    expected[expected == 4] = 3

    def edited(ref) -> bool:
        edit = ref.region_edit
        return edit is not None and np.array_equal(np.where(edit.override > 0, edit.override, quarters()), expected)

    qtbot.waitUntil(lambda: bool(engine.matched) and edited(engine.matched[-1][1][0]), timeout=20000)
    assert engine.matched[-1][0].region_edit is None  # the photo has no edit
    qtbot.waitUntil(lambda: bool(engine.drafts) and edited(engine.drafts[-1].references[0]), timeout=20000)
    assert engine.drafts[-1].regions == "method"
    queued = window.controller.run()
    assert edited(queued.request.references[0])  # the run's request


def test_export_and_import_a_reference_map(window, qtbot, tmp_path, monkeypatch):
    from PySide6.QtWidgets import QFileDialog

    tools, view = window.content_panel.tools, window.matches_panel.ref_view
    tools.tool_actions["split"].trigger()
    tools.size_box.setValue(1)
    stroke(qtbot, view, [(2, 2), (2, 3)])
    edited = reference_labels(window).copy()
    path = tmp_path / "reference_regions.png"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *args, **kwargs: (str(path), ""))
    tools.export_action.trigger()
    window.undo_action.trigger()
    assert np.array_equal(reference_labels(window), quarters())
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *args, **kwargs: (str(path), ""))
    tools.import_action.trigger()
    assert np.array_equal(reference_labels(window), edited)
    assert window.session.region_override is None


def corner(view, row: float, col: float) -> QPoint:
    """The widget position of a grid corner (row, col in cells, not a cell's centre)."""
    rect = view.image_rect()
    return QPoint(round(rect.left() + col * rect.width() / SIZE), round(rect.top() + row * rect.height() / SIZE))


C_SHAPE = [(4, 4), (4, 28), (12, 28), (12, 12), (20, 12), (20, 28), (28, 28), (28, 4)]  # inside region 1


def c_inside() -> np.ndarray:
    """The concave C's cells: two arms and the back; the notch (rows 12-19, cols 12-27) stays out."""
    expected = quarters()
    expected[4:12, 4:28] = 5
    expected[12:20, 4:12] = 5
    expected[20:28, 4:28] = 5
    return expected


@pytest.mark.parametrize("close", ["first corner", "double-click", "enter"])
def test_lasso_by_clicked_corners_fills_a_concave_polygon(window, qtbot, close):
    tools, view, session = window.content_panel.tools, window.content_panel.view, window.session
    session.analysis = dataclasses.replace(session.analysis, labels=quarters())
    before = session.region_labels().copy()
    tools.tool_actions["lasso"].trigger()
    assert view.tool == "lasso" and view.cursor().shape() == Qt.CursorShape.CrossCursor
    for row, col in C_SHAPE[:-1]:
        qtbot.mouseClick(view, Qt.MouseButton.LeftButton, pos=corner(view, row, col))
    assert np.array_equal(session.region_labels(), before)  # an open lasso edits nothing
    last = corner(view, *C_SHAPE[-1])
    if close == "first corner":
        qtbot.mouseClick(view, Qt.MouseButton.LeftButton, pos=last)
        qtbot.mouseClick(view, Qt.MouseButton.LeftButton, pos=corner(view, *C_SHAPE[0]))
    elif close == "double-click":  # a real double-click: a click, then the double-click event (QTest sends that)
        qtbot.mouseClick(view, Qt.MouseButton.LeftButton, pos=last)
        qtbot.mouseDClick(view, Qt.MouseButton.LeftButton, pos=last)
    else:
        qtbot.mouseClick(view, Qt.MouseButton.LeftButton, pos=last)
        qtbot.keyClick(view, Qt.Key.Key_Return)
    assert np.array_equal(session.region_labels(), c_inside())
    window.undo_action.trigger()
    assert np.array_equal(session.region_labels(), before)
    window.redo_action.trigger()
    assert np.array_equal(session.region_labels(), c_inside())


def test_a_freehand_lasso_closes_on_release_and_escape_drops_an_open_one(window, qtbot):
    tools, view, session = window.content_panel.tools, window.content_panel.view, window.session
    session.analysis = dataclasses.replace(session.analysis, labels=quarters())
    tools.tool_actions["lasso"].trigger()
    qtbot.mouseClick(view, Qt.MouseButton.LeftButton, pos=corner(view, 4, 4))
    qtbot.mouseClick(view, Qt.MouseButton.LeftButton, pos=corner(view, 4, 20))
    qtbot.keyClick(view, Qt.Key.Key_Escape)
    qtbot.mouseClick(view, Qt.MouseButton.LeftButton, pos=corner(view, 20, 20))
    qtbot.keyClick(view, Qt.Key.Key_Return)  # one corner since Esc: not a polygon, nothing happens
    assert np.array_equal(session.region_labels(), quarters())
    qtbot.mousePress(view, Qt.MouseButton.LeftButton, pos=corner(view, 36, 36))
    for row, col in [(36, 60), (60, 60), (60, 36)]:
        qtbot.mouseMove(view, corner(view, row, col))
    qtbot.mouseRelease(view, Qt.MouseButton.LeftButton, pos=corner(view, 60, 36))
    expected = quarters()
    expected[36:60, 36:60] = 5
    assert np.array_equal(session.region_labels(), expected)
    window.undo_action.trigger()
    assert np.array_equal(session.region_labels(), quarters())


def test_a_reference_edit_comes_back_at_the_next_start(window, make_window, qtbot, tmp_path):
    split_by_stroke(qtbot, window.content_panel.tools, window.matches_panel.ref_view)
    override = window.session.reference_overrides[window.ref_id].copy()
    window.close()
    again = make_window(FakeEngine())
    again.controller.open_content(tmp_path / "photo.png")
    qtbot.waitUntil(lambda: again.session.match_table is not None, timeout=20000)
    again.matches_panel.show_reference(window.ref_id)
    automatic = again.gallery.analysis(window.ref_id).labels
    assert np.array_equal(again.matches_panel.ref_view.labels, np.where(override > 0, override, automatic))
