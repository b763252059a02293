"""The instant draft in the window (FakeEngine for the plumbing, the real Engine for the no-model start):
refresh on pin and strength changes, coalescing, never waiting behind a run, the draft-unavailable message,
quick regions labelled as such, and the Help menu's diagnostics, log folder and CPU warning."""
from __future__ import annotations

import json
import threading

import numpy as np
import pytest
from PIL import Image

import gui.drafts
from engine.draft import DraftResult, DraftUnavailable
from engine.errors import ModelMissing
from gui.model.session import PinTarget, Session
from tests.test_gui_support import FakeEngine, make_window, wait_idle, write_image  # noqa: F401 (fixture)

pytest.importorskip("pytestqt")


def open_photo(window, tmp_path, references: int = 2) -> None:
    window.controller.add_references([write_image(tmp_path / "in" / f"ref{i}.png", seed=i) for i in range(references)])
    window.controller.open_content(write_image(tmp_path / "photo.png", size=64, seed=7))


def wait_draft(qtbot, window, check=lambda draft: True, timeout: int = 20000) -> DraftResult:
    qtbot.waitUntil(lambda: window.session.draft is not None and not window.session.drafting
                    and check(window.session.draft), timeout=timeout)
    return window.session.draft


def test_pin_and_strength_changes_refresh_the_draft(make_window, qtbot, tmp_path):
    engine = FakeEngine()
    window = make_window(engine)
    open_photo(window, tmp_path)
    qtbot.waitUntil(lambda: window.session.match_table is not None, timeout=20000)
    first = wait_draft(qtbot, window, lambda d: d.region_source == "method")
    assert window.outputs.currentWidget() is window.draft_panel
    assert window.draft_panel.view.image is not None and window.draft_panel.refine_button.isEnabled()

    other = window.gallery.references[1].id
    window.session.pin(1, PinTarget(other))
    pinned = wait_draft(qtbot, window, lambda d: d is not first)
    assert pinned.matches[1].pinned and pinned.matches[1].style_index == 1
    assert engine.drafts[-1].pins[0].content_region == 1

    window.draft_panel.strength.setValue(40)
    window.draft_panel.preserve.setChecked(True)
    weaker = wait_draft(qtbot, window, lambda d: d.strength == pytest.approx(0.4) and d.preserve_colour)
    assert weaker.matches[1].pinned  # the pin still applies
    wait_idle(qtbot, window)
    window.close()
    again = make_window(FakeEngine())  # the options are preferences: they come back
    assert (again.session.draft_strength, again.session.draft_preserve_colour) == (40, True)
    assert again.draft_panel.strength.value() == 40


def test_bursts_are_coalesced_and_the_latest_state_wins(make_window, qtbot, tmp_path):
    engine = FakeEngine(draft_delay=0.3)
    window = make_window(engine)
    open_photo(window, tmp_path)
    wait_draft(qtbot, window)
    before = len(engine.drafts)
    for value in range(90, 40, -5):  # a slider drag: ten values within a debounce interval
        window.session.draft_strength = value
    wait_draft(qtbot, window, lambda d: d.strength == pytest.approx(0.45))
    qtbot.wait(500)
    assert len(engine.drafts) - before <= 2


def test_a_draft_does_not_wait_behind_a_running_transfer(make_window, qtbot, tmp_path):
    window = make_window(FakeEngine(step_delay=0.05))
    open_photo(window, tmp_path)
    qtbot.waitUntil(lambda: window.session.match_table is not None, timeout=20000)
    wait_draft(qtbot, window)
    window.session.steps = 400
    window.controller.run()
    qtbot.waitUntil(lambda: window.session.progress[0] >= 1, timeout=10000)
    window.session.draft_strength = 30
    wait_draft(qtbot, window, lambda d: d.strength == pytest.approx(0.3), timeout=5000)
    assert window.session.running and window.session.progress[0] < 400
    window.controller.cancel_run()
    wait_idle(qtbot, window)


def test_draft_unavailable_shows_one_message_and_the_rest_works(make_window, qtbot, tmp_path):
    engine = FakeEngine(draft_fails_with=DraftUnavailable("The instant draft needs the Python package onnxruntime, "
                                                          "which is not installed"))
    window = make_window(engine)
    open_photo(window, tmp_path)
    qtbot.waitUntil(lambda: window.session.match_table is not None, timeout=20000)
    qtbot.waitUntil(lambda: bool(window.session.draft_message), timeout=5000)
    panel = window.draft_panel
    assert panel.message.isVisibleTo(window) and "onnxruntime" in panel.message.text()
    assert 'pip install -e ".[draft]"' in panel.message.text()
    assert window.session.error is None  # not a banner: the window works without the draft
    drafts_tried = engine.calls.count("draft method") + engine.calls.count("draft quick")
    window.session.pin(1, PinTarget(window.gallery.references[1].id))
    qtbot.wait(600)
    assert engine.calls.count("draft method") + engine.calls.count("draft quick") == drafts_tried  # not retried
    assert window.content_panel.view.labels is not None and window.generation_panel.run_button.isEnabled()


