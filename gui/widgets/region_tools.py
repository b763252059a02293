"""The region tools over the content's region map: merge, split (by a stroke, or automatically), brush, eraser.

Each tool is a QAction with a shortcut (B brush, E eraser, S split by stroke, Shift+S split automatically, M merge,
[ and ] brush size, P back to picking); painting tools are checkable and exclusive with "Pick". The edits are
document operations (gui/model/region_editor.py: the engine's pure edit functions, one undoable step each).
Ctrl+click marks regions for a merge; the selected region is the brush's colour.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, Slot
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import QFileDialog, QLabel, QSpinBox, QToolBar, QWidget

from engine.params import BRUSH_DEFAULT_CELLS, BRUSH_MAX_CELLS, BRUSH_MIN_CELLS

from ..model.region_editor import RegionEditor
from ..model.session import Session
from .region_view import RegionView

PAINT_TOOLS = ("brush", "eraser", "split")


class RegionTools(QObject):
    """The tool actions and the merge marks, wired to a RegionView and the session."""

    def __init__(self, session: Session, view: RegionView, parent: QWidget):
        super().__init__(parent)
        self.session, self.view = session, view
        self.editor = RegionEditor(session)
        self.marked: set[int] = set()  # Ctrl+clicked regions waiting for Merge (view state, not the document)
        self.toolbar = QToolBar("Region tools", parent)
        self.toolbar.setObjectName("regionTools")
        group = QActionGroup(self)
        self.tool_actions: dict[str, QAction] = {}
        for name, text, key, tip in (
                ("pick", "Pick", "P", "Click a region to select it; Ctrl+click marks regions to merge"),
                ("brush", "Brush", "B", "Paint cells into the selected region (or a new one when none is selected)"),
                ("eraser", "Eraser", "E", "Give painted cells back to the automatic regions"),
                ("split", "Split", "S", "Draw across a region: the part under the stroke becomes a new region")):
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
        for action in self.tool_actions.values():
            self.toolbar.addAction(action)
        self.toolbar.addAction(self.merge_action)
        self.toolbar.addAction(self.auto_split_action)
        self.toolbar.addWidget(QLabel(" Size "))
        self.toolbar.addWidget(self.size_box)
        self.toolbar.addAction(self.export_action)
        self.toolbar.addAction(self.import_action)
        view.stroked.connect(self._stroked)
        view.marked.connect(self._marked)
        session.regions_changed.connect(self._regions_changed)
        self._size_changed(self.size_box.value())
        self._regions_changed()

    def _action(self, text: str, key: str, tip: str, parent: QWidget) -> QAction:
        action = QAction(text, parent)
        action.setShortcut(QKeySequence(key))
        action.setToolTip(f"{tip} ({key})")
        parent.addAction(action)
        return action

    # ----- state
    def _set_tool(self, name: str) -> None:
        self.view.set_tool(name if name in PAINT_TOOLS else "pick")

    @Slot(int)
    def _size_changed(self, size: int) -> None:
        self.view.brush_size = size
        self.view.update()

    @Slot()
    def _regions_changed(self) -> None:
        """Tools edit the method's regions only (the quick draft regions are a stand-in, not editable)."""
        editable = self.session.region_source() == "method"
        for action in (*self.tool_actions.values(), self.merge_action, self.auto_split_action, self.export_action,
                       self.import_action):
            action.setEnabled(editable)
        labels = self.session.region_labels()
        self.marked = {r for r in self.marked if labels is not None and r in labels}
        self.view.set_marked(self.marked)

    @Slot(object)
    def _marked(self, region: int | None) -> None:
        if region is not None:
            self.marked ^= {region}
            self.view.set_marked(self.marked)

    # ----- edits (the document operations live in gui/model/region_editor.py)
    @Slot(object, object)
    def _stroked(self, cells: np.ndarray, start_region: int | None) -> None:
        tool = self.view.tool
        if tool == "brush":
            self.editor.paint(cells, self.session.selected_region)
        elif tool == "eraser":
            self.editor.erase(cells)
        elif tool == "split" and start_region is not None:
            self.editor.split_by_stroke(start_region, cells)

    @Slot()
    def merge(self) -> None:
        self.editor.merge(sorted(self.marked | ({self.session.selected_region} - {None})))
        self.marked = set()
        self.view.set_marked(self.marked)

    @Slot()
    def split_automatically(self) -> None:
        self.editor.split_automatically(self.session.selected_region)

    # ----- label PNG
    @Slot()
    def export_labels(self) -> None:
        if self.session.region_labels() is None or self.session.content is None:
            return
        start = str(Path(self.session.content).with_name(Path(self.session.content).stem + "_regions.png"))
        path, _ = QFileDialog.getSaveFileName(self.view, "Export regions", start, "PNG images (*.png)")
        if path:
            self.editor.export_png(Path(path))

    @Slot()
    def import_labels(self) -> None:
        if self.session.analysis is None or self.session.content is None:
            return
        path, _ = QFileDialog.getOpenFileName(self.view, "Import regions", str(Path(self.session.content).parent),
                                              "Images (*.png *.tif *.tiff *.bmp)")
        if path:
            self.editor.import_png(Path(path))
