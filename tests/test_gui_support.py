"""Test doubles and fixtures for the GUI tests (no tests here).

`FakeEngine` stands in for `engine.api.Engine` in GUI plumbing tests only (threads, signals, undo, widgets):
it computes nothing of the method. Tests of a real run use the real Engine on the tiny models.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.images import load_image, pixel_sha256
from engine.params import MatchParams, Stage1Params
from engine.types import Analysis, MatchTable, PairScore, RegionMatch, StepEvent, TransferResult


class FakeEngine:
    """Same calls as Engine. Regions: brightness terciles on a 64x64 grid. Transfer: `step_delay` s per step."""

    def __init__(self, step_delay: float = 0.0, fail_with: Exception | None = None, draft_delay: float = 0.0,
                 draft_fails_with: Exception | None = None, analyze_fails_with: Exception | None = None):
        self.step_delay = step_delay
        self.fail_with = fail_with
        self.draft_delay = draft_delay
        self.draft_fails_with = draft_fails_with
        self.analyze_fails_with = analyze_fails_with
        self.calls: list[str] = []
        self.drafts: list = []  # the DraftRequest of every draft made (not cancelled)
        self.matched: list = []  # the (content, references) ImageRefs of every match

    def device_summary(self) -> str:
        return "CPU: slow"

    def analyze(self, image, params=None, on_event=None, cancel=None) -> Analysis:
        self.calls.append(f"analyze {Path(image.path).name}")
        if self.analyze_fails_with is not None:
            raise self.analyze_fails_with
        img = load_image(image.path)
        grey = np.asarray(img.convert("L").resize((64, 64), Image.NEAREST), np.float32)
        edges = np.quantile(grey, [1 / 3, 2 / 3])
        labels = (np.digitize(grey, edges) + 1).astype(np.int64)
        if on_event is not None:
            on_event(StepEvent("analyze", 1, 1))
        zeros = np.zeros((4, 64, 64), np.float32)
        return Analysis(pixel_sha256(img), labels, zeros[:1], None, zeros, zeros, params or Stage1Params(), "fake")

    def match(self, content, references, pins=None, stage1=None, params=None, on_event=None, cancel=None):
        self.calls.append(f"match {len(references)}")
        self.matched.append((content, list(references)))
        content_ids = self.analyze(content).region_ids
        pairs = []
        for index, ref in enumerate(references):
            for style_region in self.analyze(ref).region_ids:
                for region in content_ids:
                    score = 1.0 / (1 + abs(region - style_region) + index)
                    pairs.append(PairScore(region, index, style_region, score, score, score, score))
        table = MatchTable(pairs, {}, params or MatchParams())
        for region in content_ids:
            best = table.candidates(region)[0]
            table.matches[region] = RegionMatch(region, best.style_index, best.style_region, best.score)
        return table

    def transfer(self, request, on_event=None, cancel=None) -> TransferResult:
        self.calls.append("transfer")
        if self.fail_with is not None:
            raise self.fail_with
        total = request.stage3.steps
        image = np.asarray(load_image(request.content.path).resize((64, 64)), np.uint8)
        done = 0
        for step in range(1, total + 1):
            if cancel is not None and cancel.is_set():
                break
            time.sleep(self.step_delay)
            done = step
            if on_event is not None:
                on_event(StepEvent("transfer", step, total, loss=1.0 / step, preview=(image // step).astype(np.uint8)))
        table = self.match(request.content, request.references)
        return TransferResult(image, np.zeros((4, 64, 64), np.float32), table, [], done, total,
                              cancelled=done < total)


    def draft(self, request, on_event=None, cancel=None):
        """Quick regions: left and right halves (1, 2); method regions: the analysis'. Region r takes reference
        (r - 1) % n unless pinned. The image: the photo darkened by the strength."""
        from engine.draft import DraftResult
        from engine.errors import Cancelled
        from engine.stage2.pins import pin_matches

        regions, params = request.regions, request.draft
        self.calls.append(f"draft {regions}")
        if self.draft_fails_with is not None:
            raise self.draft_fails_with
        deadline = time.monotonic() + self.draft_delay
        while time.monotonic() < deadline:
            if cancel is not None and cancel.is_set():
                raise Cancelled("draft cancelled")
            time.sleep(0.01)
        img = load_image(request.content.path)
        if regions == "quick":
            labels = np.ones((64, 64), np.int64)
            labels[:, 32:] = 2
        else:
            labels = self.analyze(request.content).labels
        count = len(request.references)
        matches = {int(r): RegionMatch(int(r), (int(r) - 1) % count, None, 0.5) for r in np.unique(labels)}
        matches = pin_matches(matches, request.pins, [None] * count)
        size, strength = params.size, params.strength
        image = (np.asarray(img.resize((size, size)), np.float32) * (1 - 0.5 * strength)).astype(np.uint8)
        self.drafts.append(request)
        source = "quick" if regions == "quick" else "method"
        return DraftResult(image, labels, labels, source, source, matches, strength, params.preserve_colour, 0.01)


def write_image(path: Path, size: int = 48, seed: int = 0) -> Path:
    """A small picture with three brightness bands (so FakeEngine finds three regions)."""
    rng = np.random.default_rng(seed)
    base = np.repeat(np.linspace(0, 255, size, dtype=np.float32)[:, None], size, axis=1)
    pixels = np.clip(base[..., None] + rng.normal(0, 4, (size, size, 3)), 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return path


@pytest.fixture
def make_window(qtbot, tmp_path):
    """Builds windows (through the App, as `main.py gui` does) on a temp data folder and settings file; closing them
    waits for their threads."""
    from PySide6.QtCore import QSettings

    from gui.app import open_window
    from gui.settings import AppSettings

    windows = []

    def make(engine=None, data_dir: Path | None = None, settings_file: Path | None = None):
        settings = AppSettings(QSettings(str(settings_file or tmp_path / "settings.ini"), QSettings.Format.IniFormat))
        window = open_window(settings, data_dir or tmp_path / "data", engine=engine if engine is not None else FakeEngine())
        qtbot.addWidget(window)
        windows.append(window)
        return window

    yield make
    for window in windows:
        window.close()
        assert not window.controller.queue._thread.isRunning()
        assert not window.controller.drafts.threads()
    collect_qt_garbage()


def collect_qt_garbage() -> None:
    """Delete this test's closed windows and collect their Python wrappers now, at teardown, so that no Qt
    object of one test is finalised by a garbage collection in the middle of another test's signal emission
    (the app itself has one window per process; a test session has hundreds)."""
    import gc

    from PySide6.QtCore import QCoreApplication, QEvent

    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    QCoreApplication.processEvents()
    gc.collect()


def wait_idle(qtbot, window, timeout: int = 20000) -> None:
    """Until the window's GPU queue has no job left."""
    qtbot.waitUntil(lambda: not window.controller.queue.is_busy(), timeout=timeout)
