"""What the window tells the artist: counted nouns, the progress bar after a run that stopped, and the message
queue (no message replaces another silently). FakeEngine plumbing, offscreen Qt."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from tests.test_gui_support import FakeEngine, make_window, wait_idle, write_image  # noqa: F401 (fixture)
from tests.test_gui_window import drop_files, open_photo_and_references

pytest.importorskip("pytestqt")


@pytest.fixture
def images(tmp_path):
    return [write_image(tmp_path / "in" / f"ref{i}.png", seed=i) for i in range(2)]


def test_plural_counts_one_as_singular():
    from engine.wording import count as plural

    assert plural(1, "region") == "1 region"
    assert plural(0, "region") == "0 regions"
    assert plural(3, "quick region") == "3 quick regions"
    assert plural(2, "family", "families") == "2 families"


def test_one_region_is_not_called_regions(make_window, qtbot, tmp_path):
    window = make_window()
    flat = tmp_path / "flat.png"
    Image.fromarray(np.full((48, 48, 3), 128, np.uint8)).save(flat)  # FakeEngine: one brightness band
    window.controller.open_content(flat)
    qtbot.waitUntil(lambda: window.session.analysis is not None, timeout=10000)
    assert window.session.status == "1 region found"
    assert window.content_panel.info.text().startswith("1 region ·")
    wait_idle(qtbot, window)


@pytest.mark.parametrize("outcome", ["failed", "cancelled"])
def test_progress_bar_resets_after_a_run_that_made_nothing(make_window, qtbot, images, tmp_path, outcome):
    from engine.errors import Cancelled, OutOfMemory

    stop = OutOfMemory("CUDA out of memory (simulated)") if outcome == "failed" else Cancelled("before step 1")
    window = make_window(FakeEngine(fail_with=stop))
    open_photo_and_references(window, qtbot, images, tmp_path)
    with qtbot.waitSignal(getattr(window.controller.queue, outcome), timeout=10000):
        window.controller.run()
    bar = window.generation_panel.progress
    assert not window.session.running
    assert window.session.progress == (0, 0)
    assert bar.text() == "" and bar.value() == 0


def test_folder_drop_reports_every_kind_of_problem_in_one_message(make_window, qtbot, images, tmp_path):
    window = make_window()
    window.controller.add_references([images[0]])
    folder = tmp_path / "Mixed"
    folder.mkdir()
    (folder / "a_copy.png").write_bytes(images[0].read_bytes())  # first in the folder: already in the gallery
    write_image(folder / "b_good.png", seed=3)
    (folder / "z_broken.png").write_bytes(b"\x89PNG\r\n\x1a\n damaged")  # further down: damaged
    drop_files(window.gallery_panel, [folder])
    assert [r.name for r in window.gallery.references] == ["ref0", "b_good"]
    gallery_messages = [info for topic, info in window.session.messages if topic == "gallery"]
    assert len(gallery_messages) == 1
    text = f"{gallery_messages[0].message} {gallery_messages[0].hint}"
    assert "already in the gallery" in text and "unreadable" in text and "z_broken.png" in text
    wait_idle(qtbot, window)


def test_a_later_message_does_not_replace_an_earlier_one(make_window, qtbot, images, tmp_path):
    from engine.errors import ModelMissing

    window = make_window(FakeEngine(analyze_fails_with=ModelMissing("no weights here (simulated)")))
    folder = tmp_path / "Family"
    write_image(folder / "good.png", seed=4)
    (folder / "notes.txt.png").write_bytes(b"not an image")
    drop_files(window.gallery_panel, [folder])  # "skipped" now; "drafts only" when the analysis fails
    qtbot.waitUntil(lambda: len(window.session.messages) == 2, timeout=10000)
    wait_idle(qtbot, window)
    topics = [topic for topic, _ in window.session.messages]
    assert topics == ["gallery", "models"]
    assert len(window.banner.rows) == 2 and "notes.txt.png" in window.banner.text()
    window.banner.rows[1].dismiss()  # each message is dismissed on its own
    assert [topic for topic, _ in window.session.messages] == ["gallery"]
    assert window.banner.isVisibleTo(window)
    window.banner.rows[0].dismiss()
    assert window.session.messages == () and not window.banner.isVisibleTo(window)


def test_banner_shows_the_newest_messages_and_counts_the_rest(make_window):
    from gui.model.errors import ErrorInfo
    from gui.widgets.error_banner import MAX_SHOWN

    window = make_window()
    infos = [ErrorInfo("save_failed", f"message {i}") for i in range(MAX_SHOWN + 2)]
    for info in infos:
        window.session.show_error(info, "save")
    window.session.show_error(infos[0], "save")  # the same message again is not repeated
    assert len(window.session.messages) == MAX_SHOWN + 2
    assert [row.info for row in window.banner.rows] == infos[-MAX_SHOWN:]
    assert window.banner.more.isVisibleTo(window) and window.banner.more.text().startswith("2 earlier messages")
    for row in list(window.banner.rows):
        row.dismiss()
    assert [row.info for row in window.banner.rows] == infos[:2]  # the older ones come up, none was lost
    assert not window.banner.more.isVisibleTo(window)
    window.session.show_error(None, "save")  # withdrawing a topic takes only its own messages
    assert window.session.messages == ()


def test_a_run_failure_after_a_missing_model_is_about_the_run(make_window, qtbot, images, tmp_path):
    from engine.errors import ModelMissing, OutOfMemory

    engine = FakeEngine(analyze_fails_with=ModelMissing("no weights here (simulated)"),
                        fail_with=OutOfMemory("CUDA out of memory (simulated)"))
    window = make_window(engine)
    window.controller.add_references([images[0]])
    window.controller.open_content(write_image(tmp_path / "photo.png", size=64, seed=7))
    wait_idle(qtbot, window)
    with qtbot.waitSignal(window.controller.queue.failed, timeout=10000):
        window.controller.run()
    assert [topic for topic, _ in window.session.messages] == ["models", "run"]
    window.session.show_error(None, "run")  # a new run withdraws the last run's failure, not the models' notice
    assert [info.kind for _, info in window.session.messages] == ["draft_only"]
