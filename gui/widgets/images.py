"""numpy <-> Qt images, and region maps painted in distinct colours (GUI thread only)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QImage, QPixmap

from engine.images import load_image

# Distinct, colour-blind-friendlier hues (Tableau 10 + 2), indexed by region id.
PALETTE = [(78, 121, 167), (242, 142, 43), (225, 87, 89), (118, 183, 178), (89, 161, 79), (237, 201, 72),
           (176, 122, 161), (255, 157, 167), (156, 117, 95), (186, 176, 172), (31, 119, 180), (148, 103, 189)]


def region_color(region: int) -> QColor:
    return QColor(*PALETTE[(int(region) - 1) % len(PALETTE)])


def qimage_from_array(array: np.ndarray) -> QImage:
    """A QImage owning a copy of `array` (uint8 HxWx3 or HxWx4): safe after the array changes or goes."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    height, width, channels = array.shape
    fmt = QImage.Format.Format_RGB888 if channels == 3 else QImage.Format.Format_RGBA8888
    return QImage(array.data, width, height, width * channels, fmt).copy()


def load_qimage(path: Path) -> QImage:
    """The image as the engine sees it (EXIF-rotated, RGB); raises ImageUnreadable."""
    return qimage_from_array(np.asarray(load_image(path)))


def load_pixmap(path: Path, size: int) -> QPixmap:
    """A thumbnail of at most size x size pixels."""
    image = load_qimage(path)
    return QPixmap.fromImage(image.scaled(size, size, Qt.AspectRatioMode.KeepAspectRatio,
                                          Qt.TransformationMode.SmoothTransformation))


def labels_rgba(labels: np.ndarray, alpha: int, strong: frozenset[int] = frozenset(), strong_alpha: int = 235) -> QImage:
    """The label map as a small RGBA image: each region in its colour at `alpha`, the `strong` ones at `strong_alpha`."""
    rgba = np.zeros((*labels.shape, 4), np.uint8)
    for region in np.unique(labels):
        r, g, b = PALETTE[(int(region) - 1) % len(PALETTE)]
        rgba[labels == region] = (r, g, b, strong_alpha if int(region) in strong else alpha)
    return qimage_from_array(rgba)


def pil_from_qimage(image: QImage):
    """A PIL RGB image from a QImage (e.g. the clipboard's), via its RGB888 pixels."""
    from PIL import Image

    rgb = image.convertToFormat(QImage.Format.Format_RGB888)
    width, height, stride = rgb.width(), rgb.height(), rgb.bytesPerLine()
    rows = np.frombuffer(rgb.constBits(), np.uint8, count=stride * height).reshape(height, stride)
    return Image.fromarray(rows[:, : width * 3].reshape(height, width, 3).copy(), "RGB")


def stroke_rgba(cells: np.ndarray) -> QImage:
    """The stroke being drawn, one translucent white pixel per cell, stretched over the image."""
    rgba = np.zeros((*cells.shape, 4), dtype=np.uint8)
    rgba[cells] = (255, 255, 255, 150)
    return QImage(rgba.tobytes(), cells.shape[1], cells.shape[0], cells.shape[1] * 4,
                  QImage.Format.Format_RGBA8888).copy()
