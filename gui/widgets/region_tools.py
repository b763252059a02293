"""The region tools over the region maps: merge, split (by a stroke, a lasso, or automatically), brush, eraser.

They work on the photo's map and on the reference map shown large (a pin can target a reference's region): one set
of actions, one undo stack. A stroke edits the map it is drawn on; Merge, Split automatically, Export and Import act
on the map last pressed on (the toolbar names it first). Each tool is a QAction with a shortcut (B brush, E eraser,
S split by stroke, L lasso split, Shift+S split automatically, M merge, [ and ] brush size, P back to picking);
painting tools are checkable and exclusive with "Pick". The edits are document operations
(gui/model/region_editor.py: the engine's pure edit functions, one undoable step each). Ctrl+click marks regions for
a merge; the selected region (on a reference: the one last clicked there) is the brush's colour.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
from PySide6.QtCore import QObject, SignalInstance, Slot
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import QFileDialog, QLabel, QSpinBox, QToolBar, QWidget

from engine.params import BRUSH_DEFAULT_CELLS, BRUSH_MAX_CELLS, BRUSH_MIN_CELLS

from ..model.gallery import Gallery
from ..model.region_editor import RegionEditor
from ..model.session import Session
from .region_view import RegionView

PAINT_TOOLS = ("brush", "eraser", "split", "lasso")


class RegionTools(QObject):
    """The tool actions and the merge marks, wired to the photo's RegionView (and, once added, the reference view)
    and the session."""

    def __init__(self, session: Session, view: RegionView, parent: QWidget):
        super().__init__(parent)
        self.session, self.view = session, view
        self.gallery: Gallery | None = None
        self.reference_view: RegionView | None = None
        self._shown_reference: Callable[[], str | None] = lambda: None
        self._marked_reference: str | None = None  # the reference whose regions the reference view's marks are
        self.active = view  # the map Merge, Split automatically, Export and Import act on: the one last pressed on
        self.marks: dict[RegionView, set[int]] = {view: set()}  # Ctrl+clicked regions waiting for Merge (view state)
        self.toolbar = QToolBar("Region tools", parent)
        self.toolbar.setObjectName("regionTools")
        group = QActionGroup(self)
        self.tool_actions: dict[str, QAction] = {}
        for name, text, key, tip in (
                ("pick", "Pick", "P", "Click a region to select it; Ctrl+click marks regions to merge"),
                ("brush", "Brush", "B", "Paint cells into the selected region (or a new one when none is selected)"),
                ("eraser", "Eraser", "E", "Give painted cells back to the automatic regions"),
                ("split", "Split", "S", "Draw across a region: the part under the stroke becomes a new region"),
                ("lasso", "Lasso split", "L", "Draw round part of a region (drag, or click corners and double-click): "
                                              "the inside becomes a new region")):
            action = self._action(text, key, tip, parent)
            action.setCheckable(True)
            action.toggled.connect(lambda on, n=name: on and self._set_tool(n))
            group.addAction(action)
            self.tool_actions[name] = action
        self.tool_actions["pick"].setChecked(True)
        self.merge_action = self._action("Merge", "M", "Merge the marked (Ctrl+click) and selected regions", parent)
        self.merge_action.triggered.connect(self.merge)
        self.auto_split_action = self._action("Split automatically", "Shift+S",
                                              "Split the selected region in two by the method's own clustering",
                                              parent)
        self.auto_split_action.triggered.connect(self.split_automatically)
        self.smaller_action = self._action("Smaller brush", "[", "Brush size down", parent)
        self.smaller_action.triggered.connect(lambda: self.size_box.stepBy(-1))
        self.larger_action = self._action("Larger brush", "]", "Brush size up", parent)
        self.larger_action.triggered.connect(lambda: self.size_box.stepBy(1))
        self.export_action = QAction("Export regions…", parent)
        self.export_action.setToolTip("Save the region map as a label PNG: one grey value per region")
        self.export_action.triggered.connect(self.export_labels)
        self.import_action = QAction("Import regions…", parent)
        self.import_action.setToolTip("Load a label PNG painted elsewhere (grey value = region, 0 = automatic)")
        self.import_action.triggered.connect(self.import_labels)
        self.size_box = QSpinBox()
        self.size_box.setRange(BRUSH_MIN_CELLS, BRUSH_MAX_CELLS)
        self.size_box.setValue(BRUSH_DEFAULT_CELLS)
        self.size_box.setSuffix(" cells")
        self.size_box.setToolTip("Brush size in region-map cells ([ and ])")
        self.size_box.valueChanged.connect(self._size_changed)
        self.target_label = QLabel("")
        self.target_label.setObjectName("regionToolsTarget")
        self.target_label.setToolTip("The map Merge, Split automatically, Export and Import act on: the one last "
                                     "clicked (a stroke edits the map it is drawn on)")
        self.toolbar.addWidget(self.target_label)  # first: an overflowing toolbar must not hide it
        for action in self.tool_actions.values():
            self.toolbar.addAction(action)
        self.toolbar.addAction(self.merge_action)
        self.toolbar.addAction(self.auto_split_action)
        self.toolbar.addWidget(QLabel(" Size "))
        self.toolbar.addWidget(self.size_box)
        self.toolbar.addAction(self.export_action)
        self.toolbar.addAction(self.import_action)
        self._watch(view)
        session.regions_changed.connect(self._regions_changed)
        session.reference_regions_changed.connect(self._regions_changed)
        self._size_changed(self.size_box.value())
        self._regions_changed()

    def add_reference_view(self, view: RegionView, gallery: Gallery, shown: Callable[[], str | None],
                           shown_changed: SignalInstance) -> None:
        """The tools work on `view` too: the region map of the reference `shown()` returns (its gallery id; another
        one is shown when `shown_changed` is emitted)."""
        self.gallery, self.reference_view, self._shown_reference = gallery, view, shown
        self.marks[view] = set()
        self._watch(view)
        gallery.analysis_changed.connect(self._regions_changed)
        shown_changed.connect(self._reference_shown)
        self._reference_shown()

    @Slot()
    def _reference_shown(self) -> None:
        """Another reference on the reference map: its marks were another image's regions."""
        if self._shown_reference() != self._marked_reference:
            self._marked_reference = self._shown_reference()
            self.marks[self.reference_view].clear()
        self._regions_changed()

    def _watch(self, view: RegionView) -> None:
        view.stroked.connect(lambda cells, start: self._stroked(view, cells, start))
        view.marked.connect(lambda region: self._marked(view, region))
        view.pressed.connect(lambda: self._activate(view))
        view.set_tool(self.view.tool)
        view.brush_size = self.size_box.value()

    def _action(self, text: str, key: str, tip: str, parent: QWidget) -> QAction:
        action = QAction(text, parent)
        action.setShortcut(QKeySequence(key))
        action.setToolTip(f"{tip} ({key})")
        parent.addAction(action)
        return action

    # ----- state
    @property
    def marked(self) -> set[int]:
        """The regions marked for a merge on the active map."""
        return self.marks[self.active]

    def editor(self, view: RegionView | None = None) -> RegionEditor:
        """The edit operations on `view`'s map (the active one by default)."""
        if (view or self.active) is self.reference_view:  # "" when no reference is shown: nothing to edit
            return RegionEditor(self.session, self.gallery, self._shown_reference() or "")
        return RegionEditor(self.session)

    def selected(self, view: RegionView) -> int | None:
        """The brush's colour and the region to split automatically: the photo's selected region, or on the
        reference map the region last picked there."""
        if view is not self.reference_view:
            return self.session.selected_region
        picked = self.session.selected_style_region
        return picked[1] if picked is not None and picked[0] == self._shown_reference() else None

    def _set_tool(self, name: str) -> None:
        for view in self.marks:
            view.set_tool(name if name in PAINT_TOOLS else "pick")

    @Slot(int)
    def _size_changed(self, size: int) -> None:
        for view in self.marks:
            view.brush_size = size
            view.update()

    def _activate(self, view: RegionView) -> None:
        if view is not self.active:
            self.active = view
            self._regions_changed()

    @Slot()
    def _regions_changed(self) -> None:
        """Tools edit the method's regions only (the quick draft regions are a stand-in, not editable); the merge
        marks keep the regions that are still there."""
        editor = self.editor()
        editable = editor.analysis is not None
        for action in (*self.tool_actions.values(), self.merge_action, self.auto_split_action, self.export_action,
                       self.import_action):
            action.setEnabled(editable)
        for view, marks in self.marks.items():
            labels = self.editor(view).labels()
            marks.intersection_update(set() if labels is None else {int(r) for r in np.unique(labels)})
            view.set_marked(marks)
        self.target_label.setText(f"Editing {editor.name()}: " if editable else "")

    def _marked(self, view: RegionView, region: int | None) -> None:
        if region is not None:
            self.marks[view] ^= {region}
            view.set_marked(self.marks[view])

    # ----- edits (the document operations live in gui/model/region_editor.py)
    def _stroked(self, view: RegionView, cells: np.ndarray, start_region: int | None) -> None:
        tool, editor = view.tool, self.editor(view)
        if tool == "brush":
            editor.paint(cells, self.selected(view))
        elif tool == "eraser":
            editor.erase(cells)
        elif tool == "split" and start_region is not None:
            editor.split_by_stroke(start_region, cells)
        elif tool == "lasso":
            editor.split_by_lasso(cells, self.selected(view))

    @Slot()
    def merge(self) -> None:
        self.editor().merge(sorted(self.marked | ({self.selected(self.active)} - {None})))
        self.marked.clear()
        self.active.set_marked(self.marked)

    @Slot()
    def split_automatically(self) -> None:
        self.editor().split_automatically(self.selected(self.active))

    # ----- label PNG
    @Slot()
    def export_labels(self) -> None:
        editor = self.editor()
        if editor.labels() is None or self.session.content is None:
            return
        start = str(Path(self.session.content).with_name(f"{editor.file_stem()}_regions.png"))
        path, _ = QFileDialog.getSaveFileName(self.active, "Export regions", start, "PNG images (*.png)")
        if path:
            editor.export_png(Path(path))

    @Slot()
    def import_labels(self) -> None:
        editor = self.editor()
        if editor.analysis is None or self.session.content is None:
            return
        path, _ = QFileDialog.getOpenFileName(self.active, "Import regions", str(Path(self.session.content).parent),
                                              "Images (*.png *.tif *.tiff *.bmp)")
        if path:
            editor.import_png(Path(path))
