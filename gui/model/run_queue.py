"""The run queue: the transfers the artist asked for, one at a time, in the order shown.

A plain list model (no widgets): the queue panel shows it and calls `move`, `remove` and `cancel`; the controller
adds runs, takes `next_waiting` when the device is free and reports each run's progress and outcome. Each run
holds the `TransferRequest` made when it was queued, so later edits of pins or parameters change only the runs
queued after them. Cancelling the running run is the controller's job: the model asks for it by a signal.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path

from PySide6.QtCore import QAbstractListModel, QModelIndex, QObject, QPersistentModelIndex, Qt, Signal

from engine.types import TransferRequest

WAITING, RUNNING, DONE, FAILED, CANCELLED = "waiting", "running", "done", "failed", "cancelled"
FINISHED = (DONE, FAILED, CANCELLED)
_ids = itertools.count(1)


@dataclass(eq=False)
class QueuedRun:
    """One queued transfer: the request as it was when queued, and where its result goes (the photo's history)."""

    request: TransferRequest
    content_sha: str  # the photo's session (its history) the result lands in
    ref_ids: list[str]  # gallery ids of request.references, in order
    state: str = WAITING
    progress: tuple[int, int] = (0, 0)  # (step, total) while running and after
    message: str = ""  # why it failed
    id: int = field(default_factory=lambda: next(_ids))

    @property
    def photo(self) -> Path:
        return Path(self.request.content.path)

    def describe(self) -> str:
        """'photo.jpg: running 40%' and the like, for the list."""
        step, total = self.progress
        if self.state == RUNNING:
            state = f"running {100 * step // total}%" if total else "starting"
        elif self.state == CANCELLED and step:
            state = f"cancelled at step {step}/{total}"
        elif self.state == FAILED:
            state = f"failed: {self.message}" if self.message else "failed"
        else:
            state = self.state
        return f"{self.photo.name}: {state}"


class RunQueue(QAbstractListModel):
    """The queued, running and finished runs, in run order."""

    StateRole = Qt.ItemDataRole.UserRole + 1
    added = Signal(object)  # QueuedRun: a run waits (the controller starts it when the device is free)
    cancel_requested = Signal(object)  # QueuedRun: the running run is to be cancelled
    changed = Signal()  # any change of the list or of a run's state (for buttons that depend on the selection)

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._runs: list[QueuedRun] = []

    # ----- reading
    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self._runs)

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or not 0 <= index.row() < len(self._runs):
            return None
        run = self._runs[index.row()]
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.ToolTipRole):
            return run.describe()
        if role == self.StateRole:
            return run.state
        return None

    @property
    def runs(self) -> list[QueuedRun]:
        return list(self._runs)

    def run_at(self, row: int) -> QueuedRun | None:
        return self._runs[row] if 0 <= row < len(self._runs) else None

    def next_waiting(self) -> QueuedRun | None:
        """The run to start next: the first waiting one in the list's order."""
        return next((run for run in self._runs if run.state == WAITING), None)

    def running(self) -> QueuedRun | None:
        return next((run for run in self._runs if run.state == RUNNING), None)

    def waiting_count(self) -> int:
        return sum(run.state == WAITING for run in self._runs)

    # ----- the artist's edits
    def add(self, run: QueuedRun) -> None:
        row = len(self._runs)
        self.beginInsertRows(QModelIndex(), row, row)
        self._runs.append(run)
        self.endInsertRows()
        self.changed.emit()
        self.added.emit(run)

    def move(self, row: int, offset: int) -> bool:
        """Swap a waiting run with its waiting neighbour `offset` (-1 up, +1 down) rows away: the running and
        finished runs keep their places. False when it cannot move."""
        other = row + offset
        if offset not in (-1, 1) or not (0 <= row < len(self._runs) and 0 <= other < len(self._runs)):
            return False
        if self._runs[row].state != WAITING or self._runs[other].state != WAITING:
            return False
        first = min(row, other)
        self.beginMoveRows(QModelIndex(), first + 1, first + 1, QModelIndex(), first)
        self._runs[first], self._runs[first + 1] = self._runs[first + 1], self._runs[first]
        self.endMoveRows()
        self.changed.emit()
        return True

    def remove(self, row: int) -> bool:
        """Take a waiting or finished run out of the list (a running one must be cancelled first)."""
        run = self.run_at(row)
        if run is None or run.state == RUNNING:
            return False
        self.beginRemoveRows(QModelIndex(), row, row)
        del self._runs[row]
        self.endRemoveRows()
        self.changed.emit()
        return True

    def cancel(self, row: int) -> bool:
        """Cancel a run: a waiting one at once, the running one at its next step (by the controller)."""
        run = self.run_at(row)
        if run is None or run.state in FINISHED:
            return False
        if run.state == RUNNING:
            self.cancel_requested.emit(run)
        else:
            self.update(run, CANCELLED)
        return True

    def cancel_waiting(self) -> None:
        """Cancel every run not started yet (the window closes)."""
        for run in self._runs:
            if run.state == WAITING:
                self.update(run, CANCELLED)

    # ----- the controller's reports
    def update(self, run: QueuedRun, state: str | None = None, progress: tuple[int, int] | None = None,
               message: str = "") -> None:
        """A run's new state and/or progress; rows not in the list any more are ignored."""
        if run not in self._runs:
            return
        if state is not None:
            run.state = state
        if progress is not None:
            run.progress = progress
        if message:
            run.message = message
        index = self.index(self._runs.index(run))
        self.dataChanged.emit(index, index)
        self.changed.emit()
