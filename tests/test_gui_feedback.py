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
    from gui.wording import plural

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
