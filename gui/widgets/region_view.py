"""An image with its region map painted over it: hover highlights a region, a click picks it, files drop in.

Used for the content photo and, larger, for a reference. Shows what it is given; owns no document state.

Painting tools: a drag paints cells with a round brush ("brush", "eraser", "split"); the "lasso" draws a closed
polygon, as a painting program's lasso does: drag for a freehand outline (closed on release), or click corner after
corner and close it with a double-click, a click on the first corner or Enter (Esc drops it). Its inside (the cells
whose centres it holds) is what the finished stroke carries.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PySide6.QtCore import QEvent, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QCursor, QFont, QImage, QPainter, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

from ..model.region_editor import brush_cells, polygon_cells
from .images import labels_rgba, stroke_rgba

RANDOM_WEIGHTS_NOTE = "Region map from RANDOM-WEIGHT test models: not a real segmentation"
LASSO_CLOSE_PX = 8.0  # a click this close to the lasso's first corner closes it
LASSO_DRAG_PX = 4.0  # a press that moves this far is a freehand lasso (closed on release), not a corner click


class RegionView(QWidget):
    """Paints `image` fitted to the widget and `labels` (a small id map) stretched over it."""

    hovered = Signal(object)  # region id or None
    clicked = Signal(object)  # region id or None
    files_dropped = Signal(list)  # list[Path]
    stroked = Signal(object, object)  # (bool cells (h, w) of a finished stroke or lasso, region where it started)
    marked = Signal(object)  # region Ctrl+clicked (marked for a merge)
    pressed = Signal()  # any mouse press: this map is the one the artist is working on

    def __init__(self, placeholder: str = "", accept_drops: bool = False, parent: QWidget | None = None):
        super().__init__(parent)
        self.placeholder = placeholder
        self.image: QImage | None = None
        self.labels: np.ndarray | None = None
        self.opacity = 0.55
        self.overlay_visible = True
        self.strong: frozenset[int] = frozenset()  # hovered / selected / marked regions, painted nearly opaque
        self._emphasis: frozenset[int] = frozenset()  # hovered / selected
        self.note = ""  # a caption painted over the image (e.g. the random-weights label)
        self._overlay: QImage | None = None
        self._hover: int | None = None
        self.tool = "pick"  # "pick", or a painting tool ("brush", "eraser", "split"): a drag paints cells
        self.brush_size = 1  # cells across
        self.marks: frozenset[int] = frozenset()  # regions marked (Ctrl+click) for a merge, painted strong
        self._stroke: np.ndarray | None = None
        self._stroke_start: int | None = None
        self._pointer: QPointF | None = None
        self._lasso: list[tuple[float, float]] | None = None  # the open lasso's corners, (row, col) in cell units
        self._lasso_press: QPointF | None = None  # where the press that started a freehand lasso was
        self._lasso_held = False  # the button is down: a move adds the pointer's path to the lasso
        self.setMouseTracking(True)
        self.setFocusPolicy(Qt.FocusPolicy.ClickFocus)  # Enter and Esc reach an open lasso
        self.setAcceptDrops(accept_drops)
        self.setMinimumSize(160, 160)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    # ----- what to show
    def set_image(self, image: QImage | None) -> None:
        self.image = image
        self.update()

    def set_labels(self, labels: np.ndarray | None) -> None:
        """A map of another shape (another image) drops an open lasso: its corners were on the old grid."""
        if labels is None or self.labels is None or labels.shape != self.labels.shape:
            self._lasso = self._lasso_press = None
        self.labels = labels
        self._rebuild()

    def set_overlay(self, visible: bool, opacity: float) -> None:
        self.overlay_visible, self.opacity = visible, opacity
        self._rebuild()

    def set_strong(self, regions: set[int]) -> None:
        self._emphasis = frozenset(r for r in regions if r is not None)
        self.strong = self._emphasis | self.marks
        self._rebuild()

    def set_tool(self, tool: str) -> None:
        """A painting tool shows a cross (and a brush its outline); picking shows the ordinary arrow. An open lasso
        is dropped."""
        self.tool = tool
        self._lasso = self._lasso_press = None
        self.setCursor(QCursor(Qt.CursorShape.ArrowCursor if tool == "pick" else Qt.CursorShape.CrossCursor))
        self.update()

    def set_marked(self, regions: set[int]) -> None:
        self.marks = frozenset(regions)
        self.set_strong(set(self._emphasis))

    def show_pointer(self, pos: QPointF | None) -> None:
        """Where the brush outline is drawn (the pointer's position; set by mouse moves, or for a screenshot)."""
        self._pointer = pos
        self.update()

    def set_note(self, note: str) -> None:
        self.note = note
        self.update()

    def _rebuild(self) -> None:
        self._overlay = None
        if self.labels is not None:
            self._overlay = labels_rgba(self.labels, int(255 * self.opacity), self.strong)
        self.update()

    # ----- geometry
    def image_rect(self) -> QRectF:
        """Where the image is painted: fitted inside the widget, aspect kept, centred."""
        if self.image is None:
            return QRectF()
        w, h = self.image.width(), self.image.height()
        scale = min(self.width() / w, self.height() / h)
        return QRectF((self.width() - w * scale) / 2, (self.height() - h * scale) / 2, w * scale, h * scale)

    def region_at(self, pos: QPointF) -> int | None:
        rect = self.image_rect()
        if self.labels is None or rect.isEmpty() or not rect.contains(pos):
            return None
        rows, cols = self.labels.shape
        row = min(rows - 1, int((pos.y() - rect.top()) / rect.height() * rows))
        col = min(cols - 1, int((pos.x() - rect.left()) / rect.width() * cols))
        return int(self.labels[row, col])

    def cell_at(self, pos: QPointF, clamp: bool = False) -> tuple[float, float] | None:
        """(row, col) in cell units under `pos` (fractions kept, for a brush centred on the pointer); None off the
        image, unless `clamp` moves `pos` onto its edge (a lasso may be drawn round a region at the border)."""
        rect = self.image_rect()
        if self.labels is None or rect.isEmpty() or not (clamp or rect.contains(pos)):
            return None
        rows, cols = self.labels.shape
        x = min(max(pos.x(), rect.left()), rect.right())
        y = min(max(pos.y(), rect.top()), rect.bottom())
        return (y - rect.top()) / rect.height() * rows, (x - rect.left()) / rect.width() * cols

    def cell_point(self, cell: tuple[float, float]) -> QPointF:
        """The widget position of (row, col) in cell units: `cell_at`'s inverse."""
        rect, (rows, cols) = self.image_rect(), self.labels.shape
        return QPointF(rect.left() + cell[1] / cols * rect.width(), rect.top() + cell[0] / rows * rect.height())

    def _paint_at(self, pos: QPointF) -> None:
        cell = self.cell_at(pos)
        if cell is not None and self._stroke is not None:
            self._stroke |= brush_cells(self.labels.shape, cell, self.brush_size)
            self.update()

    # ----- the lasso
    def _lasso_press_at(self, pos: QPointF) -> None:
        """A press with the lasso: the first corner of a new outline, a corner more, or (on the first corner) the
        end of it."""
        cell = self.cell_at(pos, clamp=True)
        if self._lasso is None:
            self._lasso, self._lasso_press = [cell], pos
        elif len(self._lasso) >= 3 and _distance(self.cell_point(self._lasso[0]), pos) <= LASSO_CLOSE_PX:
            self.close_lasso()
        else:
            self._lasso.append(cell)
        self.update()

    def _lasso_drag_to(self, pos: QPointF) -> None:
        """A drag with the button held adds the pointer's path (a point per few pixels: the outline stays short)."""
        if self._lasso is not None and _distance(self.cell_point(self._lasso[-1]), pos) >= LASSO_DRAG_PX:
            self._lasso.append(self.cell_at(pos, clamp=True))

    def _lasso_release_at(self, pos: QPointF) -> None:
        """Releasing a drag that began the outline closes it (freehand); releasing a click leaves it open."""
        start, self._lasso_press = self._lasso_press, None
        if self._lasso is not None and start is not None and _distance(start, pos) > LASSO_DRAG_PX:
            self._lasso_drag_to(pos)
            self.close_lasso()

    def close_lasso(self) -> None:
        """Close the outline and hand its inside on as a finished stroke (fewer than three corners: dropped)."""
        corners, self._lasso, self._lasso_press = self._lasso, None, None
        self.update()
        if corners is None or len(corners) < 3 or self.labels is None:
            return
        cells = polygon_cells(self.labels.shape, corners)
        if cells.any():
            start = self.labels[min(int(corners[0][0]), self.labels.shape[0] - 1),
                                min(int(corners[0][1]), self.labels.shape[1] - 1)]
            self.stroked.emit(cells, int(start))

    def _paint_lasso(self, painter: QPainter) -> None:
        """The outline so far, a rubber band to the pointer, and a ring on the first corner when a click there
        would close it."""
        points = [self.cell_point(c) for c in self._lasso]
        if self._pointer is not None:
            points.append(self._pointer)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        for colour, style in ((QColor("black"), Qt.PenStyle.SolidLine), (QColor("white"), Qt.PenStyle.DashLine)):
            painter.setPen(QPen(colour, 1.5, style))
            painter.drawPolyline(points)
        first = points[0]
        if (len(self._lasso) >= 3 and self._pointer is not None
                and _distance(first, self._pointer) <= LASSO_CLOSE_PX):
            painter.drawEllipse(first, LASSO_CLOSE_PX, LASSO_CLOSE_PX)

    # ----- painting and input
    def paintEvent(self, event) -> None:
        painter = QPainter(self)
        painter.fillRect(self.rect(), self.palette().window())
        if self.image is None:
            painter.setPen(self.palette().placeholderText().color())
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, self.placeholder)
            return
        rect = self.image_rect()
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
        painter.drawImage(rect, self.image)
        if self._overlay is not None and self.overlay_visible:
            painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, False)  # crisp region borders
            painter.drawImage(rect, self._overlay)
        if self._stroke is not None and self.labels is not None:
            painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, False)
            painter.drawImage(rect, stroke_rgba(self._stroke))
        if self._lasso is not None and self.labels is not None:
            self._paint_lasso(painter)
        elif self.tool not in ("pick", "lasso") and self._pointer is not None and self.labels is not None:
            radius = self.brush_size / 2 * rect.width() / self.labels.shape[1]
            painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
            painter.setPen(QPen(QColor("white"), 1.5, Qt.PenStyle.DashLine))
            painter.drawEllipse(self._pointer, radius, radius)
        if self.note:
            paint_note(painter, rect, self.note)

    def mouseMoveEvent(self, event) -> None:
        self._pointer = event.position()
        if self.tool == "lasso" and self._lasso_held:
            self._lasso_drag_to(event.position())
        elif self.tool not in ("pick", "lasso"):
            self._paint_at(event.position())
        if self.tool != "pick":
            self.update()
        region = self.region_at(event.position())
        if region != self._hover:
            self._hover = region
            self.hovered.emit(region)

    def leaveEvent(self, event) -> None:
        if self._hover is not None:
            self._hover = None
            self.hovered.emit(None)

    def mousePressEvent(self, event) -> None:
        if event.button() != Qt.MouseButton.LeftButton or self.image is None:
            return
        self.pressed.emit()
        if self.tool == "lasso" and self.labels is not None:
            self._lasso_held = True
            self._lasso_press_at(event.position())
        elif self.tool != "pick" and self.labels is not None:
            self._stroke = np.zeros(self.labels.shape, dtype=bool)
            self._stroke_start = self.region_at(event.position())
            self._paint_at(event.position())
        elif event.modifiers() & Qt.KeyboardModifier.ControlModifier:
            self.marked.emit(self.region_at(event.position()))
        else:
            self.clicked.emit(self.region_at(event.position()))

    def mouseDoubleClickEvent(self, event) -> None:
        """A double-click closes an open lasso (its first click already set the last corner)."""
        if self._lasso is not None and event.button() == Qt.MouseButton.LeftButton:
            self.close_lasso()
        else:
            self.mousePressEvent(event)

    def event(self, event) -> bool:
        """While a lasso is open, Enter and Esc are its keys, not the window's shortcuts (Esc cancels a run)."""
        if (event.type() == QEvent.Type.ShortcutOverride and self._lasso is not None
                and event.key() in LASSO_KEYS):
            event.accept()
            return True
        return super().event(event)

    def keyPressEvent(self, event) -> None:
        if self._lasso is not None and event.key() in LASSO_KEYS:
            if event.key() == Qt.Key.Key_Escape:
                self._lasso = self._lasso_press = None
                self.update()
            else:
                self.close_lasso()
            return
        super().keyPressEvent(event)

    def mouseReleaseEvent(self, event) -> None:
        if self.tool == "lasso" and event.button() == Qt.MouseButton.LeftButton:
            self._lasso_held = False
            self._lasso_release_at(event.position())
        if self._stroke is not None:
            self._paint_at(event.position())
            cells, start = self._stroke, self._stroke_start
            self._stroke, self._stroke_start = None, None
            self.update()
            if cells.any():
                self.stroked.emit(cells, start)

    def dragEnterEvent(self, event) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        paths = [Path(u.toLocalFile()) for u in event.mimeData().urls() if u.isLocalFile()]
        if paths:
            event.acceptProposedAction()
            self.files_dropped.emit(paths)


LASSO_KEYS = (Qt.Key.Key_Return, Qt.Key.Key_Enter, Qt.Key.Key_Escape)


def _distance(a: QPointF, b: QPointF) -> float:
    return math.hypot(a.x() - b.x(), a.y() - b.y())


def paint_note(painter: QPainter, rect: QRectF, text: str) -> None:
    """A dark red strip with white text across the top of `rect`: labels that must not be missed.
    The font shrinks until the text fits in two lines, so small views show the whole label too."""
    painter.save()
    font = QFont(painter.font())
    font.setBold(True)
    flags = Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap
    while True:
        painter.setFont(font)
        metrics = painter.fontMetrics()
        strip = QRectF(rect.left(), rect.top(), rect.width(), metrics.height() * 2 + 6)
        needed = metrics.boundingRect(strip.adjusted(4, 0, -4, 0).toRect(), int(flags), text)
        if needed.height() <= strip.height() - 4 or font.pointSizeF() <= 5:
            break
        font.setPointSizeF(font.pointSizeF() - 0.5)
    painter.fillRect(strip, QColor(150, 20, 20, 215))
    painter.setPen(QPen(QColor("white")))
    painter.drawText(strip.adjusted(4, 2, -4, -2), flags, text)
    painter.restore()
