"""The region tools in the window, through the real actions and mouse strokes on the photo's region view: each tool
on a known map gives the expected map, undo restores it exactly, redo re-applies it, and the draft follows."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from PySide6.QtCore import QPoint, Qt

from engine.stage1.edits import RegionEdit
from tests.test_gui_draft import open_photo, wait_draft
from tests.test_gui_support import FakeEngine, make_window  # noqa: F401 (fixture)

SIZE = 64


def quarters() -> np.ndarray:
    labels = np.ones((SIZE, SIZE), dtype=np.int64)
    labels[:32, 32:] = 2
    labels[32:, :32] = 3
    labels[32:, 32:] = 4
    return labels


def analysed_window(make_window, qtbot, tmp_path, size: tuple[int, int]):
    """A shown window of `size` with a photo and two references, analysed and matched by its FakeEngine
    (`engine_for_test`)."""
    engine = FakeEngine()
    window = make_window(engine)
    window.resize(*size)
    window.show()
    open_photo(window, tmp_path)
    qtbot.waitUntil(lambda: window.session.match_table is not None, timeout=20000)
    window.engine_for_test = engine
    return window


def features(rows: slice, cols: slice) -> np.ndarray:
    """Stage-1 features on the grid in which the cells at (rows, cols) stand out: an automatic split finds them."""
    fmix = np.zeros((2, SIZE, SIZE), np.float32)
    fmix[0, rows, cols] = 5.0
    fmix[1] = np.arange(SIZE * SIZE, dtype=np.float32).reshape(SIZE, SIZE) * 1e-4
    return fmix


@pytest.fixture
def window(make_window, qtbot, tmp_path):
    """A window whose photo has the known quarters map; region 1's lower half differs in its stage-1 features."""
    window = analysed_window(make_window, qtbot, tmp_path, (1200, 900))
    window.session.analysis = dataclasses.replace(window.session.analysis, labels=quarters(),
                                                  fmix=features(slice(16, 32), slice(0, 32)))
    return window


def point(view, row: float, col: float) -> QPoint:
    rect = view.image_rect()
    return QPoint(int(rect.left() + (col + 0.5) * rect.width() / SIZE),
                  int(rect.top() + (row + 0.5) * rect.height() / SIZE))


def stroke(qtbot, view, cells: list[tuple[int, int]]) -> None:
    qtbot.mousePress(view, Qt.MouseButton.LeftButton, pos=point(view, *cells[0]))
    for cell in cells[1:-1]:
        qtbot.mouseMove(view, point(view, *cell))
    qtbot.mouseRelease(view, Qt.MouseButton.LeftButton, pos=point(view, *cells[-1]))


def check_undo_redo(window, before: np.ndarray, after: np.ndarray) -> None:
    session = window.session
    assert np.array_equal(session.region_labels(), after)
    assert np.array_equal(window.content_panel.view.labels, after)  # the map shown follows
    window.undo_action.trigger()
    assert np.array_equal(session.region_labels(), before)
    window.redo_action.trigger()
    assert np.array_equal(session.region_labels(), after)


def brush_into_region_2(qtbot, tools, view) -> np.ndarray:
    """A one-cell brush stroke in region 1 of the quarters map shown in `view`, with region 2 selected there: the
    map expected after it."""
    tools.tool_actions["brush"].trigger()
    tools.size_box.setValue(1)
    assert view.cursor().shape() == Qt.CursorShape.CrossCursor
    stroke(qtbot, view, [(10, 10), (10, 11), (10, 12)])
    expected = quarters()
    expected[10, 10:13] = 2
    return expected


def test_brush_paints_into_the_selected_region_and_the_draft_follows(window, qtbot):
    window.session.selected_region = 2
    expected = brush_into_region_2(qtbot, window.content_panel.tools, window.content_panel.view)
    check_undo_redo(window, quarters(), expected)
    engine = window.engine_for_test
    qtbot.waitUntil(lambda: bool(engine.drafts) and engine.drafts[-1].content.region_edit is not None,
                    timeout=20000)
    assert engine.drafts[-1].regions == "method"
    assert np.array_equal(np.where(engine.drafts[-1].content.region_edit.override > 0,
                                   engine.drafts[-1].content.region_edit.override, quarters()), expected)
    wait_draft(qtbot, window)