def test_without_the_model_a_draft_on_quick_regions_and_one_explanation(make_window, qtbot, tmp_path):
    missing = ModelMissing("Stable Diffusion model 'stable-diffusion-v1-5/stable-diffusion-v1-5' was not found in "
                           "the local Hugging Face cache (LocalEntryNotFoundError)")
    engine = FakeEngine(analyze_fails_with=missing)
    window = make_window(engine)
    open_photo(window, tmp_path)
    draft = wait_draft(qtbot, window)
    assert draft.region_source == "quick" and engine.calls.count("draft method") == 0
    assert "quick regions" in window.draft_panel.view.note and "quick regions" in window.draft_panel.caption.text()
    view = window.content_panel.view  # the overlay comes from the draft, and says so
    assert view.labels is draft.labels and "quick regions" in view.note
    assert "quick regions" in window.content_panel.info.text()
    wait_idle(qtbot, window)
    assert window.session.error.message.startswith("Drafts only")
    assert "File > Settings" in window.banner.text() and "5.6 GB" in window.banner.text()
    assert not window.draft_panel.refine_button.isEnabled()

    window.session.selected_region = 2  # pin a quick region to the other reference: the draft follows
    window.gallery_panel.reference_clicked.emit(window.gallery.references[1].id)
    pinned = wait_draft(qtbot, window, lambda d: 2 in d.matches and d.matches[2].pinned)
    assert pinned.matches[2].style_index == 1 and window.session.pins_source == "quick"
    assert window.matches_panel.table.rowCount() == 2

    window.gallery.rename(window.gallery.references[1].id, "Sunset, blue")
    out = tmp_path / "saved-draft.png"
    window.save_draft_to(out)
    with Image.open(out) as saved:
        meta = json.loads(saved.info["stylegallery"])
    assert meta["kind"] == "draft" and meta["regions"]["source"] == "quick"
    assert meta["regions"]["label"].startswith("quick regions")
    names = [ref["name"] for ref in meta["inputs"]["references"]]  # the gallery's names, not its copies' file names
    assert names == [window.gallery.get(ref_id).name for ref_id in window.session.draft_refs]
    assert sorted(names) == ["Sunset, blue", "ref0"]


def test_quick_region_pins_are_cleared_when_the_method_regions_arrive(qtbot, tmp_path):
    session = Session(tmp_path)
    session.open(tmp_path / "photo.png", "abc")
    labels = np.ones((8, 8), np.int64)
    session.draft = DraftResult(np.zeros((8, 8, 3), np.uint8), labels, labels, "quick", "quick", {}, 1.0, False, 0.1)
    assert session.region_source() == "quick"
    session.pin(1, PinTarget("ref-a"))
    assert session.pins_source == "quick" and session.engine_pins(["ref-a"], "method") == []
    assert session.engine_pins(["ref-a"], "quick")[0].content_region == 1
    analysis = FakeEngine().analyze(type("Ref", (), {"path": write_image(tmp_path / "photo.png")})())
    session.analysis = analysis
    assert session.pins == {} and session.pins_source == "method" and not session.undo_stack.canUndo()
    assert "cleared" in session.status


@pytest.mark.slow
def test_real_engine_without_sd_model_drafts_on_quick_regions(make_window, qtbot, tmp_path):
    from engine.api import Engine
    from engine.draft import draft_available
    from engine.params import ModelSource

    if not hasattr(Engine, "draft"):
        pytest.skip("Engine.draft is not in engine/api.py yet")
    if not draft_available()[0]:
        pytest.skip(f"the draft extra is not installed: {draft_available()[1]}")
    absent = str(tmp_path / "no-model")
    engine = Engine(ModelSource(sd=absent, dinov2=absent, depth=absent, offline=True), device="cpu",
                    cache_dir=tmp_path / "cache")
    window = make_window(engine)
    open_photo(window, tmp_path)
    draft = wait_draft(qtbot, window, timeout=60000)
    assert draft.region_source == "quick" and draft.image.shape[2] == 3 and max(draft.image.shape) == 512
    assert "quick regions" in window.content_panel.view.note
    region = int(np.unique(draft.labels)[-1])
    other = 1 - draft.matches[region].style_index
    window.session.pin(region, PinTarget(window.gallery.references[other].id))
    pinned = wait_draft(qtbot, window, lambda d: d.matches[region].pinned, timeout=30000)
    assert pinned.matches[region].style_index == other
    wait_idle(qtbot, window)
    assert window.session.error is not None and window.session.error.message.startswith("Drafts only")


