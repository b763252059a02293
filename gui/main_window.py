"""The main window: gallery left, photo with its region map in the centre and the instant draft and the full
result below it (two tabs), matches and generation controls right; menus, shortcuts and a status bar with the
device and model."""
from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import Qt, QUrl, Slot
from PySide6.QtGui import QAction, QDesktopServices, QKeySequence
from PySide6.QtWidgets import (QApplication, QFileDialog, QLabel, QMainWindow, QMessageBox, QProgressBar, QSplitter,
                               QTabWidget, QVBoxLayout, QWidget)

from engine.wording import count

from .app import App
from .drafts import draft_references, save_draft
from .model.disk_errors import disk_error_info
from .model.errors import ErrorInfo
from .model.session import PinTarget
from .restore import ResultRestorer, copy_result, dropped_results, result_files
from .result_export import ResultExporter
from .widgets.content_panel import ContentPanel
from .widgets.draft_panel import DraftPanel
from .widgets.error_banner import ErrorBanner
from .widgets.gallery_panel import IMAGE_FILTER, GalleryPanel
from .widgets.generation_panel import GenerationPanel
from .widgets.matches_panel import MatchesPanel
from .widgets.result_panel import ResultPanel
from .widgets.settings_dialog import SettingsDialog

log = logging.getLogger(__name__)

APP_TITLE = "StyleGallery"
SPEED_TIP = ("In this window the Instant draft tab previews the restyle in about a second, and the Fast mode "
             "box (right) cuts a run to a fraction of its steps.")


