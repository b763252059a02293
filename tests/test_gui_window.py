"""The window's mechanics with a FakeEngine (plumbing only): gallery drops and persistence, content overlay,
pinning by clicks with undo/redo, a run's previews and result, cancel. Offscreen Qt."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent

from tests.test_gui_support import FakeEngine, make_window, wait_idle, write_image  # noqa: F401 (fixture)

pytest.importorskip("pytestqt")


def drop_files(widget, paths: list[Path]) -> None:
    """What the window gets when files are dragged from a file manager onto `widget`."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    event = QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                       Qt.KeyboardModifier.NoModifier)
    widget.dropEvent(event)


def click_region(view, region: int) -> None:
    """Click the centre of the first cell of `region` in a RegionView."""
    rows, cols = np.nonzero(view.labels == region)
    rect = view.image_rect()
    x = rect.left() + (cols[0] + 0.5) / view.labels.shape[1] * rect.width()
    y = rect.top() + (rows[0] + 0.5) / view.labels.shape[0] * rect.height()
    view.clicked.emit(view.region_at(QPointF(x, y)))


@pytest.fixture
def images(tmp_path):
    return [write_image(tmp_path / "in" / f"ref{i}.png", seed=i) for i in range(2)]


def test_drop_images_into_gallery_persists_across_windows(make_window, qtbot, images, tmp_path):
    window = make_window()
    drop_files(window.gallery_panel, images)
    assert [r.name for r in window.gallery.references] == ["ref0", "ref1"]
    qtbot.waitUntil(lambda: window.gallery_panel.tree.topLevelItemCount() == 1)
    wait_idle(qtbot, window)
    assert all(window.gallery.analysis(r.id) is not None for r in window.gallery.references)
    window.close()

    again = make_window()
    assert [r.name for r in again.gallery.references] == ["ref0", "ref1"]
    assert all(again.gallery.path(r.id).is_file() for r in again.gallery.references)
    images[0].unlink()  # the gallery keeps its own copies
    third = make_window()
    assert len(third.gallery.references) == 2


def test_remove_reference_and_folder_drop_makes_a_family(make_window, qtbot, images, tmp_path):
    window = make_window()
    family = tmp_path / "Watercolour"
    for i in range(2):
        write_image(family / f"w{i}.png", seed=10 + i)
    drop_files(window.gallery_panel, [images[0], family])
    assert window.gallery.families() == ["", "Watercolour"]
    removed = window.gallery.references[0]
    window.controller.remove_reference(removed.id)
    assert removed.id not in [r.id for r in window.gallery.references]
    assert not (window.gallery.images / removed.file).exists()
    wait_idle(qtbot, window)
    window.close()
    assert [r.family for r in make_window().gallery.references] == ["Watercolour", "Watercolour"]


def test_non_image_drop_shows_a_message(make_window, qtbot, tmp_path):
    window = make_window()
    text = tmp_path / "notes.txt"
    text.write_text("not a picture")
    drop_files(window.gallery_panel, [text])
    assert window.gallery.references == []
    assert window.session.error is not None and "notes.txt" in window.session.error.message
    assert window.banner.isVisibleTo(window)
    assert "notes.txt" in window.banner.text()


def test_unreadable_content_shows_a_message(make_window, tmp_path):
    window = make_window()
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    assert not window.controller.open_content(broken)
    assert window.session.error.kind == "image_unreadable"
    assert window.session.content is None


def open_photo_and_references(window, qtbot, images, tmp_path):
    window.controller.add_references(images)
    content = write_image(tmp_path / "photo.png", size=64, seed=7)
    drop_files(window.content_panel.view, [content])
    qtbot.waitUntil(lambda: window.session.match_table is not None, timeout=20000)
    return content


