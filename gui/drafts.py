"""The instant draft in the window: kept up to date within about a second of any change, never blocking.

Why a thread of its own: the GPU queue runs one job at a time and a running transfer (minutes) cannot be
interrupted without losing it, so a draft queued behind it would wait minutes. A draft is about a second of
CPU work on the Magenta ONNX networks, so it runs on a thread of its own (below). It asks for the method's
regions only once the photo and every reference taking part are analysed (the engine then reads its cache; it
never starts a stage-1 analysis here), else for quick regions.

Why it stays fresh: changes restart a 300 ms timer (a slider drag is one draft, not fifty); at most one draft
runs, and a change during it cancels it and asks for one more draft made from the state of then (only the
latest request matters).

Why a plain daemon thread per draft, not a QThread: a draft that never comes back (a hang in its code) must
block neither later drafts nor closing the window, and a running QThread can be neither abandoned nor destroyed.
A draft still running DRAFT_GIVE_UP_S after it was cancelled is abandoned (the next one starts; whatever it
returns later is dropped), closing waits at most DRAFT_CLOSE_WAIT_S for it, and past MAX_ABANDONED_DRAFTS still
running no more drafts start (each holds a thread and CPU), with a message saying so. An abandoned draft that
does finish later may race the next one on the engine's draft caches; at worst that draft fails with a message
and the next change drafts again.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QTimer, Slot

from engine.params import DraftParams
from engine.recipe import inputs_document
from engine.results import save_png
from engine.types import DraftRequest, ImageRef

from .model.errors import ErrorInfo
from .model.region_names import regions_text
from .worker import GenerationWorker, Job

log = logging.getLogger(__name__)

DRAFT_DELAY_MS = 300
DRAFT_GIVE_UP_S = 10.0  # a cancelled draft still running this long later is abandoned (a draft takes ~1 s)
DRAFT_CLOSE_WAIT_S = 0.5  # closing the window waits at most this long for a running draft
MAX_ABANDONED_DRAFTS = 2  # abandoned drafts still running; past this no draft starts until a restart
STUCK_MESSAGE = ("Drafts stopped: earlier drafts never finished. Your work is unaffected and is saved; restart "
                 "StyleGallery to see drafts again.")


class DraftController(QObject):
    """Owns the draft threads; watches the session and gallery and keeps `session.draft` current."""

    def __init__(self, controller, parent: QObject | None = None):
        super().__init__(parent)
        self.controller = controller
        self.session, self.gallery = controller.session, controller.gallery
        # Parentless, so that a draft thread outliving this controller still has it to emit through; its signals
        # reach the slots below on the GUI thread (queued: they are emitted from the draft threads).
        self.relay = GenerationWorker()
        self.unavailable: ErrorInfo | None = None  # the draft extra is missing: stop asking until the engine changes
        self._running: Job | None = None  # the one draft whose result counts
        self._thread: threading.Thread | None = None
        self._abandoned: list[threading.Thread] = []
        self._closed = False
        self._again = False
        self._timer = QTimer(self, singleShot=True, interval=DRAFT_DELAY_MS)
        self._timer.timeout.connect(self.draft_now)
        self._give_up = QTimer(self, singleShot=True)
        self._give_up.timeout.connect(self._abandon)
        session = self.session
        for signal in (session.content_changed, session.analysis_changed, session.match_table_changed,
                       session.draft_strength_changed, session.draft_preserve_colour_changed,
                       session.region_override_changed, session.reference_regions_changed, self.gallery.changed,
                       self.gallery.analysis_changed):
            signal.connect(self.schedule)
        session.pins_changed.connect(self.schedule)
        self.relay.done.connect(self._on_done)
        self.relay.failed.connect(self._on_failed)
        self.relay.cancelled.connect(self._on_cancelled)

    def engine_changed(self) -> None:
        """A new engine (settings): try again, even if the last one had no draft."""
        self.unavailable = None
        self.schedule()

    def shutdown(self) -> None:
        """Cancel the running draft and wait for it at most DRAFT_CLOSE_WAIT_S: closing never hangs on a draft.
        A draft still running is left to its daemon thread; its result is dropped."""
        self._closed = True
        self._timer.stop()
        self._give_up.stop()
        if self._running is not None:
            self._running.cancel.set()
            self._thread.join(DRAFT_CLOSE_WAIT_S)
            self._abandoned.append(self._thread)
        self._running = self._thread = None

    def threads(self) -> list[threading.Thread]:
        """The draft threads still alive: the running one and abandoned ones."""
        return [t for t in [self._thread, *self._abandoned] if t is not None and t.is_alive()]

    @Slot()
    def schedule(self) -> None:
        if self.session.content is not None and self.unavailable is None and not self._closed:
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
        if session.content is None or self.unavailable is not None or self._closed:
            return None
        if self._running is not None:
            self._again = True
            self._running.cancel.set()
            if not self._give_up.isActive():
                self._give_up.start(int(DRAFT_GIVE_UP_S * 1000))
            return None
        self._abandoned = [t for t in self._abandoned if t.is_alive()]
        if len(self._abandoned) >= MAX_ABANDONED_DRAFTS:
            session.draft_message = STUCK_MESSAGE
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
        method = source == "method"  # edits are of the method's maps only
        refs = [self.controller.reference_image(i) if method else self.gallery.image_ref(i) for i in ids]
        request = DraftRequest(ImageRef(session.content, region_edit=session.region_edit() if method else None), refs,
                               session.engine_pins(ids, source), regions=source, stage1=self.controller.stage1,
                               draft=DraftParams(strength=session.draft_strength / 100,
                                                 preserve_colour=bool(session.draft_preserve_colour)))
        job = Job("draft", lambda on_event, cancel: engine.draft(request, on_event=on_event, cancel=cancel),
                  key=session.content_sha, context=tuple(ids))
        self._running = job
        self._thread = threading.Thread(target=self.relay.process, args=(job,), name="stylegallery-draft",
                                        daemon=True)
        self._thread.start()
        session.drafting = True
        return job

    @Slot()
    def _abandon(self) -> None:
        """The running draft ignored its cancel for DRAFT_GIVE_UP_S: leave it behind and draft again without it."""
        if self._running is None:
            return
        log.warning("a draft ignored its cancel for %.0f s: abandoned, the next draft starts without it",
                    DRAFT_GIVE_UP_S)
        self._abandoned.append(self._thread)
        self._finished()

    def _finished(self) -> None:
        self._give_up.stop()
        self._running = self._thread = None
        self.session.drafting = False
        if self._again:
            self._again = False
            self.draft_now()

    @Slot(object, object)
    def _on_done(self, job: Job, result: Any) -> None:
        if job is not self._running:  # abandoned, or the window is closing: too late to show
            return
        session = self.session
        if job.key == session.content_sha:  # a newer draft may follow; this one is still better than none
            session.draft_refs = job.context
            session.draft = result
            session.draft_message = ""
        self._finished()

    @Slot(object, object)
    def _on_failed(self, job: Job, info: ErrorInfo) -> None:
        if job is not self._running:
            return
        if info.kind == "draft_unavailable":
            self.unavailable = info
        if job.key == self.session.content_sha:
            self.session.draft = None
            self.session.draft_message = f"{info.message}. {info.hint}".strip() if info.hint else info.message
        self._finished()

    @Slot(object, object)
    def _on_cancelled(self, job: Job, partial: Any) -> None:
        if job is self._running:
            self._finished()


def save_draft(path: Path, draft, content: Path, references: DraftReferences, random_weights: bool) -> Path:
    """The draft as a PNG whose `stylegallery` text chunk says what it is (a draft, its regions named in words)."""
    return save_png(path, draft.image, draft_metadata(draft, content, references, random_weights))


@dataclass(frozen=True)
class DraftReferences:
    """The references a draft was made with, in its matches' order: their files and gallery names."""

    paths: list[Path]
    names: list[str]


def draft_references(session, gallery) -> DraftReferences:
    """The draft's references that are still in the gallery."""
    refs = [ref for ref in map(gallery.get, session.draft_refs) if ref is not None]
    return DraftReferences([gallery.path(ref.id) for ref in refs], [ref.name for ref in refs])


def draft_metadata(draft, content: Path, references: DraftReferences, random_weights: bool) -> dict:
    """What a saved or exported draft says of itself: a draft, its regions named in words, its inputs (the
    references by their gallery names)."""
    meta = draft.metadata()
    meta["regions"]["label"] = regions_text(draft, random_weights)
    if draft.region_source == "method" and random_weights:
        meta["regions"]["random_weights"] = True
    meta["inputs"] = inputs_document(content, references.paths, references.names)  # names and hashes, never paths
    return meta