class MainWindow(QMainWindow):
    """Shows the App's document, gallery and jobs; forwards the artist's actions to the App and its controller."""

    def __init__(self, app: App, parent: QWidget | None = None):
        super().__init__(parent)
        self.app = app
        self.session, self.gallery, self.controller = app.session, app.gallery, app.controller
        self.restorer = ResultRestorer(self.controller, self)
        self._build()
        self._build_menus()
        self.setAcceptDrops(True)  # a saved result dropped anywhere restores how it was made
        geometry = app.window_geometry()
        if geometry is not None:
            self.restoreGeometry(geometry)
        else:
            self.resize(1500, 940)
        self._update_title()

    # ----- layout
    def _build(self) -> None:
        self.gallery_panel = GalleryPanel(self.controller)
        self.content_panel = ContentPanel(self.session)
        self.banner = ErrorBanner(self.session)
        self.result_panel = ResultPanel(self.session)
        self.draft_panel = DraftPanel(self.controller)
        self.outputs = QTabWidget()
        self.outputs.setObjectName("outputTabs")
        self.outputs.addTab(self.draft_panel, "Instant draft")
        self.outputs.addTab(self.result_panel, "Full result")
        self.outputs.setTabToolTip(0, "A preview in about a second; it follows every pin and reference change")
        self.outputs.setTabToolTip(1, "The StyleGallery method (Stable Diffusion): Run or Refine")
        self.outputs.setCurrentWidget(self.result_panel if self.session.result is not None else self.draft_panel)
        self.matches_panel = MatchesPanel(self.controller)
        self.generation_panel = GenerationPanel(self.controller)

        top = QWidget()
        top_layout = QVBoxLayout(top)
        top_layout.setContentsMargins(0, 0, 0, 0)
        top_layout.addWidget(self.banner)
        top_layout.addWidget(self.content_panel, 1)
        centre = QSplitter(Qt.Orientation.Vertical)
        centre.addWidget(top)
        centre.addWidget(self.outputs)
        centre.setStretchFactor(0, 3)
        centre.setStretchFactor(1, 2)
        right = QSplitter(Qt.Orientation.Vertical)
        right.addWidget(self.matches_panel)
        right.addWidget(self.generation_panel)
        right.setStretchFactor(0, 3)
        right.setStretchFactor(1, 2)
        main = QSplitter(Qt.Orientation.Horizontal)
        main.addWidget(self.gallery_panel)
        main.addWidget(centre)
        main.addWidget(right)
        main.setStretchFactor(0, 1)
        main.setStretchFactor(1, 3)
        main.setStretchFactor(2, 2)
        self.gallery_panel.setMinimumWidth(220)
        right.setMinimumWidth(420)
        main.setSizes([260, 760, 480])
        self.setCentralWidget(main)

        self.device_label = QLabel("Device: …")
        self.device_label.setObjectName("deviceLabel")
        self.model_label = QLabel("")
        self.model_label.setObjectName("modelLabel")
        self.activity_bar = QProgressBar()
        self.activity_bar.setMaximumWidth(220)
        self.activity_bar.setTextVisible(False)
        self.activity_bar.hide()
        self.statusBar().addPermanentWidget(self.activity_bar)
        self.statusBar().addPermanentWidget(self.model_label)
        self.statusBar().addPermanentWidget(self.device_label)
        self.session.activity_changed.connect(self._activity_changed)

        self.content_panel.tools.add_reference_view(self.matches_panel.ref_view, self.gallery,
                                                    lambda: self.matches_panel.ref_id,
                                                    self.matches_panel.reference_shown)
        self.content_panel.files_dropped.connect(self._content_dropped)
        self.gallery_panel.reference_clicked.connect(self._reference_clicked)
        self.result_panel.save_requested.connect(self.save_result)
        self.draft_panel.save_requested.connect(self.save_draft)
        self.exporter = ResultExporter(self.session, self.gallery, self.app.settings,
                                       lambda: self.outputs.currentWidget() is self.draft_panel, self)
        self.result_panel.export_requested.connect(self.exporter.export)
        self.result_panel.compare.drag_out.connect(self.exporter.start_drag)
        self.session.result_changed.connect(self._result_changed)
        self.session.pins_changed.connect(self._show_draft_tab)
        self.app.speed_notice.connect(self.show_speed_warning)
        self.controller.device_changed.connect(self._device_changed)
        self.controller.model_changed.connect(self._model_changed)
        self.session.models_missing_changed.connect(lambda _: self._model_changed(self.controller.model_label))
        self.session.status_changed.connect(self._status_changed)
        self.session.content_changed.connect(self._update_title)
        self.session.undo_stack.cleanChanged.connect(self._update_title)

    def _build_menus(self) -> None:
        session, stack = self.session, self.session.undo_stack
        file_menu = self.menuBar().addMenu("&File")
        self._action(file_menu, "&Open photo…", self.open_content, QKeySequence.StandardKey.Open)
        self._action(file_menu, "&Add references…", self.gallery_panel.open_files, "Ctrl+Shift+O")
        self._action(file_menu, "Add reference &folder…", self.gallery_panel.open_folder)
        self._action(file_menu, "Open &result…", self.restorer.open_dialog, "Ctrl+Shift+R")
        self._action(file_menu, "&Paste reference", self.gallery_panel.paste, QKeySequence.StandardKey.Paste)
        file_menu.addSeparator()
        self.save_action = self._action(file_menu, "&Save result…", self.save_result, QKeySequence.StandardKey.Save)
        self._action(file_menu, "&Export…", self.exporter.export, "Ctrl+Shift+E")
        self._action(file_menu, "Save a&ll results of this photo…", self.exporter.save_all)
        file_menu.addSeparator()
        self._action(file_menu, "Se&ttings…", self.open_settings, QKeySequence.StandardKey.Preferences)
        file_menu.addSeparator()
        self._action(file_menu, "&Quit", self.close, QKeySequence.StandardKey.Quit)

        edit = self.menuBar().addMenu("&Edit")
        undo = stack.createUndoAction(self, "&Undo")
        undo.setShortcut(QKeySequence.StandardKey.Undo)
        redo = stack.createRedoAction(self, "&Redo")
        redo.setShortcuts([QKeySequence(QKeySequence.StandardKey.Redo), QKeySequence("Ctrl+Y")])
        edit.addAction(undo)
        edit.addAction(redo)
        self.undo_action, self.redo_action = undo, redo
        edit.addSeparator()
        self._action(edit, "&Copy image", self.exporter.copy, QKeySequence.StandardKey.Copy)
        edit.addSeparator()
        self._action(edit, "&Clear pin of the selected region", self.matches_panel.clear_selected_pin, "Backspace")
        self._action(edit, "Clear &all pins", session.clear_pins)

        view = self.menuBar().addMenu("&View")
        self.overlay_action = self._action(view, "&Region map", self._toggle_overlay, "R")
        self.overlay_action.setCheckable(True)
        self.overlay_action.setChecked(session.overlay_visible)
        session.overlay_visible_changed.connect(self.overlay_action.setChecked)
        self.maps_action = self._action(view, "Reference region &maps", self._toggle_reference_maps, "Shift+M")
        self.maps_action.setCheckable(True)
        session.reference_maps_changed.connect(self.maps_action.setChecked)

        run = self.menuBar().addMenu("&Run")
        self.run_action = self._action(run, "&Run", self.controller.run, "Ctrl+Return")
        self.cancel_action = self._action(run, "&Cancel", self.controller.cancel_run, "Esc")
        session.running_changed.connect(self._running_changed)
        self._running_changed(session.running)

        help_menu = self.menuBar().addMenu("&Help")
        self._action(help_menu, "&Copy diagnostics", self.copy_diagnostics)
        self._action(help_menu, "Open &log folder", self.open_log_folder)
        help_menu.addSeparator()
        self._action(help_menu, "&About StyleGallery", self._about)

    def _action(self, menu, text: str, slot, shortcut=None) -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        action.triggered.connect(slot)
        menu.addAction(action)
        return action

    # ----- actions
    @Slot()
    def open_content(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open a photo", "", IMAGE_FILTER)
        if path:
            self.controller.open_content(Path(path))

    @Slot(list)
    def _content_dropped(self, paths: list[Path]) -> None:
        """A photo opens; a saved result restores how it was made."""
        if result_files(paths[:1]):
            self.restorer.restore(paths[0])
        else:
            self.controller.open_content(paths[0])

    def dragEnterEvent(self, event) -> None:
        if dropped_results(event.mimeData()):
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        results = dropped_results(event.mimeData())
        if results:
            event.acceptProposedAction()
            self.restorer.restore(results[0])

    @Slot(str)
    def _reference_clicked(self, ref_id: str) -> None:
        """Show the reference large; with a photo region selected, pin that region to the whole reference."""
        self.matches_panel.show_reference(ref_id)
        if self.session.selected_region is not None:
            self.session.pin(self.session.selected_region, PinTarget(ref_id))

    @Slot()
    def save_result(self) -> None:
        if self.session.result is None:
            self.session.show_error(ErrorInfo("invalid_request", "There is no result to save yet", "Run first."), "save")
            return
        self._ask_png("Save result", "stylegallery", self.save_result_to)

    @Slot()
    def save_draft(self) -> None:
        if self.session.draft is not None:
            self._ask_png("Save draft", "draft", self.save_draft_to)

    def save_result_to(self, path: Path) -> None:
        """Copy the result PNG (its metadata holds the run's recipe) to `path`, and its JSON beside it."""
        self._write_png(path, lambda out: copy_result(self.session.result_path(self.session.result), out))

    def save_draft_to(self, path: Path) -> None:
        """The draft PNG with what it is (draft, quick or method regions, matches, strength) in its metadata."""
        refs = draft_references(self.session, self.gallery)
        self._write_png(path, lambda out: save_draft(out, self.session.draft, self.session.content, refs,
                                                     self.session.random_weights))

    def _ask_png(self, title: str, suffix: str, save) -> None:
        stem = Path(self.session.content).stem if self.session.content else "photo"
        path, _ = QFileDialog.getSaveFileName(self, title, f"{stem}-{suffix}.png", "PNG image (*.png)")
        if path:
            save(Path(path))

    def _write_png(self, path: Path, write) -> None:
        """`write(path)` with a .png suffix; a failure is a message, not a crash."""
        if path.suffix.lower() != ".png":
            path = path.with_suffix(".png")
        try:
            write(path)
        except OSError as exc:
            self.session.show_error(disk_error_info(f"save {path.name}", exc), "save")
        else:
            self.session.status = f"Saved {path}"

    @Slot()
    def copy_diagnostics(self) -> None:
        """Versions, device and settings (local paths redacted) to the clipboard, for a bug report."""
        QApplication.clipboard().setText(self.app.diagnostics())
        self.statusBar().showMessage("Diagnostics copied to the clipboard (folder and file names left out)", 8000)

    @Slot()
    def open_log_folder(self) -> None:
        folder = self.app.log_file.parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # a read-only or full disk: say so, the slot must not raise
            self.session.show_error(disk_error_info(f"create the log folder {folder}", exc), "save")
            return
        if not QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder))):
            self.statusBar().showMessage(f"The log is in {folder}", 15000)

    @Slot(str)
    def show_speed_warning(self, warning: str) -> None:
        """Without blocking the window: a CPU run takes many minutes (the App asks once per installation)."""
        box = QMessageBox(QMessageBox.Icon.Information, "Running on the CPU", warning, QMessageBox.StandardButton.Ok,
                          self)
        box.setInformativeText(SPEED_TIP)
        box.setWindowModality(Qt.WindowModality.NonModal)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.setObjectName("speedWarning")
        box.show()
        self.speed_box = box

    @Slot()
    def open_settings(self) -> None:
        dialog = SettingsDialog(self.app.preferences(), str(self.app.default_cache()), self)
        if dialog.exec() == SettingsDialog.DialogCode.Accepted:
            self.app.apply_preferences(dialog.preferences())

    @Slot()
    def _toggle_overlay(self) -> None:
        self.session.overlay_visible = self.overlay_action.isChecked()

    @Slot()
    def _toggle_reference_maps(self) -> None:
        self.session.reference_maps = self.maps_action.isChecked()

    @Slot()
    def _about(self) -> None:
        QMessageBox.about(self, "About StyleGallery",
                          "StyleGallery restyles a photo region by region after your own references "
                          "(He et al., StyleGallery, CVPR 2026), with Stable Diffusion 1.5 on this computer.")

    # ----- status
    @Slot(object)
    def _result_changed(self, record) -> None:
        if record is not None:
            self.outputs.setCurrentWidget(self.result_panel)

    @Slot()
    def _show_draft_tab(self) -> None:
        """A pin change shows the draft, which follows it within a second."""
        if self.session.content is not None:
            self.outputs.setCurrentWidget(self.draft_panel)

    @Slot(object)
    def _running_changed(self, running: bool) -> None:
        self.cancel_action.setEnabled(bool(running))  # Run stays: during a run it queues the next

    @Slot(str)
    def _device_changed(self, text: str) -> None:
        self.device_label.setText(f"Device: {text}")

    @Slot(str)
    def _model_changed(self, text: str) -> None:
        missing = " (not on this computer: drafts only)" if self.session.models_missing else ""
        self.model_label.setText(f"Model: {text}{missing}")
        self.model_label.setProperty("random", "RANDOM" in text)
        self.model_label.style().unpolish(self.model_label)
        self.model_label.style().polish(self.model_label)

    @Slot(object)
    def _activity_changed(self, activity) -> None:
        """Analyses and downloads: a bar in the status bar (busy indicator when the total is unknown)."""
        self.activity_bar.setVisible(activity is not None)
        if activity is not None:
            _, step, total = activity  # per mille: byte counts of a 4 GB download overflow a QProgressBar's int
            self.activity_bar.setRange(0, 1000 if total > 0 else 0)
            self.activity_bar.setValue(min(1000, step * 1000 // total) if total > 0 else 0)

    @Slot(object)
    def _status_changed(self, text: str) -> None:
        self.statusBar().showMessage(text)

    @Slot()
    def _update_title(self) -> None:
        name = Path(self.session.content).name if self.session.content else "no photo"
        dirty = "" if self.session.undo_stack.isClean() else "*"
        self.setWindowTitle(f"{name}{dirty} — {APP_TITLE}")

    def closeEvent(self, event) -> None:
        """Save first, and say what could not be saved (the artist may keep the window open to free some space);
        then hide at once and let the App stop the threads. They stop at their next cancel check, which inside a CPU
        step can be seconds away: the window must not sit there frozen meanwhile. Never raises: a close closes."""
        try:
            unsaved = self.controller.save_all()
        except Exception:  # noqa: BLE001 (an exception out of closeEvent would leave the threads running)
            log.exception("saving on close failed")
            unsaved = []
        if unsaved and not self.close_anyway(unsaved):
            event.ignore()
            return
        waiting = self.controller.runs.waiting_count()
        if waiting and not self.close_with_waiting_runs(waiting):
            event.ignore()
            return
        geometry = self.saveGeometry()
        self.hide()
        try:
            self.app.close(geometry)
        except Exception:  # noqa: BLE001
            log.exception("stopping the worker threads on close failed")
        event.accept()

    def close_with_waiting_runs(self, waiting: int) -> bool:
        """Ask whether to close although `waiting` queued runs have not started (they are not kept); False keeps the
        window open."""
        box = QMessageBox(QMessageBox.Icon.Warning, "Runs are waiting",
                          f"{count(waiting, 'queued run has', 'queued runs have')} not started yet.", parent=self)
        box.setInformativeText("Closing cancels them and the run in progress; the queue is not kept.")
        keep = box.addButton("Keep the window open", QMessageBox.ButtonRole.RejectRole)
        box.addButton("Close and cancel them", QMessageBox.ButtonRole.DestructiveRole)
        box.setDefaultButton(keep)
        box.exec()
        return box.clickedButton() is not keep

    def close_anyway(self, unsaved: list[str]) -> bool:
        """Ask whether to close although `unsaved` could not be written; False keeps the window open."""
        box = QMessageBox(QMessageBox.Icon.Warning, "Not everything could be saved",
                          "StyleGallery could not save " + "; ".join(unsaved) + ".", parent=self)
        box.setInformativeText("The banner says why. Keep the window open to free some space or fix the folder, "
                               "or close and lose these changes.")
        keep = box.addButton("Keep the window open", QMessageBox.ButtonRole.RejectRole)
        box.addButton("Close and lose them", QMessageBox.ButtonRole.DestructiveRole)
        box.setDefaultButton(keep)
        box.exec()
        return box.clickedButton() is not keep