def test_content_overlay_and_pinning_with_undo(make_window, qtbot, images, tmp_path):
    window = make_window()
    open_photo_and_references(window, qtbot, images, tmp_path)
    view = window.content_panel.view
    assert view.image is not None and view.labels is not None and view._overlay is not None
    assert set(np.unique(view.labels)) == {1, 2, 3}

    window.session.opacity = 20  # the slider follows the model and back
    assert window.content_panel.opacity_slider.value() == 20
    window.content_panel.overlay_box.setChecked(False)
    assert window.session.overlay_visible is False

    region = 2
    before = window.session.shown_match(region)
    other = next(r for r in window.gallery.references if r.id != before.ref_id)
    click_region(view, region)
    assert window.session.selected_region == region
    window.gallery_panel.reference_clicked.emit(other.id)  # click a reference: pins the whole reference
    pinned = window.session.shown_match(region)
    assert pinned.pinned and pinned.ref_id == other.id and pinned.style_region is None
    window.matches_panel.show_reference(other.id)  # then a region of its map: pins that region
    click_region(window.matches_panel.ref_view, 3)
    assert window.session.shown_match(region).style_region == 3
    assert window.windowTitle().startswith("photo.png*")

    window.undo_action.trigger()
    assert window.session.shown_match(region).style_region is None
    window.undo_action.trigger()
    assert window.session.shown_match(region) == before
    window.redo_action.trigger()
    assert window.session.shown_match(region).ref_id == other.id
    qtbot.waitUntil(lambda: "*" not in window.windowTitle(), timeout=5000)  # autosaved

    window.close()
    again = make_window()  # pins come back with the photo
    again.controller.open_content(tmp_path / "photo.png")
    assert again.session.pins[region].ref_id == other.id
    wait_idle(qtbot, again)


def test_pin_from_the_drop_down(make_window, qtbot, images, tmp_path):
    window = make_window()
    open_photo_and_references(window, qtbot, images, tmp_path)
    qtbot.waitUntil(lambda: window.matches_panel.table.rowCount() == 3)
    combo = window.matches_panel.table.cellWidget(0, 3)
    combo.activated.emit(2)  # the second reference, whole
    assert window.session.pins[1] == combo.itemData(2)
    qtbot.waitUntil(window.matches_panel.clear_all_button.isEnabled)
    window.matches_panel.clear_all_button.click()
    assert window.session.pins == {}


def test_run_updates_preview_and_shows_result(make_window, qtbot, images, tmp_path):
    window = make_window(FakeEngine(step_delay=0.03))
    open_photo_and_references(window, qtbot, images, tmp_path)
    window.session.steps = 8
    previews = []
    window.session.preview_changed.connect(lambda p: previews.append(p))
    queue = window.controller.queue
    with qtbot.waitSignal(queue.done, timeout=20000, check_params_cb=lambda job, _: job.kind == "transfer"):
        window.generation_panel.run_button.click()
        assert window.generation_panel.run_button.text() == "Add to queue"  # Run queues the next while one runs
    assert len([p for p in previews if p is not None]) >= 2
    record = window.session.result
    assert record is not None and not record.cancelled and record.steps_done == 8
    assert window.result_panel.compare.after is not None
    assert window.generation_panel.run_button.text() == "Run"

    import json

    from PIL import Image

    out = tmp_path / "saved.png"
    window.save_result_to(out)
    with Image.open(out) as saved:
        meta = json.loads(saved.info["stylegallery"])
    assert meta["params"]["stage3"]["steps"] == 8 and meta["status"] == "finished"
    assert [(r["name"], r["sha256"]) for r in meta["references"]] == [(r.name, r.sha256)
                                                                       for r in window.gallery.references]


def test_cancel_leaves_the_window_responsive(make_window, qtbot, images, tmp_path):
    window = make_window(FakeEngine(step_delay=0.05))
    open_photo_and_references(window, qtbot, images, tmp_path)
    window.session.steps = 400
    queue = window.controller.queue
    window.controller.run()
    qtbot.waitUntil(lambda: window.session.progress[0] >= 2, timeout=10000)
    with qtbot.waitSignal(queue.cancelled, timeout=5000), qtbot.assertNotEmitted(queue.done):
        window.cancel_action.trigger()
    assert not window.session.running
    assert window.session.result.cancelled and window.session.result.steps_done < 400
    assert "CANCELLED" in window.result_panel.compare.note
    window.session.opacity = 33  # the GUI thread still answers
    assert window.content_panel.opacity_slider.value() == 33
    assert window.session.error is None  # cancel is not an error


