"""GUI model and worker plumbing without a window: properties and bindings, pins through the undo stack,
session and gallery persistence, the GPU job queue (signals, throttled previews, cancel, failures)."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from PySide6.QtWidgets import QSlider

from engine.errors import Cancelled, OutOfMemory
from engine.types import StepEvent
from gui.model.gallery import Gallery
from gui.model.session import PinTarget, Session
from gui.worker import Job, JobQueue, PreviewThrottle
from tests.test_gui_support import write_image

pytest.importorskip("pytestqt")


@pytest.fixture
def queue(qtbot):
    q = JobQueue()
    yield q
    q.shutdown()
    assert not q._thread.isRunning()


def test_property_ignores_equal_values_and_binds_both_ways(qtbot, tmp_path):
    session = Session(tmp_path)
    seen = []
    session.opacity_changed.connect(seen.append)
    session.opacity = session.opacity
    assert seen == []
    slider = QSlider()
    qtbot.addWidget(slider)
    slider.setRange(0, 100)
    from gui.model.properties import bind

    bind(session, "opacity", slider, "value")
    assert slider.value() == session.opacity
    slider.setValue(12)
    assert session.opacity == 12 and seen == [12]
    session.opacity = 80
    assert slider.value() == 80


def test_pins_undo_redo_emit_the_same_signals(qtbot, tmp_path):
    session = Session(tmp_path)
    session.open(tmp_path / "photo.png", "abc")
    emitted = []
    session.pins_changed.connect(lambda: emitted.append(dict(session.pins)))
    session.pin(1, PinTarget("r1", 2))
    session.pin(1, PinTarget("r2"))
    session.pin(1, PinTarget("r2"))  # unchanged: no command
    assert session.undo_stack.count() == 2
    session.undo_stack.undo()
    assert session.pins == {1: PinTarget("r1", 2)}
    session.undo_stack.undo()
    assert session.pins == {}
    session.undo_stack.redo()
    assert session.pins == {1: PinTarget("r1", 2)}
    assert len(emitted) == 5  # two edits, two undos, one redo: each through the same setter
    session.pin(3, PinTarget("r3"))
    session.clear_pins()
    assert session.pins == {}
    session.undo_stack.undo()  # one step for "clear all"
    assert set(session.pins) == {1, 3}


def test_session_saves_pins_params_and_history(qtbot, tmp_path):
    session = Session(tmp_path)
    session.open(tmp_path / "photo.png", "abc")
    session.pin(2, PinTarget("r1", 4))
    session.fast_mode = "lcm"  # loads the fast mode's SPEC numbers
    assert (session.steps, session.lr, session.content_weight) == (28, 0.25, 0.33)
    session.seed = 7
    qtbot.waitUntil(session.undo_stack.isClean, timeout=3000)  # autosave marks it clean
    again = Session(tmp_path)
    again.open(tmp_path / "photo.png", "abc")
    assert again.pins == {2: PinTarget("r1", 4)}
    assert (again.fast_mode, again.steps, again.seed) == ("lcm", 28, 7)
    stage3 = again.stage3()
    assert stage3.iters_per_step == 3 and stage3.seed == 7
    assert again.engine_pins(["r0", "r1"])[0].style_index == 1
    assert again.engine_pins(["r0"]) == []  # a pin to a reference not in the run is left out


def test_gallery_add_rename_family_enable_and_reload(qtbot, tmp_path):
    gallery = Gallery(tmp_path / "g")
    files = [write_image(tmp_path / f"a{i}.png", seed=i) for i in range(3)]
    added, problems = gallery.add_paths(files + [files[0]])
    assert len(added) == 3 and [p.kind for p in problems] == ["duplicate"]
    gallery.rename(added[0], "Sunset")
    gallery.set_family(added[1], "Ink")
    gallery.set_enabled(added[2], False)
    again = Gallery(tmp_path / "g")
    assert [(r.name, r.family, r.enabled) for r in again.references] == [
        ("Sunset", "", True), ("a1", "Ink", True), ("a2", "", False)]
    assert [r.id for r in again.enabled()] == added[:2]


def test_gallery_never_overwrites_an_unreadable_index(qtbot, tmp_path):
    gallery = Gallery(tmp_path / "g")
    gallery.add_paths([write_image(tmp_path / "a.png")])
    gallery.add_paths([write_image(tmp_path / "c.png", seed=5)])
    index = tmp_path / "g" / "index.json"
    for path in (index, index.with_name("index.json.bak")):
        path.write_text("{ damaged")
    broken = Gallery(tmp_path / "g")
    assert broken.load_error is not None and str(index) in broken.load_error.message
    broken.add_paths([write_image(tmp_path / "b.png", seed=3)])
    kept = list((tmp_path / "g").glob("index.json*.damaged-*"))
    assert len(kept) == 2 and all(p.read_text() == "{ damaged" for p in kept)  # kept aside, never overwritten


def test_queue_runs_jobs_in_order_with_steps_and_results(queue, qtbot):
    threads = []

    def work(on_event, cancel):
        threads.append(threading.get_ident())
        for step in (1, 2, 3):
            on_event(StepEvent("transfer", step, 3, loss=float(step)))
        return "result"

    steps = []
    queue.step.connect(lambda job, event: steps.append(event.step))
    with qtbot.waitSignals([queue.done, queue.done], timeout=5000):
        queue.submit(Job("a", work))
        queue.submit(Job("b", work))
    assert steps == [1, 2, 3, 1, 2, 3]
    assert threads[0] == threads[1] != threading.get_ident()
    assert not queue.is_busy()


def test_queue_cancel_stops_a_running_job_and_skips_queued_ones(queue, qtbot):
    started = threading.Event()

    def slow(on_event, cancel):
        started.set()
        while not cancel.is_set():
            time.sleep(0.01)
        raise Cancelled("stopped")

    running = queue.submit(Job("transfer", slow))
    waiting = queue.submit(Job("transfer", lambda on_event, cancel: "never"))
    assert started.wait(5)
    cancelled = []
    queue.cancelled.connect(lambda job, partial: cancelled.append(job))
    with qtbot.assertNotEmitted(queue.done), qtbot.waitSignals([queue.cancelled, queue.cancelled], timeout=5000):
        queue.cancel("transfer")
    assert cancelled == [running, waiting]


def test_queue_reports_failures_and_keeps_working(queue, qtbot):
    def oom(on_event, cancel):
        raise OutOfMemory("CUDA out of memory (simulated)")

    def bug(on_event, cancel):
        raise ValueError("boom")

    infos = []
    queue.failed.connect(lambda job, info: infos.append(info))
    with qtbot.waitSignals([queue.failed, queue.failed, queue.done], timeout=30000):
        queue.submit(Job("transfer", oom))
        queue.submit(Job("transfer", bug))
        queue.submit(Job("device", lambda on_event, cancel: "CPU: slow"))
    assert [i.kind for i in infos] == ["out_of_memory", "internal"]
    assert infos[0].hint and "boom" in infos[1].message


def test_each_job_outcome_reaches_that_jobs_own_handler_before_the_signal(queue, qtbot):
    """Done, failed and cancelled each call the job's handler (in the GUI thread), no other job's."""
    calls = []

    def handlers(name: str) -> dict:
        return {f"on_{outcome}": (lambda job, value, outcome=outcome: calls.append(
            (name, outcome, threading.get_ident(), value if outcome == "done" else None)))
            for outcome in ("done", "failed", "cancelled")}

    def fail(on_event, cancel):
        raise ValueError("boom")

    signals = []
    queue.done.connect(lambda job, result: signals.append(("done", len(calls))))
    skipped = Job("skipped", lambda on_event, cancel: "never", **handlers("skipped"))
    skipped.cancel.set()
    with qtbot.waitSignals([queue.done, queue.failed, queue.cancelled], timeout=10000):
        queue.submit(Job("works", lambda on_event, cancel: 42, **handlers("works")))
        queue.submit(Job("fails", fail, **handlers("fails")))
        queue.submit(skipped)
    gui = threading.get_ident()
    assert calls == [("works", "done", gui, 42), ("fails", "failed", gui, None), ("skipped", "cancelled", gui, None)]
    assert signals == [("done", 1)]  # the handler ran before the signal


def test_preview_throttle_keeps_first_and_last():
    throttle = PreviewThrottle(interval=10.0)
    preview = np.zeros((4, 4, 3), np.uint8)
    kept = [throttle(StepEvent("transfer", s, 5, preview=preview)).preview is not None for s in range(1, 6)]
    assert kept == [True, False, False, False, True]


def test_settings_round_trip_reads_bools_as_bools(qtbot, tmp_path):
    from PySide6.QtCore import QSettings

    from engine.models import random_weights
    from gui.settings import AppSettings, Preferences

    path = str(tmp_path / "s.ini")
    settings = AppSettings(QSettings(path, QSettings.Format.IniFormat))
    assert settings.preferences() == Preferences() and settings.first_run_done is False
    prefs = Preferences(sd=str(tmp_path / "model.safetensors"), offline=True, device="cpu", precision="fp32")
    settings.set_preferences(prefs)
    settings.first_run_done = True
    again = AppSettings(QSettings(path, QSettings.Format.IniFormat))  # the .ini stores "true" as text
    assert again.preferences() == prefs and again.first_run_done is True
    assert not random_weights(prefs.model_source())
    (tmp_path / "manifest.json").write_text('{"random_weights": true}')
    assert random_weights(prefs.model_source())


def test_app_root_builds_the_models_without_a_window_and_keeps_preferences_in_qsettings(qtbot, tmp_path):
    """The composition root is usable headless: the draft options and the CPU notice live in QSettings only."""
    from PySide6.QtCore import QSettings

    from gui.app import App
    from gui.settings import AppSettings, Preferences
    from tests.test_gui_support import FakeEngine

    path = str(tmp_path / "s.ini")
    app = App(AppSettings(QSettings(path, QSettings.Format.IniFormat)), tmp_path / "data", engine=FakeEngine())
    app.session.draft_strength, app.session.draft_preserve_colour = 40, True
    notices = []
    app.speed_notice.connect(notices.append)
    app.controller.speed_warning.emit("slow")
    app.controller.speed_warning.emit("slow")
    assert notices == ["slow"]
    app.apply_preferences(Preferences(device="cpu", offline=True))
    app.close(b"")
    again = AppSettings(QSettings(path, QSettings.Format.IniFormat))
    assert again.draft_options() == (40, True) and again.cpu_warning_shown
    assert again.preferences() == Preferences(device="cpu", offline=True)
    assert not app.controller.queue._thread.isRunning()


@pytest.mark.parametrize("exc", [MemoryError(), RuntimeError("CUDA error: out of memory"),
                                 RuntimeError("[enforce fail at alloc_cpu.cpp:114] DefaultCPUAllocator: not enough "
                                              "memory: you tried to allocate 1073741824 bytes.")])
def test_every_out_of_memory_the_engine_knows_is_shown_as_out_of_memory(exc):
    """The window's error mapping and the engine's guard agree on what running out of memory looks like."""
    from gui.model.errors import ErrorInfo

    info = ErrorInfo.from_exception(exc)
    assert info.kind == OutOfMemory.kind and info.hint
