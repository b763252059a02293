"""The personal style gallery: families of reference thumbnails with checkboxes, drop/open/paste to add.

A rebuild of the tree follows every gallery change (galleries hold tens of images, not thousands), so the
tree never drifts from the model. Edits in the tree go straight to the model through the controller.
"""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSize, Qt, QTimer, Signal, Slot
from PySide6.QtGui import QAction, QIcon, QImage, QKeySequence, QPainter, QPixmap
from PySide6.QtWidgets import (QApplication, QCheckBox, QFileDialog, QHBoxLayout, QInputDialog, QLabel, QMenu,
                               QPushButton, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget)

from engine.errors import StyleGalleryError
from engine.wording import count

from ..model.properties import bind
from .images import labels_rgba, load_pixmap, pil_from_qimage

THUMB = 72
UNGROUPED = "Ungrouped"
IMAGE_FILTER = "Images (*.png *.jpg *.jpeg *.webp *.bmp *.tif *.tiff *.heic *.heif)"
_KIND, _ID, MISSING_ROLE = Qt.ItemDataRole.UserRole, Qt.ItemDataRole.UserRole + 1, Qt.ItemDataRole.UserRole + 2


class GalleryPanel(QWidget):
    """Shows the gallery; `reference_clicked(ref_id)` lets the window pin or show that reference."""

    reference_clicked = Signal(str)

    def __init__(self, controller, parent: QWidget | None = None):
        super().__init__(parent)
        self.controller = controller
        self.gallery, self.session = controller.gallery, controller.session
        self._thumbs: dict[tuple[str, bool], QIcon] = {}
        self.setAcceptDrops(True)

        self.tree = QTreeWidget()
        self.tree.setObjectName("galleryTree")
        self.tree.setHeaderHidden(True)
        self.tree.setIconSize(QSize(THUMB, THUMB))
        self.tree.setEditTriggers(QTreeWidget.EditTrigger.EditKeyPressed | QTreeWidget.EditTrigger.SelectedClicked)
        self.tree.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.tree.customContextMenuRequested.connect(self._context_menu)
        self.tree.itemChanged.connect(self._item_changed)
        self.tree.itemClicked.connect(self._item_clicked)
        self.tree.setToolTip("Drop image files or folders here. Checked references take part in runs.")

        add = QPushButton("Add…")
        add.setToolTip("Add reference images (Ctrl+Shift+O)")
        add.clicked.connect(self.open_files)
        folder = QPushButton("Folder…")
        folder.setToolTip("Add every image of a folder as a family")
        folder.clicked.connect(self.open_folder)
        paste = QPushButton("Paste")
        paste.setToolTip("Add the image (or image files) on the clipboard")
        paste.clicked.connect(self.paste)
        self.maps_box = QCheckBox("Region maps")
        self.maps_box.setToolTip("Show each reference's own regions on its thumbnail")
        bind(self.session, "reference_maps", self.maps_box, "checked")

        remove = QAction("Remove", self.tree, shortcut=QKeySequence.StandardKey.Delete,
                         shortcutContext=Qt.ShortcutContext.WidgetShortcut)
        remove.triggered.connect(self.remove_selected)
        self.tree.addAction(remove)

        buttons = QHBoxLayout()
        for widget in (add, folder, paste):
            buttons.addWidget(widget)
        self.background_label = QLabel()
        self.background_label.setObjectName("galleryBackground")
        self.background_stop = QPushButton("Stop")
        self.background_stop.setToolTip("Stop analysing unused references now; they continue at the next start")
        self.background_stop.clicked.connect(controller.stop_gallery_analysis)
        background = QHBoxLayout()
        background.addWidget(self.background_label, 1)
        background.addWidget(self.background_stop)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(buttons)
        layout.addWidget(self.tree, 1)
        layout.addLayout(background)
        layout.addWidget(self.maps_box)
        self.gallery.background_progress_changed.connect(self._background_progress)
        self._background_progress(self.gallery.background_progress)

        # Rebuilds wait for the event loop: a tree edit's own itemChanged must not delete its item mid-signal.
        self._rebuild_timer = QTimer(self, singleShot=True, interval=0)
        self._rebuild_timer.timeout.connect(self.rebuild)
        self.gallery.changed.connect(self._rebuild_timer.start)
        self.gallery.analysis_changed.connect(self._analysis_changed)
        self.session.reference_maps_changed.connect(self._rebuild_timer.start)
        self.session.reference_regions_changed.connect(self._analysis_changed)  # a hand edit of a reference's map
        self.session.random_weights_changed.connect(self._label_maps)
        self._label_maps()
        self.rebuild()

    # ----- adding
    def add_paths(self, paths: list[Path]) -> list[str]:
        return self.controller.add_references(paths)

    @Slot()
    def open_files(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(self, "Add reference images", "", IMAGE_FILTER)
        if files:
            self.add_paths([Path(f) for f in files])

    @Slot()
    def open_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Add a folder of references (its name becomes the family)")
        if folder:
            self.add_paths([Path(folder)])

    @Slot()
    def paste(self) -> None:
        mime = QApplication.clipboard().mimeData()
        if mime.hasUrls():
            self.add_paths([Path(u.toLocalFile()) for u in mime.urls() if u.isLocalFile()])
        elif mime.hasImage():
            image = QImage(mime.imageData())
            if not image.isNull():
                self.controller.add_reference_image(pil_from_qimage(image))

    def dragEnterEvent(self, event) -> None:
        if event.mimeData().hasUrls() or event.mimeData().hasImage():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        mime = event.mimeData()
        paths = [Path(u.toLocalFile()) for u in mime.urls() if u.isLocalFile()]
        if paths:
            event.acceptProposedAction()
            self.add_paths(paths)
        elif mime.hasImage():
            event.acceptProposedAction()
            self.controller.add_reference_image(pil_from_qimage(QImage(mime.imageData())), "Dropped image")

    # ----- editing
    def selected_ids(self) -> list[str]:
        return [item.data(0, _ID) for item in self.tree.selectedItems() if item.data(0, _KIND) == "ref"]

    @Slot()
    def remove_selected(self) -> None:
        for ref_id in self.selected_ids():
            self.controller.remove_reference(ref_id)

    @Slot(object, int)
    def _item_changed(self, item: QTreeWidgetItem, column: int) -> None:
        kind, key = item.data(0, _KIND), item.data(0, _ID)
        checked = item.checkState(0) == Qt.CheckState.Checked
        if kind == "ref":
            ref = self.gallery.get(key)
            if ref is None:
                return
            if ref.enabled != checked:
                self.gallery.set_enabled(key, checked)
            elif item.text(0) != ref.name:
                self.gallery.rename(key, item.text(0))
        elif kind == "family":
            name = item.text(0)
            if name != (key or UNGROUPED):
                self.gallery.rename_family(key, "" if name == UNGROUPED else name)
            else:
                self.gallery.set_family_enabled(key, checked)

    @Slot(object, int)
    def _item_clicked(self, item: QTreeWidgetItem, column: int) -> None:
        if item.data(0, _KIND) == "ref":
            self.reference_clicked.emit(item.data(0, _ID))

    @Slot(object)
    def _context_menu(self, pos) -> None:
        item = self.tree.itemAt(pos)
        if item is None:
            return
        menu = QMenu(self)
        menu.addAction("Rename", lambda: self.tree.editItem(item, 0))
        if item.data(0, _KIND) == "ref":
            menu.addAction("Move to family…", lambda: self._move_to_family(item.data(0, _ID)))
            menu.addAction("Remove from gallery", self.remove_selected)
        menu.exec(self.tree.viewport().mapToGlobal(pos))

    def _move_to_family(self, ref_id: str) -> None:
        families = [f for f in self.gallery.families() if f] or [""]
        name, ok = QInputDialog.getItem(self, "Move to family", "Family (type a new name to create one):",
                                        families, 0, True)
        if ok:
            self.gallery.set_family(ref_id, name)

    # ----- showing
    @Slot(object)
    def _background_progress(self, progress: tuple[int, int] | None) -> None:
        if progress is not None:
            self.background_label.setText(f"Analysing unused references: {progress[0]} of {progress[1]}")
        self.background_label.setVisible(progress is not None)
        self.background_stop.setVisible(progress is not None)

    @Slot()
    def _label_maps(self) -> None:
        self.maps_box.setText("Region maps (RANDOM WEIGHTS)" if self.session.random_weights else "Region maps")

    @Slot(str)
    def _analysis_changed(self, ref_id: str) -> None:
        self._thumbs.pop((ref_id, True), None)
        if self.session.reference_maps:
            self._rebuild_timer.start()
        else:
            self._update_tooltips()

    @Slot()
    def rebuild(self) -> None:
        self.tree.blockSignals(True)
        self.tree.clear()
        with_maps = bool(self.session.reference_maps)
        for family in self.gallery.families():
            top = QTreeWidgetItem([family or UNGROUPED])
            top.setData(0, _KIND, "family")
            top.setData(0, _ID, family)
            top.setFlags(top.flags() | Qt.ItemFlag.ItemIsUserCheckable | Qt.ItemFlag.ItemIsEditable)
            self.tree.addTopLevelItem(top)
            members = [r for r in self.gallery.references if r.family == family]
            enabled = sum(r.enabled for r in members)
            top.setCheckState(0, Qt.CheckState.Checked if enabled == len(members) else
                              Qt.CheckState.Unchecked if enabled == 0 else Qt.CheckState.PartiallyChecked)
            for ref in members:
                item = QTreeWidgetItem([ref.name])
                item.setData(0, _KIND, "ref")
                item.setData(0, _ID, ref.id)
                item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable | Qt.ItemFlag.ItemIsEditable)
                item.setCheckState(0, Qt.CheckState.Checked if ref.enabled else Qt.CheckState.Unchecked)
                item.setIcon(0, self._thumbnail(ref.id, with_maps))
                missing = self.gallery.is_missing(ref.id)
                item.setData(0, MISSING_ROLE, missing)
                if missing:  # kept in the gallery, shown greyed: its image may come back (a drive mounted again)
                    item.setForeground(0, self.palette().placeholderText())
                top.addChild(item)
            top.setExpanded(True)
        self.tree.blockSignals(False)
        self._update_tooltips()

    def _update_tooltips(self) -> None:
        for index in range(self.tree.topLevelItemCount()):
            top = self.tree.topLevelItem(index)
            for child in range(top.childCount()):
                item = top.child(child)
                ref_id = item.data(0, _ID)
                if item.data(0, MISSING_ROLE):
                    item.setToolTip(0, f"{item.text(0)}: the image file is missing ({self.gallery.path(ref_id)}). "
                                       "It takes no part until it is back; adding the same image again restores it.")
                    continue
                analysis = self.gallery.analysis(ref_id)
                state = count(len(analysis.region_ids), "region") if analysis is not None else "analysing…"
                item.setToolTip(0, f"{item.text(0)} ({state}). Click after selecting a photo region to pin it.")

    def _thumbnail(self, ref_id: str, with_map: bool) -> QIcon:
        analysis = self.gallery.analysis(ref_id) if with_map else None
        key = (ref_id, analysis is not None)
        if key not in self._thumbs:
            try:
                pixmap = load_pixmap(self.gallery.path(ref_id), THUMB)
            except StyleGalleryError:
                pixmap = QPixmap(THUMB, THUMB)
                pixmap.fill(Qt.GlobalColor.darkGray)
            if analysis is not None:
                painter = QPainter(pixmap)
                painter.drawImage(pixmap.rect(), labels_rgba(self.session.reference_labels(ref_id, analysis.labels),
                                                             150))
                painter.end()
            self._thumbs[key] = QIcon(pixmap)
        return self._thumbs[key]