def test_failed_run_shows_the_error_and_reenables_run(make_window, qtbot, images, tmp_path):
    from engine.errors import OutOfMemory

    window = make_window(FakeEngine(fail_with=OutOfMemory("CUDA out of memory (simulated)")))
    open_photo_and_references(window, qtbot, images, tmp_path)
    with qtbot.waitSignal(window.controller.queue.failed, timeout=10000):
        window.controller.run()
    assert window.session.error.kind == "out_of_memory"
    assert window.session.error.hint
    assert window.generation_panel.run_button.isEnabled()
    assert len(window.gallery.references) == 2  # nothing lost


def test_paste_an_image_from_the_clipboard(make_window, qtbot, tmp_path):
    from PySide6.QtWidgets import QApplication

    from gui.widgets.images import load_qimage

    window = make_window()
    QApplication.clipboard().setImage(load_qimage(write_image(tmp_path / "clip.png", seed=5)))
    window.gallery_panel.paste()
    assert [r.name for r in window.gallery.references] == ["Pasted image"]
    window.gallery_panel.paste()  # the same pixels again: refused with a message
    assert len(window.gallery.references) == 1 and window.session.error.kind == "duplicate"
    wait_idle(qtbot, window)


def test_settings_dialog_and_switching_models(make_window, qtbot, tmp_path):
    from gui.settings import Preferences
    from gui.widgets.settings_dialog import SettingsDialog

    window = make_window()
    models = tmp_path / "tiny"
    (models / "sd15").mkdir(parents=True)
    (models / "manifest.json").write_text('{"random_weights": true}')
    dialog = SettingsDialog(Preferences(), str(tmp_path / "cache"), window)
    qtbot.addWidget(dialog)
    assert dialog.kind.currentData() == "hub"
    dialog.sd.setText(str(models / "sd15"))
    dialog.device.setCurrentText("cpu")
    dialog.offline.setChecked(True)
    prefs = dialog.preferences()
    assert (prefs.sd, prefs.device, prefs.offline) == (str(models / "sd15"), "cpu", True)
    window.app.apply_preferences(prefs)
    assert window.session.random_weights
    assert window.model_label.text() == "Model: sd15 (RANDOM WEIGHTS)"
    qtbot.waitUntil(lambda: window.device_label.text() == "Device: CPU: slow", timeout=20000)
    wait_idle(qtbot, window)


def test_size_settings_persist_and_reach_the_runs(make_window, qtbot, tmp_path):
    from gui.settings import Preferences
    from gui.widgets.settings_dialog import SettingsDialog

    window = make_window()
    assert (window.controller.stage1.size_policy, window.controller.output.size) == ("aspect", "photo")
    dialog = SettingsDialog(Preferences(), str(tmp_path / "cache"), window)
    qtbot.addWidget(dialog)
    for box, value in ((dialog.size_policy, "square"), (dialog.max_side, 1024), (dialog.output_size, "working"),
                       (dialog.upscale, "fast")):
        box.setCurrentIndex(box.findData(value))
    prefs = dialog.preferences()
    window.app.settings.set_preferences(prefs)
    wait_idle(qtbot, window)
    window.close()
    again = make_window()  # a new start reads them back
    controller = again.controller
    assert (controller.stage1.size_policy, controller.stage1.max_side) == ("square", 1024)
    assert (controller.output.size, controller.output.upscale) == ("working", "fast")
    wait_idle(qtbot, again)


def test_model_download_progress_reaches_the_status_bar(make_window, qtbot):
    import threading

    from engine.types import StepEvent

    window = make_window()
    wait_idle(qtbot, window)  # the start-up device job's end would clear the bar (downloads happen inside jobs)
    event = StepEvent("download", 3 * 2**30, 4 * 2**30, message="Downloading sd")  # over 2**31 bytes
    thread = threading.Thread(target=window.controller.engine_event, args=(event,))  # as the engine calls it
    thread.start()
    thread.join()
    qtbot.waitUntil(lambda: window.session.activity is not None)
    assert window.activity_bar.isVisibleTo(window) and window.activity_bar.value() == 750
    assert "3,072 of 4,096 MB" in window.session.status
