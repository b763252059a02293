"""Results out of the window: Ctrl+C puts the shown result or draft on the clipboard, a drag's mime data holds the
image and a readable PNG file, Export… writes the chosen format and remembers the quality, Save all writes the
photo's whole history under new names."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QApplication

import gui.result_export
from gui.widgets.images import pil_from_qimage
from gui.widgets.export_dialog import ExportDialog
from tests.test_gui_draft import open_photo, wait_draft
from tests.test_gui_support import FakeEngine, make_window, wait_idle  # noqa: F401 (fixture)

pytest.importorskip("pytestqt")


def run_once(qtbot, window, steps: int = 3):
    window.session.steps = steps
    with qtbot.waitSignal(window.controller.queue.done, timeout=20000,
                          check_params_cb=lambda job, _: job.kind == "transfer"):
        window.controller.run()
    return window.session.result


def shown_window(make_window, qtbot, tmp_path, runs: int = 1, random_weights: bool = False):
    window = make_window(FakeEngine())
    window.session.random_weights = random_weights
    open_photo(window, tmp_path)
    qtbot.waitUntil(lambda: window.session.match_table is not None, timeout=20000)
    for _ in range(runs):
        run_once(qtbot, window)
    return window


def result_pixels(window) -> np.ndarray:
    with Image.open(window.session.result_path(window.session.result)) as saved:
        return np.asarray(saved.convert("RGB"))


def copy_action(window):
    return next(a for a in window.findChildren(type(window.save_action)) if a.text() == "&Copy image")


def test_ctrl_c_copies_the_shown_result_or_draft(make_window, qtbot, tmp_path):
    window = shown_window(make_window, qtbot, tmp_path)
    QApplication.clipboard().clear()
    assert window.outputs.currentWidget() is window.result_panel
    assert copy_action(window).shortcut().toString() == "Ctrl+C"
    copy_action(window).trigger()
    copied = np.asarray(pil_from_qimage(QApplication.clipboard().image()))
    assert copied.shape == result_pixels(window).shape and (copied == result_pixels(window)).all()

    window.outputs.setCurrentWidget(window.draft_panel)
    draft = wait_draft(qtbot, window)
    copy_action(window).trigger()
    copied = np.asarray(pil_from_qimage(QApplication.clipboard().image()))
    assert (copied == draft.image).all()
    wait_idle(qtbot, window)


def test_drag_mime_data_holds_the_image_and_a_readable_png(make_window, qtbot, tmp_path, monkeypatch):
    monkeypatch.setattr(gui.result_export, "drag_folder", lambda: tmp_path / "drags")
    window = shown_window(make_window, qtbot, tmp_path, random_weights=True)
    assert window.session.result.random_weights
    mime = window.exporter.mime_data(window.exporter.shown())
    assert mime.hasImage()
    assert (np.asarray(pil_from_qimage(mime.imageData())) == result_pixels(window)).all()
    [url] = mime.urls()
    dragged = Path(url.toLocalFile())
    assert dragged.parent == tmp_path / "drags" and dragged.suffix == ".png" and "random-weights" in dragged.name
    assert dragged != window.session.result_path(window.session.result)  # a copy: a move cannot take the history's
    with Image.open(dragged) as png:
        assert (np.asarray(png.convert("RGB")) == result_pixels(window)).all()
        assert png.info["srgb"] == 0 and json.loads(png.info["stylegallery"])["status"] == "finished"
    wait_idle(qtbot, window)


def test_a_drag_out_of_the_compare_view_asks_for_the_drag(make_window, qtbot, tmp_path):
    """The slider moves while the pointer stays on the view; leaving it starts the drag, once per press."""
    window = shown_window(make_window, qtbot, tmp_path)
    view = window.result_panel.compare
    view.resize(300, 200)
    asked = []
    view.drag_out.disconnect()
    view.drag_out.connect(lambda: asked.append(True))
    qtbot.mousePress(view, Qt.MouseButton.LeftButton, pos=QPoint(150, 100))
    qtbot.mouseMove(view, QPoint(200, 100))
    assert not asked
    for x in (400, 420):
        outside = QMouseEvent(QMouseEvent.Type.MouseMove, QPointF(x, 100), QPointF(x, 100), Qt.MouseButton.NoButton,
                              Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
        QApplication.sendEvent(view, outside)
    assert asked == [True]
    qtbot.mouseRelease(view, Qt.MouseButton.LeftButton, pos=QPoint(150, 100))
    wait_idle(qtbot, window)


def test_export_writes_the_chosen_format_and_remembers_it(make_window, qtbot, tmp_path, monkeypatch):
    window = shown_window(make_window, qtbot, tmp_path)
    target = tmp_path / "out" / "picture"

    def choose(dialog):
        dialog.format.setCurrentIndex(dialog.format.findData("webp"))
        dialog.quality.setValue(70)
        return ExportDialog.DialogCode.Accepted

    monkeypatch.setattr(ExportDialog, "exec", choose)
    monkeypatch.setattr(gui.result_export.QFileDialog, "getSaveFileName", lambda *a, **k: (str(target), ""))
    window.exporter.export()
    with Image.open(tmp_path / "out" / "picture.webp") as webp:
        assert webp.format == "WEBP" and webp.size == Image.open(window.session.result_path(
            window.session.result)).size
        assert b"stylegallery" in webp.info["xmp"] and webp.info["icc_profile"]
    assert window.app.settings.export_options() == ("webp", 70)
    dialog = ExportDialog(*window.app.settings.export_options())
    assert dialog.choice() == ("webp", 70) and dialog.quality.isEnabled()
    dialog.format.setCurrentIndex(dialog.format.findData("tiff"))
    assert not dialog.quality.isEnabled()  # lossless formats have no quality

    path = window.exporter.export_to(tmp_path / "out" / "print.tif", "tiff", 90)
    with Image.open(path) as tiff:
        assert tiff.tag_v2[258] == (16, 16, 16)
        assert (np.asarray(tiff.convert("RGB")) == result_pixels(window)).all()
    wait_idle(qtbot, window)


def test_save_all_writes_every_result_of_the_history_under_new_names(make_window, qtbot, tmp_path):
    window = shown_window(make_window, qtbot, tmp_path, runs=3)
    history = window.session.history
    assert len(history) == 3
    folder = tmp_path / "all"
    folder.mkdir()
    (folder / "photo-01.png").write_bytes(b"the artist's own file")
    window.session.result_path(history[1]).unlink()  # deleted by hand: skipped, and said
    written = window.exporter.save_all_to(folder)
    assert [p.name for p in written] == ["photo-01 (2).png", "photo-03.png"]
    assert (folder / "photo-01.png").read_bytes() == b"the artist's own file"
    for path, record in zip(written, [history[0], history[2]]):
        assert path.read_bytes() == window.session.result_path(record).read_bytes()
    assert "1 missing" in window.session.status
    again = window.exporter.save_all_to(folder)
    assert [p.name for p in again] == ["photo-01 (3).png", "photo-03 (2).png"]
    wait_idle(qtbot, window)