def test_brush_size_keys_and_a_new_region_then_the_eraser_restores(window, qtbot):
    tools, view = window.content_panel.tools, window.content_panel.view
    tools.tool_actions["brush"].trigger()
    tools.size_box.setValue(2)
    tools.larger_action.trigger()
    tools.smaller_action.trigger()
    assert tools.size_box.value() == 2 and view.brush_size == 2
    stroke(qtbot, view, [(40, 40), (40, 40)])  # no region selected: a new one
    painted = window.session.region_labels()
    assert set(np.unique(painted)) == {1, 2, 3, 4, 5} and (painted == 5).sum() >= 1
    tools.tool_actions["eraser"].trigger()
    tools.size_box.setValue(8)
    stroke(qtbot, view, [(40, 40), (40, 40)])
    check_undo_redo(window, painted, quarters())


def split_by_stroke(qtbot, tools, view) -> np.ndarray:
    """A one-cell split stroke across region 2 of the quarters map shown in `view`: the map expected after it."""
    tools.tool_actions["split"].trigger()
    tools.size_box.setValue(1)
    stroke(qtbot, view, [(5, 40), (5, 41), (5, 42)])
    expected = quarters()
    expected[5, 40:43] = 5
    return expected


def test_split_by_stroke(window, qtbot):
    expected = split_by_stroke(qtbot, window.content_panel.tools, window.content_panel.view)
    check_undo_redo(window, quarters(), expected)


def test_merge_marked_and_selected_regions_drops_the_pin(window, qtbot):
    from gui.model.session import PinTarget

    tools, view = window.content_panel.tools, window.content_panel.view
    session = window.session
    ref = window.gallery.references[0].id
    session.pin(4, PinTarget(ref))
    qtbot.mouseClick(view, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, point(view, 40, 10))
    assert session.selected_region == 3
    qtbot.mouseClick(view, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.ControlModifier, point(view, 40, 40))
    assert tools.marked == {4}
    assert 4 in view.strong  # a marked region is shown as marked
    tools.merge_action.trigger()
    assert not view.marks and 4 not in view.strong
    expected = quarters()
    expected[expected == 4] = 3
    assert 4 not in session.pins and session.error.kind == "pins_dropped"
    check_undo_redo(window, quarters(), expected)
    window.undo_action.trigger()
    assert session.pins[4] == PinTarget(ref)  # undo gives the pin back


def test_automatic_split_uses_the_regions_features(window, qtbot):
    window.session.selected_region = 1
    window.content_panel.tools.auto_split_action.trigger()
    expected = quarters()
    expected[16:32, :32] = 5
    check_undo_redo(window, quarters(), expected)
    assert isinstance(window.session.region_edit(), RegionEdit)


def test_export_and_import_round_trip_and_a_wrong_size_is_a_banner(window, qtbot, tmp_path, monkeypatch):
    from PIL import Image
    from PySide6.QtWidgets import QFileDialog

    tools, view = window.content_panel.tools, window.content_panel.view
    window.session.selected_region = 4
    tools.tool_actions["brush"].trigger()
    tools.size_box.setValue(1)
    stroke(qtbot, view, [(2, 2), (2, 3)])
    edited = window.session.region_labels().copy()
    path = tmp_path / "regions.png"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *args, **kwargs: (str(path), ""))
    tools.export_action.trigger()
    window.undo_action.trigger()
    assert np.array_equal(window.session.region_labels(), quarters())
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *args, **kwargs: (str(path), ""))
    tools.import_action.trigger()
    assert np.array_equal(window.session.region_labels(), edited)
    Image.new("L", (10, 10)).save(path)
    tools.import_action.trigger()
    assert "must be exactly" in window.session.error.message
    assert np.array_equal(window.session.region_labels(), edited)
