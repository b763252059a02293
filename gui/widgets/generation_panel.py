"""Generation controls (SPEC defaults, bound to the session), Run / Cancel, progress, loss, the run queue and the
live preview. Run is never disabled: while a run goes, it queues the photo as it is now."""
from __future__ import annotations

from PySide6.QtCore import Slot
from PySide6.QtWidgets import (QComboBox, QDoubleSpinBox, QFormLayout, QHBoxLayout, QLabel, QProgressBar,
                               QPushButton, QSpinBox, QVBoxLayout, QWidget)

from ..model.properties import bind
from ..model.session import Session
from .images import qimage_from_array
from .queue_panel import QueuePanel
from .region_view import RegionView

FAST_MODE_TIPS = {"none": "SPEC schedule: DDIM, 150 steps", "lcm": "LCM-LoRA: 28 steps x 3 iterations",
                  "hyper": "Hyper-SD LoRA: 28 steps x 3 iterations"}
RANDOM_PREVIEW_NOTE = "RANDOM WEIGHTS: preview of a test model"


class GenerationPanel(QWidget):
    def __init__(self, controller, parent: QWidget | None = None):
        super().__init__(parent)
        self.controller = controller
        session: Session = controller.session
        self.session = session

        self.steps = QSpinBox(minimum=1, maximum=1000)
        self.content_weight = QDoubleSpinBox(minimum=0.0, maximum=10.0, singleStep=0.01, decimals=3)
        self.lr = QDoubleSpinBox(minimum=0.0001, maximum=1.0, singleStep=0.005, decimals=4)
        self.seed = QSpinBox(minimum=0, maximum=2**31 - 1)
        self.fast_mode = QComboBox()
        for mode, tip in FAST_MODE_TIPS.items():
            self.fast_mode.addItem(mode)
            self.fast_mode.setItemData(self.fast_mode.count() - 1, tip, 3)  # Qt.ToolTipRole
        self.fast_mode.setToolTip("Fast modes load a LoRA and their own schedule (SPEC 'Fast modes')")
        for name in ("steps", "content_weight", "lr", "seed"):
            bind(session, name, getattr(self, name), "value")
        bind(session, "fast_mode", self.fast_mode, "currentText")

        self.run_button = QPushButton("Run")
        self.run_button.setObjectName("runButton")
        self.run_button.setToolTip("Start the style transfer, or queue it after the running one (Ctrl+Return)")
        self.run_button.clicked.connect(controller.run)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop the run after the current step (Esc)")
        self.cancel_button.clicked.connect(controller.cancel_run)
        self.progress = QProgressBar()
        self.loss = QLabel("loss –")
        self.loss.setObjectName("lossLabel")
        self.queue_panel = QueuePanel(controller.runs)
        self.preview = RegionView("Live preview")
        self.preview.setObjectName("previewView")
        self.preview.setMinimumSize(128, 128)

        form = QFormLayout()
        form.addRow("Steps", self.steps)
        form.addRow("Content weight", self.content_weight)
        form.addRow("Learning rate", self.lr)
        form.addRow("Seed", self.seed)
        form.addRow("Fast mode", self.fast_mode)
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button, 1)
        buttons.addWidget(self.cancel_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addWidget(self.loss)
        layout.addWidget(self.queue_panel)
        layout.addWidget(self.preview, 1)

        session.running_changed.connect(self._running_changed)
        session.progress_changed.connect(self._progress_changed)
        session.loss_changed.connect(self._loss_changed)
        session.preview_changed.connect(self._preview_changed)
        self._running_changed(session.running)
        self._progress_changed(session.progress)

    @Slot(object)
    def _running_changed(self, running: bool) -> None:
        self.run_button.setText("Add to queue" if running else "Run")
        self.cancel_button.setEnabled(bool(running))

    @Slot(object)
    def _progress_changed(self, progress: tuple[int, int]) -> None:
        step, total = progress  # (0, 0): no run, an empty bar
        self.progress.setMaximum(max(total, 1))
        self.progress.setValue(step)
        self.progress.setFormat(f"{step}/{total}" if total else "")

    @Slot(object)
    def _loss_changed(self, loss: float | None) -> None:
        self.loss.setText("loss –" if loss is None else f"loss {loss:.4f}")

    @Slot(object)
    def _preview_changed(self, preview) -> None:
        self.preview.set_image(None if preview is None else qimage_from_array(preview))
        self.preview.set_note(RANDOM_PREVIEW_NOTE if preview is not None and self.session.random_weights else "")
