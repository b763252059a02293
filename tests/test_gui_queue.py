"""The window's run queue with a FakeEngine (plumbing only): Run queues while another run goes, runs go one at a
time in the list's order, the order can be changed, waiting runs removed or cancelled and the running one
cancelled; each result lands in its own photo's history; a queued run keeps the parameters it was queued with;
closing with runs waiting asks first. Offscreen Qt."""
from __future__ import annotations

from pathlib import Path

import pytest

from gui.model.run_queue import CANCELLED, DONE, RUNNING, WAITING
from tests.test_gui_support import FakeEngine, make_window, wait_idle, write_image  # noqa: F401 (fixture)

pytest.importorskip("pytestqt")

LONG_RUN = 400  # steps of a run that is still going when the test queues the next ones (cancelled at the end)


class RecordingEngine(FakeEngine):
    """A FakeEngine that notes the photo of each transfer as it starts."""

    def __init__(self):
        super().__init__(step_delay=0.02)
        self.started: list[str] = []

    def transfer(self, request, on_event=None, cancel=None):
        self.started.append(Path(request.content.path).name)
        return super().transfer(request, on_event, cancel)


@pytest.fixture
def photos(tmp_path) -> list[Path]:
    return [write_image(tmp_path / "photos" / f"{name}.png", size=64, seed=10 + index)
            for index, name in enumerate("abcd")]


def queue_photo(window, photo: Path, steps: int):
    """Open `photo`, set its steps and press Run."""
    assert window.controller.open_content(photo)
    window.session.steps = steps
    window.generation_panel.run_button.click()
    return window.controller.runs.runs[-1]


def start_long_run(window, qtbot, photo: Path, tmp_path):
    window.controller.add_references([write_image(tmp_path / "refs" / f"ref{i}.png", seed=i) for i in range(2)])
    queue_photo(window, photo, LONG_RUN)
    qtbot.waitUntil(lambda: window.session.progress[0] >= 1, timeout=10000)


def history_of(window, photo: Path):
    assert window.controller.open_content(photo)
    return window.session.history


def test_three_runs_go_in_order_one_is_cancelled_and_each_lands_in_its_photos_history(make_window, qtbot, photos,
                                                                                        tmp_path):
    engine = RecordingEngine()
    window = make_window(engine)
    runs, panel = window.controller.runs, window.generation_panel.queue_panel
    start_long_run(window, qtbot, photos[0], tmp_path)
    b, c, d = (queue_photo(window, photo, steps) for photo, steps in zip(photos[1:], (3, 4, 5)))
    window.session.steps = 9  # after queueing: d keeps the 5 steps it was queued with
    assert [run.state for run in runs.runs] == [RUNNING, WAITING, WAITING, WAITING]
    assert runs.data(runs.index(0)).startswith("a.png: running ")

    panel.select(1)
    panel.cancel_button.click()  # b, waiting: never starts
    panel.select(0)
    panel.cancel_button.click()  # a, running: stops at its next step with a partial result
    qtbot.waitUntil(lambda: all(run.state in (DONE, CANCELLED) for run in runs.runs), timeout=20000)
    wait_idle(qtbot, window)
    assert engine.started == ["a.png", "c.png", "d.png"]
    assert [run.state for run in runs.runs] == [CANCELLED, CANCELLED, DONE, DONE]
    assert runs.data(runs.index(2)) == "c.png: done"

    assert window.session.content == photos[3] and window.session.result.steps_total == 5  # d: open, shown
    cancelled_a = history_of(window, photos[0])
    assert len(cancelled_a) == 1 and cancelled_a[0].cancelled and cancelled_a[0].steps_done < LONG_RUN
    assert history_of(window, photos[1]) == []
    done_c = history_of(window, photos[2])
    assert len(done_c) == 1 and not done_c[0].cancelled and done_c[0].steps_done == 4
    assert (window.session.run_folder / done_c[0].file).is_file()
    assert b.state == CANCELLED and c.state == d.state == DONE


def test_reordering_changes_the_run_order_and_a_removed_run_never_starts(make_window, qtbot, photos, tmp_path):
    engine = RecordingEngine()
    window = make_window(engine)
    runs, panel = window.controller.runs, window.generation_panel.queue_panel
    start_long_run(window, qtbot, photos[0], tmp_path)
    for photo in photos[1:]:
        queue_photo(window, photo, 3)
    panel.select(3)
    assert panel.up_button.isEnabled() and not panel.down_button.isEnabled()
    panel.up_button.click()  # d before c
    assert panel.selected_row() == 2  # the selection follows the run
    panel.select(1)
    assert not panel.up_button.isEnabled()  # the running run keeps its place
    panel.remove_button.click()  # b
    panel.select(0)
    assert not panel.remove_button.isEnabled()  # a running run is cancelled, not removed
    assert [run.photo.name for run in runs.runs] == ["a.png", "d.png", "c.png"]
    window.controller.cancel_run()
    qtbot.waitUntil(lambda: runs.waiting_count() == 0 and runs.running() is None, timeout=20000)
    wait_idle(qtbot, window)
    assert engine.started == ["a.png", "d.png", "c.png"]


def test_closing_with_runs_waiting_asks_first(make_window, qtbot, photos, tmp_path, monkeypatch):
    window = make_window(RecordingEngine())
    start_long_run(window, qtbot, photos[0], tmp_path)
    queue_photo(window, photos[1], 3)
    window.show()
    asked = []
    monkeypatch.setattr(window, "close_with_waiting_runs", lambda waiting: asked.append(waiting) or len(asked) > 1)
    assert not window.close()  # first answer: keep the window open; the queue goes on
    assert window.isVisible() and window.controller.runs.waiting_count() == 1 and asked == [1]
    assert window.close()
    assert not window.isVisible() and not window.controller.queue._thread.isRunning()
