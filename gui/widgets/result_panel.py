"""The result compared with the content (before/after slider or side by side), Save, and this photo's run history."""
from __future__ import annotations

from PySide6.QtCore import QRectF, QSize, Qt, Signal, Slot
from PySide6.QtGui import QColor, QIcon, QImage, QPainter, QPen, QPixmap
from PySide6.QtWidgets import (QComboBox, QHBoxLayout, QLabel, QListWidget, QListWidgetItem, QPushButton,
                               QSizePolicy, QSplitter, QVBoxLayout, QWidget)

from engine.wording import count
from engine.errors import StyleGalleryError

from ..model.session import RunRecord, Session
from .images import load_qimage
from .region_view import paint_note

RANDOM_RESULT_NOTE = "Made with RANDOM-WEIGHT test models: not a real style transfer"


class CompareView(QWidget):
    """Before (left of the handle) and after (right); drag to move the handle. Or both side by side. A drag that
    leaves the view takes the result out of the window (`drag_out`)."""

    drag_out = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._dragging_out = False
        self.before: QImage | None = None
        self.after: QImage | None = None
        self.side_by_side = False
        self.split = 0.5
        self.note = ""
        self.setMinimumSize(200, 160)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    def set_images(self, before: QImage | None, after: QImage | None, note: str = "") -> None:
        self.before, self.after, self.note = before, after, note
        self.update()

    def set_side_by_side(self, on: bool) -> None:
        self.side_by_side = on
        self.update()

    def _fit(self, image: QImage, area: QRectF) -> QRectF:
        scale = min(area.width() / image.width(), area.height() / image.height())
        w, h = image.width() * scale, image.height() * scale
        return QRectF(area.left() + (area.width() - w) / 2, area.top() + (area.height() - h) / 2, w, h)

    def paintEvent(self, event) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
        area = QRectF(self.rect())
        if self.after is None:
            painter.setPen(self.palette().placeholderText().color())
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, "The result appears here after a run")
            return
        if self.side_by_side or self.before is None:
            halves = [QRectF(area.left(), area.top(), area.width() / 2 - 2, area.height()),
                      QRectF(area.center().x() + 2, area.top(), area.width() / 2 - 2, area.height())]
            if self.before is None:
                halves = [area]
            else:
                painter.drawImage(self._fit(self.before, halves[0]), self.before)
            target = self._fit(self.after, halves[-1])
            painter.drawImage(target, self.after)
        else:
            target = self._fit(self.after, area)
            painter.drawImage(target, self.before)
            x = target.left() + target.width() * self.split
            painter.save()
            painter.setClipRect(QRectF(x, target.top(), target.right() - x, target.height()))
            painter.drawImage(target, self.after)
            painter.restore()
            painter.setPen(QPen(QColor("white"), 2))
            painter.drawLine(int(x), int(target.top()), int(x), int(target.bottom()))
        if self.note:
            paint_note(painter, target, self.note)

    def mousePressEvent(self, event) -> None:
        self._dragging_out = False
        self._drag(event.position().x())

    def mouseMoveEvent(self, event) -> None:
        if not event.buttons() & Qt.MouseButton.LeftButton or self._dragging_out:
            return
        if self.after is not None and not self.rect().contains(event.position().toPoint()):
            self._dragging_out = True  # once per press: the drag runs until dropped
            self.drag_out.emit()
        else:
            self._drag(event.position().x())

    def _drag(self, x: float) -> None:
        if self.after is not None and not self.side_by_side:
            target = self._fit(self.after, QRectF(self.rect()))
            self.split = min(1.0, max(0.0, (x - target.left()) / max(target.width(), 1)))
            self.update()


