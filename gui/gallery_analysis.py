"""Stage 1 for the gallery references no photo needs yet, in the background, so a first start is not an hour long.

At start the controller analyses the photo and the references taking part in its runs; every other reference
waits here. One of them is submitted to the device queue only while that queue is idle, so whatever the artist
asks for next waits for at most one reference analysis, and a reference that becomes part of a run (checked,
pinned) goes before the others. Stopping clears the list; the analyses already done are in the engine's disk
cache, so the next start resumes where this one stopped (done references come back from the cache at once).
Progress (done, total) is published on the gallery model.
"""
from __future__ import annotations

from typing import Any

from PySide6.QtCore import QObject, QTimer, Slot

from .worker import Job

KIND = "analyze_gallery"


class GalleryAnalysis(QObject):
    """Feeds the controller's device queue one background reference analysis at a time, when it is idle."""

    def __init__(self, controller, parent: QObject | None = None):
        super().__init__(parent)
        self.controller, self.gallery, self.queue = controller, controller.gallery, controller.queue
        self._pending: list[str] = []
        self._running: Job | None = None
        self._done = 0
        self._feed_timer = QTimer(self, singleShot=True, interval=0)  # after the queue's own signal handling
        self._feed_timer.timeout.connect(self._feed)
        self.queue.busy_changed.connect(self._queue_busy)
        self.gallery.changed.connect(self._gallery_changed)

    @property
    def pending(self) -> list[str]:
        """Reference ids still to analyse (the running one not included)."""
        return list(self._pending)

    def start(self, ref_ids: list[str]) -> None:
        """Analyse `ref_ids` (those without an analysis) in the background, replacing any earlier list."""
        self._pending = [i for i in ref_ids if self.gallery.analysis(i) is None]
        self._done = 0
        self._publish()
        self._feed_timer.start()

    def stop(self) -> None:
        """Stop: nothing more is submitted and the running analysis is cancelled (it is redone next time)."""
        self._pending.clear()
        if self._running is not None:
            self._running.cancel.set()
        self._publish()

    @Slot(bool)
    def _queue_busy(self, busy: bool) -> None:
        if not busy:
            self._feed_timer.start()

    @Slot()
    def _gallery_changed(self) -> None:
        """Removed references leave the list."""
        self._pending = [i for i in self._pending if self.gallery.get(i) is not None]
        self._publish()

    @Slot()
    def _feed(self) -> None:
        if self._running is not None or self.queue.is_busy() or not self._pending:
            return
        wanted = set(self.controller.participants())
        ref_id = next((i for i in self._pending if i in wanted), self._pending[0])
        self._pending.remove(ref_id)
        if self.gallery.analysis(ref_id) is not None or self.gallery.is_missing(ref_id):
            self._done += 1  # analysed meanwhile (in the foreground), or its image went away: nothing to do
            self._publish()
            self._feed_timer.start()
            return
        ref, stage1 = self.gallery.image_ref(ref_id), self.controller.stage1
        self._running = self.controller._submit(KIND, lambda engine, on_event, cancel: engine.analyze(
            ref, stage1, on_event=on_event, cancel=cancel), self._done_one, key=ref_id, on_failed=self._ended,
            on_cancelled=self._ended)
        if self._running is None:  # no engine: the controller has said why
            self._pending.clear()
        self._publish()

    def _done_one(self, job: Job, result: Any) -> None:
        self._running = None
        self.gallery.set_analysis(job.key, result)
        self._done += 1
        self._publish()
        self.controller.schedule_match()
        self._feed_timer.start()

    def _ended(self, job: Job, _outcome: Any) -> None:
        """Failed (the controller shows why; one failure stops the pass, not one message per image) or stopped."""
        self._running = None
        self._pending.clear()
        self._publish()

    def _publish(self) -> None:
        remaining = len(self._pending) + (self._running is not None)
        self.gallery.set_background_progress((self._done, self._done + remaining) if remaining else None)
