"""The job queue: a `GenerationWorker` in a QThread runs one job at a time, the GPU queue (analyses, matches,
transfers). Instant drafts run on daemon threads of their own and report through a `GenerationWorker` too (see
`gui.drafts`: a stuck draft must never hold up closing the window).

Jobs reach the worker as queued signals, so the thread's event loop serialises them (two jobs never share
the device). Cancel is a `threading.Event` per job, set from the GUI thread: a queued "cancel" slot would
never reach a worker busy in a 150-step loop. The worker touches no widget and no QPixmap: it emits plain
Python objects (numpy previews included) and the GUI builds images from copies.
"""
from __future__ import annotations

import dataclasses
import itertools
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from PySide6.QtCore import QObject, QThread, Signal, Slot

from engine.errors import Cancelled
from engine.memory import free_memory
from engine.types import CancelFlag, EventCallback, StepEvent

from .model.errors import ErrorInfo

PREVIEW_INTERVAL_S = 0.1  # at most 10 previews a second reach the GUI
_ids = itertools.count(1)

JobFunction = Callable[[EventCallback, CancelFlag], Any]
JobHandler = Callable[["Job", Any], None]


@dataclass(eq=False)
class Job:
    """One unit of GPU work. `run(on_event, cancel)` calls the engine; `key` says what it is about (a reference id).

    The job carries what to do with its outcome: the queue calls `on_done(job, result)`, `on_failed(job, ErrorInfo)`
    or `on_cancelled(job, partial result or None)` in the GUI thread, before it relays the outcome as a signal.
    """

    kind: str  # what it does, for cancelling by kind: "device", "analyze_content", "match", "transfer", "draft", ...
    run: JobFunction
    key: str = ""
    context: Any = None  # whatever the handlers need when the result comes back
    on_done: JobHandler | None = None
    on_failed: JobHandler | None = None
    on_cancelled: JobHandler | None = None
    id: int = field(default_factory=lambda: next(_ids))
    cancel: threading.Event = field(default_factory=threading.Event)


class PreviewThrottle:
    """Drops previews that come less than `interval` after the last one kept; the first and last always pass."""

    def __init__(self, interval: float = PREVIEW_INTERVAL_S):
        self.interval = interval
        self._last = float("-inf")

    def __call__(self, event: StepEvent) -> StepEvent:
        if event.preview is None:
            return event
        now = time.monotonic()
        if now - self._last >= self.interval or event.step >= event.total:
            self._last = now
            return event
        return dataclasses.replace(event, preview=None)


class GenerationWorker(QObject):
    """Lives in the queue's thread; `process(job)` runs one job and reports through the four signals."""

    step = Signal(object, object)  # job, StepEvent (previews throttled)
    done = Signal(object, object)  # job, result
    failed = Signal(object, object)  # job, ErrorInfo
    cancelled = Signal(object, object)  # job, partial result or None

    @Slot(object)
    def process(self, job: Job) -> None:
        if job.cancel.is_set():
            self.cancelled.emit(job, None)
            return
        throttle = PreviewThrottle()

        def on_event(event: StepEvent) -> None:
            self.step.emit(job, throttle(event))

        try:
            result = job.run(on_event, job.cancel)
        except Cancelled:
            self.cancelled.emit(job, None)
        except Exception as exc:  # every failure becomes a message; the thread must survive it
            info = ErrorInfo.from_exception(exc)
            del exc  # drop the traceback's frames (and their tensors) before freeing memory
            free_memory()  # out of memory above all: give the cached blocks back before the next job
            self.failed.emit(job, info)
        else:
            if getattr(result, "cancelled", False):
                self.cancelled.emit(job, result)
            else:
                self.done.emit(job, result)


class JobQueue(QObject):
    """Owns the worker thread; submit, cancel and shut down from the GUI thread. Relays the worker's signals."""

    submitted = Signal(object)
    step = Signal(object, object)
    done = Signal(object, object)
    failed = Signal(object, object)
    cancelled = Signal(object, object)
    busy_changed = Signal(bool)

    def __init__(self, parent: QObject | None = None, name: str = "stylegallery-gpu"):
        super().__init__(parent)
        self._pending: list[Job] = []
        self._thread = QThread()
        self._thread.setObjectName(name)
        self._worker = GenerationWorker()
        self._worker.moveToThread(self._thread)
        self.submitted.connect(self._worker.process)
        self._worker.step.connect(self._on_step)
        self._worker.done.connect(self._on_done)
        self._worker.failed.connect(self._on_failed)
        self._worker.cancelled.connect(self._on_cancelled)
        self._thread.start()

    @property
    def pending(self) -> list[Job]:
        """Jobs submitted and not yet finished (the first may be running)."""
        return list(self._pending)

    def is_busy(self) -> bool:
        return bool(self._pending)

    def submit(self, job: Job) -> Job:
        if not self._thread.isRunning():
            raise RuntimeError("the job queue was shut down")
        self._pending.append(job)
        if len(self._pending) == 1:
            self.busy_changed.emit(True)
        self.submitted.emit(job)
        return job

    def cancel(self, kind: str | None = None, key: str | None = None) -> None:
        """Cancel pending jobs of `kind` (all kinds when None), optionally only those about `key`."""
        for job in self._pending:
            if (kind is None or job.kind == kind) and (key is None or job.key == key):
                job.cancel.set()

    def shutdown(self) -> None:
        """Cancel everything, stop the thread and wait for it (never leave a running QThread behind)."""
        self.cancel()
        self._thread.quit()
        self._thread.wait()

    def _finish(self, job: Job) -> None:
        if job in self._pending:
            self._pending.remove(job)
            if not self._pending:
                self.busy_changed.emit(False)

    @Slot(object, object)
    def _on_step(self, job: Job, event: StepEvent) -> None:
        self.step.emit(job, event)

    @Slot(object, object)
    def _on_done(self, job: Job, result: Any) -> None:
        self._outcome(job, result, job.on_done, self.done)

    @Slot(object, object)
    def _on_failed(self, job: Job, info: ErrorInfo) -> None:
        self._outcome(job, info, job.on_failed, self.failed)

    @Slot(object, object)
    def _on_cancelled(self, job: Job, partial: Any) -> None:
        self._outcome(job, partial, job.on_cancelled, self.cancelled)

    def _outcome(self, job: Job, value: Any, handler: JobHandler | None, signal: Signal) -> None:
        """The job is finished: its own handler first, then the queue's signal (for whoever else listens)."""
        self._finish(job)
        if handler is not None:
            handler(job, value)
        signal.emit(job, value)
