"""Pictures out of the window, to the artist's other tools: Ctrl+C copies the shown result or draft, dragging the
result out hands over the image and a PNG file, Export… writes PNG, JPEG, WebP or 16-bit TIFF, Save all writes a
photo's whole history. The encoding and the metadata carried along are the engine's (engine/export.py).

Why a drag carries a file as well as the image: file managers, Krita and Photoshop take a file URL, chat and
office applications the image. The file is a copy in a temp folder, never the history's own PNG, which a
target taking the drop as a move would take away.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from PySide6.QtCore import QMimeData, QObject, QRectF, QStandardPaths, Qt, QUrl, Slot
from PySide6.QtGui import QDrag, QPainter, QPixmap
from PySide6.QtWidgets import QApplication, QFileDialog, QWidget

from engine.errors import StyleGalleryError
from engine.export import (FORMAT_LABELS, SUFFIXES, export_image, format_for, read_png, unique_path,
                           write_atomic)
from engine.wording import count

from .drafts import draft_metadata, draft_references
from .model.disk_errors import disk_error_info
from .model.errors import ErrorInfo
from .settings import AppSettings
from .widgets.export_dialog import ExportDialog
from .widgets.images import qimage_from_array
from .widgets.region_view import paint_note

DRAG_FOLDER = "StyleGallery drags"
DRAG_FILE_KEEP_S = 24 * 3600  # a dragged file is left this long for the target to read, then cleared
RANDOM_NAME = "-random-weights"  # in every file name of a picture made with random-weight test models
DRAG_THUMBNAIL = 128
RANDOM_DRAG_NOTE = "RANDOM WEIGHTS"  # over the dragged thumbnail


@dataclass(frozen=True)
class ShownPicture:
    """The picture on screen, with what goes out with it."""

    pixels: np.ndarray  # uint8 HxWx3
    texts: dict[str, str]  # the metadata text chunks
    name: str  # a file name stem: photo, result or draft, random weights
    random_weights: bool

    def describe(self, what: str) -> str:
        return what + (" (made with RANDOM-WEIGHT test models)" if self.random_weights else "")


class ResultExporter(QObject):
    """Copy, drag, export and save-all for `window` (the parent of its dialogs and the source of its drags);
    `draft_shown()` says whether the draft tab is the one shown."""

    def __init__(self, session, gallery, settings: AppSettings, draft_shown: Callable[[], bool], window: QWidget):
        super().__init__(window)
        self.session, self.gallery, self.settings = session, gallery, settings
        self.draft_shown = draft_shown
        self.window = window

    def shown(self) -> ShownPicture | None:
        """The draft when its tab is shown, else the result; None when there is none (or its file is gone)."""
        session = self.session
        stem = Path(session.content).stem if session.content else "photo"
        if self.draft_shown():
            draft = session.draft
            if draft is None:
                return None
            metadata = draft_metadata(draft, session.content, draft_references(session, self.gallery),
                                      session.random_weights)
            texts = {"stylegallery": json.dumps(metadata)}
            return ShownPicture(np.asarray(draft.image, np.uint8), texts,
                                f"{stem}-draft" + RANDOM_NAME * session.random_weights, session.random_weights)
        record = session.result
        if record is None:
            return None
        try:
            pixels, texts = read_png(session.result_path(record))
        except StyleGalleryError:
            return None
        return ShownPicture(pixels, texts, f"{stem}-{Path(record.file).stem}" + RANDOM_NAME * record.random_weights,
                            record.random_weights)

    # ----- clipboard and drag
    @Slot()
    def copy(self) -> bool:
        """The shown picture onto the clipboard as an image."""
        picture = self.shown()
        if picture is None:
            self.session.status = "Nothing to copy: no result or draft is shown"
            return False
        QApplication.clipboard().setImage(qimage_from_array(picture.pixels))
        what = "the draft" if self.draft_shown() else "the result"
        self.session.status = picture.describe(f"Copied {what}") + " to the clipboard"
        return True

    def mime_data(self, picture: ShownPicture) -> QMimeData:
        """The image, and the URL of a PNG copy of it (with its metadata) in the drag folder."""
        folder = drag_folder()
        clear_old_files(folder, DRAG_FILE_KEEP_S)
        path = export_image(folder / f"{picture.name}.png", picture.pixels, "png", texts=picture.texts)
        mime = QMimeData()
        mime.setImageData(qimage_from_array(picture.pixels))
        mime.setUrls([QUrl.fromLocalFile(str(path))])
        return mime

    @Slot()
    def start_drag(self) -> None:
        """Drag the shown picture out of the window (a copy: the history keeps its own file)."""
        picture = self.shown()
        if picture is None:
            return
        try:
            mime = self.mime_data(picture)
        except OSError as exc:
            self.session.show_error(disk_error_info("prepare the picture to drag", exc), "save")
            return
        drag = QDrag(self.window)
        drag.setMimeData(mime)
        thumbnail = qimage_from_array(picture.pixels).scaled(DRAG_THUMBNAIL, DRAG_THUMBNAIL,
                                                              Qt.AspectRatioMode.KeepAspectRatio,
                                                              Qt.TransformationMode.SmoothTransformation)
        pixmap = QPixmap.fromImage(thumbnail)
        if picture.random_weights:
            painter = QPainter(pixmap)
            paint_note(painter, QRectF(pixmap.rect()), RANDOM_DRAG_NOTE)
            painter.end()
        drag.setPixmap(pixmap)
        drag.exec(Qt.DropAction.CopyAction)

    # ----- files
    @Slot()
    def export(self) -> None:
        """Ask the format, quality and file, then write it."""
        picture = self.shown()
        if picture is None:
            self.session.show_error(ErrorInfo("invalid_request", "There is nothing to export yet",
                                              "Run first, or show the instant draft."), "save")
            return
        fmt, quality = self.settings.export_options()
        dialog = ExportDialog(fmt, quality, self.window)
        if dialog.exec() != ExportDialog.DialogCode.Accepted:
            return
        fmt, quality = dialog.choice()
        self.settings.set_export_options(fmt, quality)
        suffix = SUFFIXES[fmt]
        path, _ = QFileDialog.getSaveFileName(self.window, f"Export as {FORMAT_LABELS[fmt]}", picture.name + suffix,
                                              f"{FORMAT_LABELS[fmt]} (*{suffix})")
        if path:
            self.export_to(Path(path), fmt, quality, picture)

    def export_to(self, path: Path, fmt: str, quality: int, picture: ShownPicture | None = None) -> Path | None:
        """Write the shown picture (or `picture`) to `path` as `fmt`, with the suffix `fmt` asks for."""
        picture = picture or self.shown()
        if picture is None:
            return None
        if format_for(path) != fmt:
            path = path.with_name(path.name + SUFFIXES[fmt])
        try:
            export_image(path, picture.pixels, fmt, quality, picture.texts)
        except OSError as exc:
            self.session.show_error(disk_error_info(f"export {path.name}", exc), "save")
            return None
        self.session.status = picture.describe(f"Exported {path}")
        return path

    @Slot()
    def save_all(self) -> None:
        if not self.session.history:
            self.session.show_error(ErrorInfo("invalid_request", "This photo has no results yet", "Run first."), "save")
            return
        folder = QFileDialog.getExistingDirectory(self.window, "Save all results of this photo into")
        if folder:
            self.save_all_to(Path(folder))

    def save_all_to(self, folder: Path) -> list[Path]:
        """Every result of the open photo's history, as its PNG (metadata and all), under new names in `folder`;
        files deleted by hand are skipped and counted."""
        session = self.session
        stem = Path(session.content).stem if session.content else "photo"
        written: list[Path] = []
        missing = 0
        try:
            for number, record in enumerate(session.history, start=1):
                source = session.result_path(record)
                if not source.is_file():
                    missing += 1
                    continue
                name = f"{stem}-{number:02d}" + RANDOM_NAME * record.random_weights + ".png"
                written.append(write_atomic(unique_path(folder, name), source.read_bytes()))
        except OSError as exc:
            session.show_error(disk_error_info(f"save the results into {folder.name}", exc), "save")
            return written
        skipped = f" ({missing} missing from the history were skipped)" if missing else ""
        session.status = f"Saved {count(len(written), 'result')} to {folder}{skipped}"
        return written


def drag_folder() -> Path:
    """Where dragged pictures are written (the system's temp folder)."""
    temp = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.TempLocation)
    return Path(temp) / DRAG_FOLDER


def clear_old_files(folder: Path, keep_s: float) -> None:
    """Delete the files in `folder` older than `keep_s` seconds (earlier drags)."""
    if not folder.is_dir():
        return
    cutoff = time.time() - keep_s
    for file in folder.iterdir():
        try:
            if file.is_file() and file.stat().st_mtime < cutoff:
                file.unlink()
        except OSError:
            continue  # in use or gone: the next drag tries again


