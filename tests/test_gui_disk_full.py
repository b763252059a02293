"""A full disk (ENOSPC, simulated with monkeypatch) and over-long file names in the window: no write raises out
of a slot or of closeEvent, no truncated copy stays in the gallery, every failure is a banner message, and
closing says what could not be saved. Also: closing during a run hides the window before waiting for the
threads. FakeEngine plumbing, offscreen Qt."""
from __future__ import annotations

import errno
import os

import pytest

from tests.test_gui_support import FakeEngine, make_window, wait_idle, write_image  # noqa: F401 (fixture)
from tests.test_gui_window import drop_files, open_photo_and_references

pytest.importorskip("pytestqt")


def disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def half_copy_then_disk_full(src, dst, *args, **kwargs):
    """What a copy onto a full disk leaves: the first bytes, then ENOSPC."""
    data = open(src, "rb").read()
    with open(dst, "wb") as handle:
        handle.write(data[: len(data) // 2])
    disk_full()


@pytest.fixture
def images(tmp_path):
    return [write_image(tmp_path / "in" / f"ref{i}.png", seed=i) for i in range(2)]


def messages(window, topic=None) -> list:
    return [info for t, info in window.session.messages if topic is None or t == topic]


def test_adding_references_on_a_full_disk_leaves_no_copy_and_says_so(make_window, monkeypatch, images):
    from gui.model import gallery

    window = make_window()
    monkeypatch.setattr(gallery.shutil, "copyfile", half_copy_then_disk_full)
    drop_files(window.gallery_panel, images)  # must not raise out of the drop handler
    assert window.gallery.references == []
    assert not window.gallery.images.exists() or list(window.gallery.images.iterdir()) == []
    [info] = messages(window, "gallery")
    assert "No space left on device" in f"{info.message} {info.hint}" and "disk is full" in info.hint


def test_pasting_on_a_full_disk_says_so(make_window, monkeypatch, images):
    from PIL import Image

    window = make_window()
    monkeypatch.setattr(Image.Image, "save", lambda self, fp, *a, **k: disk_full())
    with Image.open(images[0]) as image:
        assert window.controller.add_reference_image(image.copy()) is None
    assert window.gallery.references == [] and "disk is full" in messages(window, "gallery")[0].hint


def test_gallery_index_on_a_full_disk_keeps_the_change_and_writes_it_at_close(make_window, monkeypatch, images,
                                                                                tmp_path, qtbot):
    from gui.model import gallery

    window = make_window()
    monkeypatch.setattr(gallery, "save_json_atomic", disk_full)
    window.controller.add_references([images[0]])
    assert [r.name for r in window.gallery.references] == ["ref0"] and window.gallery.unsaved
    assert "gallery index" in messages(window, "gallery_save")[0].message
    wait_idle(qtbot, window)
    monkeypatch.undo()  # space freed: the close writes what the failed save could not
    window.close()
    assert [r.name for r in make_window().gallery.references] == ["ref0"]


def test_a_dropped_file_name_too_long_does_not_raise(make_window, tmp_path):
    window = make_window()
    too_long = tmp_path / ("x" * 300 + ".png")
    drop_files(window.gallery_panel, [too_long])
    drop_files(window.content_panel.view, [too_long])
    assert window.gallery.references == [] and window.session.content is None
    assert [t for t, _ in window.session.messages] == ["gallery", "content"]
    assert all("too long" in f"{info.message} {info.hint}" for info in messages(window))


def test_session_autosave_on_a_full_disk_is_a_message(make_window, monkeypatch, images, tmp_path, qtbot):
    from gui.model import session

    window = make_window()
    open_photo_and_references(window, qtbot, images, tmp_path)
    monkeypatch.setattr(session, "save_json_atomic", disk_full)
    window.session.steps = 7  # a persisted parameter: the autosave runs a second later
    qtbot.waitUntil(lambda: bool(messages(window, "session_save")), timeout=5000)
    assert "pins and history of photo.png" in messages(window, "session_save")[0].message
    wait_idle(qtbot, window)
    monkeypatch.undo()  # before qtbot closes the window: a failing save on close would ask (a modal box)


def test_close_on_a_full_disk_says_what_was_not_saved_and_may_stay_open(make_window, monkeypatch, images,
                                                                         tmp_path, qtbot):
    from gui.model import session

    window = make_window()
    open_photo_and_references(window, qtbot, images, tmp_path)
    wait_idle(qtbot, window)
    window.show()
    monkeypatch.setattr(session, "save_json_atomic", disk_full)
    asked = []
    monkeypatch.setattr(window, "close_anyway", lambda unsaved: asked.append(unsaved) or len(asked) > 1)
    assert not window.close()  # first answer: keep the window open
    assert window.isVisible() and window.controller.queue._thread.isRunning()
    assert "pins and run history" in asked[0][0]
    assert window.close()  # second answer: close anyway; nothing raised
    assert not window.isVisible() and not window.controller.queue._thread.isRunning()
    monkeypatch.undo()


def test_closing_during_a_run_hides_the_window_before_waiting_for_the_threads(make_window, monkeypatch, images,
                                                                              tmp_path, qtbot):
    window = make_window(FakeEngine(step_delay=0.2))
    open_photo_and_references(window, qtbot, images, tmp_path)
    window.show()
    window.session.steps = 1000
    window.controller.run()
    qtbot.waitUntil(lambda: window.session.progress[0] >= 1, timeout=10000)
    shutdown, seen = window.controller.shutdown, []

    def record_then_shutdown():
        seen.append(window.isVisible())
        shutdown()

    monkeypatch.setattr(window.controller, "shutdown", record_then_shutdown)
    assert window.close()
    assert seen == [False]  # hidden first: the wait for the step in progress is not a frozen window
    assert not window.controller.queue._thread.isRunning()


def test_opening_the_log_folder_on_a_read_only_disk_is_a_message(make_window, monkeypatch, tmp_path):
    from pathlib import Path

    window = make_window()
    window.app.log_file = tmp_path / "logs" / "stylegallery.log"

    def read_only(self, *args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(Path, "mkdir", read_only)
    window.open_log_folder()
    assert "read-only" in messages(window, "save")[0].hint


def test_a_result_the_session_folder_does_not_take_is_saved_elsewhere_and_said(make_window, monkeypatch, images,
                                                                              tmp_path, qtbot):
    from engine import results
    from gui import controller

    window = make_window(FakeEngine(step_delay=0.01))
    open_photo_and_references(window, qtbot, images, tmp_path)
    window.session.steps = 2
    fallback = tmp_path / "fallback"
    monkeypatch.setattr(controller, "save_result", disk_full)
    monkeypatch.setattr(results, "fallback_folders", lambda: [fallback])
    queue = window.controller.queue
    with qtbot.waitSignal(queue.done, timeout=20000, check_params_cb=lambda job, _: job.kind == "transfer"):
        window.controller.run()
    saved = list(fallback.glob("*.png"))
    assert len(saved) == 1 and saved[0].with_suffix(".json").is_file()
    message = messages(window, "run")[0].message
    assert "disk" in message.lower() or "space" in message.lower()
    assert str(saved[0]) in message
    assert window.generation_panel.run_button.isEnabled()
