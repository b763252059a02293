"""The instant draft in the window: kept up to date within about a second of any change, never blocking.

Why a thread of its own: the GPU queue runs one job at a time and a running transfer (minutes) cannot be
interrupted without losing it, so a draft queued behind it would wait minutes. A draft is about a second of
CPU work on the Magenta ONNX networks, so it runs on a second, light `JobQueue` thread. It asks for the method's
regions only once the photo and every reference taking part are analysed (the engine then reads its cache; it
never starts a stage-1 analysis here), else for quick regions.

Why it stays fresh: changes restart a 300 ms timer (a slider drag is one draft, not fifty); at most one draft
runs, and a change during it cancels it and asks for one more draft made from the state of then (only the
latest request matters).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QTimer, Slot

from engine.params import DraftParams
from engine.results import save_png
from engine.types import DraftRequest, ImageRef

from .model.errors import ErrorInfo
from .model.region_names import regions_text
from .worker import Job, JobQueue

DRAFT_DELAY_MS = 300


class DraftController(QObject):
    """Owns the draft thread; watches the session and gallery and keeps `session.draft` current."""

    def __init__(self, controller, parent: QObject | None = None):
        super().__init__(parent)
        self.controller = controller
        self.session, self.gallery = controller.session, controller.gallery
        self.queue = JobQueue(self, name="stylegallery-draft")
        self.unavailable: ErrorInfo | None = None  # the draft extra is missing: stop asking until the engine changes
        self._running: Job | None = None
        self._again = False
        self._timer = QTimer(self, singleShot=True, interval=DRAFT_DELAY_MS)
        self._timer.timeout.connect(self.draft_now)
        session = self.session
        for signal in (session.content_changed, session.analysis_changed, session.match_table_changed,
                       session.draft_strength_changed, session.draft_preserve_colour_changed,
                       session.region_override_changed, self.gallery.changed,
                       self.gallery.analysis_changed):
            signal.connect(self.schedule)
        session.pins_changed.connect(self.schedule)
        self.queue.done.connect(self._on_done)
        self.queue.failed.connect(self._on_failed)
        self.queue.cancelled.connect(self._on_cancelled)

    def engine_changed(self) -> None:
        """A new engine (settings): try again, even if the last one had no draft."""
        self.unavailable = None
        self.schedule()

    def shutdown(self) -> None:
        self._timer.stop()
        self.queue.shutdown()

    @Slot()
    def schedule(self) -> None:
        if self.session.content is not None and self.unavailable is None:
            self._timer.start()

    def region_source(self, ids: list[str]) -> str:
        """"method" when the engine has every analysis cached (a draft must never wait for stage 1), else "quick"."""
        if self.session.analysis is None or not self.session.match_refs:
            return "quick"
        return "method" if all(self.gallery.analysis(i) is not None for i in ids) else "quick"

    @Slot()
    def draft_now(self) -> Job | None:
        """Start a draft of the current state; with one running, cancel it and start again when it ends."""
        session = self.session
        if session.content is None or self.unavailable is not None:
            return None
        if self._running is not None:
            self._again = True
            self._running.cancel.set()
            return None
        ids = self.controller.participants()
        if not ids:
            session.draft, session.draft_message = None, "Check a reference in the gallery to see a draft."
            return None
        engine = self.controller.engine
        if engine is None:
            session.draft_message = "No engine: see the message above the photo."
            return None
        source = self.region_source(ids)
        # stage1: the analyses' own settings, so the method's regions come from the cache
        edit = session.region_edit() if source == "method" else None  # an edit of the method's map only
        request = DraftRequest(ImageRef(session.content, region_edit=edit), [self.gallery.image_ref(i) for i in ids],
                               session.engine_pins(ids, source), regions=source, stage1=self.controller.stage1,
                               draft=DraftParams(strength=session.draft_strength / 100,
                                                 preserve_colour=bool(session.draft_preserve_colour)))
        job = Job("draft", lambda on_event, cancel: engine.draft(request, on_event=on_event, cancel=cancel),
                  key=session.content_sha, context=tuple(ids))
        self._running = self.queue.submit(job)
        session.drafting = True
        return job

    def _finished(self) -> None:
        self._running = None
        self.session.drafting = False
        if self._again:
            self._again = False
            self.draft_now()

    @Slot(object, object)
    def _on_done(self, job: Job, result: Any) -> None:
        session = self.session
        if job.key == session.content_sha:  # a newer draft may follow; this one is still better than none
            session.draft_refs = job.context
            session.draft = result
            session.draft_message = ""
        self._finished()

    @Slot(object, object)
    def _on_failed(self, job: Job, info: ErrorInfo) -> None:
        if info.kind == "draft_unavailable":
            self.unavailable = info
        if job.key == self.session.content_sha:
            self.session.draft = None
            self.session.draft_message = f"{info.message}. {info.hint}".strip() if info.hint else info.message
        self._finished()

    @Slot(object, object)
    def _on_cancelled(self, job: Job, partial: Any) -> None:
        self._finished()


def save_draft(path: Path, draft, content: Path, references: list[Path], random_weights: bool) -> Path:
    """The draft as a PNG whose `stylegallery` text chunk says what it is (a draft, its regions named in words)."""
    meta = draft.metadata()
    meta["regions"]["label"] = regions_text(draft, random_weights)
    if draft.region_source == "method" and random_weights:
        meta["regions"]["random_weights"] = True
    meta["inputs"] = {"content": str(content), "references": [str(p) for p in references]}
    return save_png(path, draft.image, meta)