class ResultPanel(QWidget):
    save_requested = Signal()
    export_requested = Signal()

    def __init__(self, session: Session, parent: QWidget | None = None):
        super().__init__(parent)
        self.session = session
        self.compare = CompareView()
        self.compare.setObjectName("compareView")
        self.mode = QComboBox()
        self.mode.addItems(["Before / after slider", "Side by side"])
        self.mode.currentIndexChanged.connect(self._mode_changed)
        self.caption = QLabel("")
        self.caption.setObjectName("resultCaption")
        self.caption.setWordWrap(True)
        self.caption.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)  # never widens the window
        self.save_button = QPushButton("Save result…")
        self.save_button.setToolTip("Save as PNG with the run's parameters in its metadata (Ctrl+S)")
        self.save_button.clicked.connect(self.save_requested)
        self.export_button = QPushButton("Export…")
        self.export_button.setToolTip("PNG, JPEG, WebP or 16-bit TIFF (Ctrl+Shift+E); or drag the result out of the "
                                      "window, or copy it with Ctrl+C")
        self.export_button.clicked.connect(self.export_requested)
        self.history = QListWidget()
        self.history.setObjectName("historyList")
        self.history.setViewMode(QListWidget.ViewMode.IconMode)
        self.history.setIconSize(QSize(96, 96))
        self.history.setResizeMode(QListWidget.ResizeMode.Adjust)
        self.history.setMovement(QListWidget.Movement.Static)
        self.history.setMinimumWidth(130)
        self.history.setToolTip("Runs for this photo; click one to show it")
        self.history.itemClicked.connect(self._history_clicked)

        bar = QHBoxLayout()
        bar.addWidget(self.mode)
        bar.addWidget(self.caption, 1)
        bar.addWidget(self.save_button)
        bar.addWidget(self.export_button)
        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        left_layout.addLayout(bar)
        left_layout.addWidget(self.compare, 1)
        splitter = QSplitter()
        splitter.addWidget(left)
        splitter.addWidget(self.history)
        splitter.setStretchFactor(0, 4)
        splitter.setStretchFactor(1, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(splitter)

        session.result_changed.connect(self._show_result)
        session.content_changed.connect(self._show_result)
        session.history_changed.connect(self._rebuild_history)
        self._rebuild_history()
        self._show_result()

    @Slot(int)
    def _mode_changed(self, index: int) -> None:
        self.compare.set_side_by_side(index == 1)

    @Slot()
    def _show_result(self) -> None:
        record: RunRecord | None = self.session.result
        before = after = None
        try:
            before = load_qimage(self.session.content) if self.session.content is not None else None
            after = load_qimage(self.session.result_path(record)) if record is not None else None
        except StyleGalleryError:
            pass  # a file deleted by hand: nothing to show
        notes = []
        if record is not None and record.random_weights:
            notes.append(RANDOM_RESULT_NOTE)
        if record is not None and record.cancelled:
            notes.append(f"CANCELLED at step {record.steps_done}/{record.steps_total}: partial result")
        self.compare.set_images(before, after, " · ".join(notes))
        self.save_button.setEnabled(after is not None)
        self.export_button.setEnabled(after is not None)
        self.caption.setText("" if record is None else describe(record))

    @Slot()
    def _rebuild_history(self) -> None:
        self.history.clear()
        for index, record in enumerate(self.session.history):
            missing = not self.session.result_path(record).is_file()  # kept in the history: missing is not deleted
            flags = (["cancelled"] * record.cancelled + ["random weights"] * record.random_weights
                     + ["file missing"] * missing)
            item = QListWidgetItem(f"#{index + 1}" + (f" ({', '.join(flags)})" if flags else ""))
            try:
                item.setIcon(QIcon(QPixmap.fromImage(load_qimage(self.session.result_path(record)).scaled(
                    96, 96, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation))))
            except StyleGalleryError:
                pass
            item.setToolTip(describe(record))
            item.setData(Qt.ItemDataRole.UserRole, index)
            self.history.addItem(item)

    @Slot(object)
    def _history_clicked(self, item: QListWidgetItem) -> None:
        self.session.result = self.session.history[item.data(Qt.ItemDataRole.UserRole)]


def describe(record: RunRecord) -> str:
    params = record.params
    loss = "" if record.final_loss is None else f", loss {record.final_loss:.4f}"
    return (f"{record.created.replace('T', ' ')}: {record.steps_done}/{count(record.steps_total, 'step')}, "
            f"lr {params.get('lr')}, content weight {params.get('content_weight')}, seed {params.get('seed')}, "
            f"{params.get('fast_mode')}, {record.seconds:.1f} s{loss}; references: {', '.join(record.references)}")
