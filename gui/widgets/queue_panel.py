"""The run queue as a list: each run's photo and state (waiting, running N%, done, failed, cancelled), with Up /
Down to reorder the waiting runs, Remove (a waiting or finished run) and Cancel (a waiting or the running run).
It only calls the `RunQueue` model; the controller starts the runs."""
from __future__ import annotations

from PySide6.QtCore import Slot
from PySide6.QtWidgets import QHBoxLayout, QLabel, QListView, QPushButton, QVBoxLayout, QWidget

from ..model.run_queue import FINISHED, RUNNING, WAITING, RunQueue

LIST_HEIGHT = 96  # about four rows: the queue must not push the live preview out of the panel


class QueuePanel(QWidget):
    def __init__(self, runs: RunQueue, parent: QWidget | None = None):
        super().__init__(parent)
        self.runs = runs
        self.list = QListView()
        self.list.setObjectName("runQueue")
        self.list.setModel(runs)
        self.list.setMaximumHeight(LIST_HEIGHT)
        self.list.setToolTip("Runs, one at a time from the top; Run adds the photo as it is now")
        self.up_button = QPushButton("Up")
        self.up_button.setToolTip("Run this waiting run earlier")
        self.down_button = QPushButton("Down")
        self.down_button.setToolTip("Run this waiting run later")
        self.remove_button = QPushButton("Remove")
        self.remove_button.setToolTip("Take a waiting or finished run out of the queue")
        self.cancel_button = QPushButton("Cancel run")
        self.cancel_button.setToolTip("Cancel this run (a running one stops after its current step and keeps its "
                                      "partial result)")
        self.up_button.clicked.connect(lambda: self._move(-1))
        self.down_button.clicked.connect(lambda: self._move(1))
        self.remove_button.clicked.connect(lambda: self.runs.remove(self.selected_row()))
        self.cancel_button.clicked.connect(lambda: self.runs.cancel(self.selected_row()))

        buttons = QHBoxLayout()
        for button in (self.up_button, self.down_button, self.remove_button, self.cancel_button):
            buttons.addWidget(button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(QLabel("Run queue (Run adds to it while a run goes)"))
        layout.addWidget(self.list)
        layout.addLayout(buttons)
        runs.changed.connect(self._update_buttons)
        self.list.selectionModel().currentChanged.connect(self._update_buttons)
        self._update_buttons()

    def selected_row(self) -> int:
        """The current row, or -1 when none."""
        index = self.list.currentIndex()
        return index.row() if index.isValid() else -1

    def select(self, row: int) -> None:
        self.list.setCurrentIndex(self.runs.index(row))

    def _move(self, offset: int) -> None:
        row = self.selected_row()
        if self.runs.move(row, offset):
            self.select(row + offset)  # the selection follows the run

    @Slot()
    def _update_buttons(self) -> None:
        row = self.selected_row()
        run = self.runs.run_at(row)
        state = run.state if run is not None else ""
        self.up_button.setEnabled(state == WAITING and self._waiting(row - 1))
        self.down_button.setEnabled(state == WAITING and self._waiting(row + 1))
        self.remove_button.setEnabled(run is not None and state != RUNNING)
        self.cancel_button.setEnabled(run is not None and state not in FINISHED)

    def _waiting(self, row: int) -> bool:
        run = self.runs.run_at(row)
        return run is not None and run.state == WAITING