def test_help_copy_diagnostics_and_open_log_folder(make_window, qtbot, tmp_path, monkeypatch):
    from PySide6.QtWidgets import QApplication

    import gui.main_window as main_window

    window = make_window()
    window.app.log_file = tmp_path / "logs" / "stylegallery.log"
    window.app.settings.qsettings.setValue("model/cache_dir", str(tmp_path / "private-cache"))
    window.copy_diagnostics()
    text = QApplication.clipboard().text()
    assert text.startswith("StyleGallery diagnostics") and "model/cache_dir" in text
    assert "private-cache" not in text  # local paths are redacted
    assert "copied" in window.statusBar().currentMessage()

    opened = []
    monkeypatch.setattr(main_window.QDesktopServices, "openUrl", lambda url: opened.append(url.toLocalFile()) or True)
    window.open_log_folder()
    assert opened == [str(tmp_path / "logs")] and (tmp_path / "logs").is_dir()
    wait_idle(qtbot, window)


def test_cpu_speed_warning_shows_once_and_does_not_block(make_window, qtbot, tmp_path):
    engine = FakeEngine()
    engine.device = "cpu"
    window = make_window(engine)
    qtbot.waitUntil(lambda: getattr(window, "speed_box", None) is not None, timeout=10000)
    box = window.speed_box
    assert box.isVisible() and not box.isModal() and "CPU" in box.text() and "draft" in box.informativeText()
    box.close()
    wait_idle(qtbot, window)
    window.close()
    again = make_window(engine)  # the same settings file: not again
    wait_idle(qtbot, again)
    qtbot.wait(100)
    assert getattr(again, "speed_box", None) is None


class StuckDraftEngine(FakeEngine):
    """Its first draft hangs, deaf to cancel (as a draft caught in an endless loop), until `release` is set."""

    def __init__(self):
        super().__init__()
        self.release = threading.Event()
        self.stuck = threading.Event()  # set once the first draft is hanging

    def draft(self, *args, **kwargs):
        if not self.stuck.is_set():
            self.stuck.set()
            self.release.wait(60)
        return super().draft(*args, **kwargs)


@pytest.fixture
def stuck_engine():
    engine = StuckDraftEngine()
    yield engine
    engine.release.set()


def finish_abandoned(window) -> None:
    for thread in window.controller.drafts.threads():
        thread.join(10)


def test_a_stuck_draft_does_not_block_later_drafts_and_its_late_result_is_dropped(make_window, qtbot, tmp_path,
                                                                                  stuck_engine, monkeypatch):
    monkeypatch.setattr(gui.drafts, "DRAFT_GIVE_UP_S", 0.5)
    window = make_window(stuck_engine)
    open_photo(window, tmp_path)
    qtbot.waitUntil(stuck_engine.stuck.is_set, timeout=20000)
    window.session.draft_strength = 40
    later = wait_draft(qtbot, window, lambda d: d.strength == pytest.approx(0.4))
    assert stuck_engine.stuck.is_set() and not stuck_engine.release.is_set()  # the first one is still hanging
    stuck_engine.release.set()
    finish_abandoned(window)
    qtbot.wait(200)  # its result reaches the GUI thread now, and must be dropped
    assert window.session.draft is later


def test_closing_never_waits_on_a_stuck_draft_and_saves(make_window, qtbot, tmp_path, stuck_engine):
    window = make_window(stuck_engine)
    open_photo(window, tmp_path)
    qtbot.waitUntil(stuck_engine.stuck.is_set, timeout=20000)
    window.session.pin(1, PinTarget(window.gallery.references[1].id))
    session_file = window.session.run_folder / "session.json"
    window.close()
    assert not stuck_engine.release.is_set() and window.controller.drafts.threads()  # closed while it hangs
    assert '"region": 1' in session_file.read_text()  # what was pinned is saved
    window.session.draft_strength = 30  # a change after closing starts nothing
    qtbot.wait(gui.drafts.DRAFT_DELAY_MS + 100)
    assert stuck_engine.drafts == []
    stuck_engine.release.set()
    finish_abandoned(window)


def test_past_the_limit_of_abandoned_drafts_no_draft_starts_and_it_says_why(make_window, qtbot, tmp_path,
                                                                            monkeypatch):
    monkeypatch.setattr(gui.drafts, "DRAFT_GIVE_UP_S", 0.2)
    monkeypatch.setattr(gui.drafts, "MAX_ABANDONED_DRAFTS", 1)
    engine = StuckDraftEngine()
    window = make_window(engine)
    open_photo(window, tmp_path)
    qtbot.waitUntil(engine.stuck.is_set, timeout=20000)
    window.session.draft_strength = 40
    qtbot.waitUntil(lambda: window.session.draft_message == gui.drafts.STUCK_MESSAGE, timeout=5000)
    assert engine.drafts == []
    engine.release.set()
    finish_abandoned(window)
