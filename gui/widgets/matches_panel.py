"""Matches: one row per content region (its colour, the reference region it takes its style from, the score,
a pin drop-down), and a reference shown large with its own region map, whose regions can be clicked to pin."""
from __future__ import annotations

from PySide6.QtCore import Qt, QTimer, Signal, Slot
from PySide6.QtGui import QIcon, QImage, QPixmap
from PySide6.QtWidgets import (QAbstractItemView, QComboBox, QHBoxLayout, QHeaderView, QLabel, QPushButton,
                               QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget)

from engine.errors import StyleGalleryError
from engine.wording import count

from ..model.region_names import QUICK_REGIONS
from ..model.session import PinTarget, Session
from .images import load_qimage, region_color
from .region_view import RANDOM_WEIGHTS_NOTE, RegionView

MAX_CANDIDATES = 8  # region candidates offered per row, best first (whole references are always offered)
AUTO = "Auto (best match)"
PIN_HINT = "Click a photo region, then a reference (or one of its regions) to pin it."
QUICK_HINT = (f"{QUICK_REGIONS.capitalize()} (draft) until the photo is analysed: pin a region to a whole reference "
              "to steer the draft. These pins are cleared when the method's regions arrive.")


def swatch(region: int | None) -> QIcon:
    pixmap = QPixmap(14, 14)
    pixmap.fill(region_color(region) if region is not None else Qt.GlobalColor.lightGray)
    return QIcon(pixmap)


class MatchesPanel(QWidget):
    reference_shown = Signal()  # the reference view shows another reference, or its map changed

    def __init__(self, controller, parent: QWidget | None = None):
        super().__init__(parent)
        self.controller = controller
        self.session: Session = controller.session
        self.gallery = controller.gallery
        self.ref_id: str | None = None  # the reference shown large
        self._ref_picture: tuple[str, QImage] | None = None  # (ref id, its decoded picture): edits and picks reuse it

        self.ref_view = RegionView("Click a reference in the gallery to see its regions here")
        self.ref_view.setObjectName("referenceView")
        self.ref_view.setMinimumHeight(200)
        self.ref_caption = QLabel("")
        self.ref_caption.setWordWrap(True)
        self.table = QTableWidget(0, 4)
        self.table.setObjectName("matchesTable")
        self.table.setHorizontalHeaderLabels(["Region", "Style from", "Score", "Pin"])
        self.table.verticalHeader().hide()
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(3, QHeaderView.ResizeMode.Interactive)
        header.resizeSection(3, 150)
        self.table.cellClicked.connect(self._row_clicked)
        self.clear_button = QPushButton("Clear pin")
        self.clear_button.clicked.connect(self.clear_selected_pin)
        self.clear_all_button = QPushButton("Clear all pins")
        self.clear_all_button.clicked.connect(self.session.clear_pins)
        self.hint = QLabel(PIN_HINT)
        self.hint.setWordWrap(True)
        self.hint.setObjectName("hint")

        buttons = QHBoxLayout()
        buttons.addWidget(self.clear_button)
        buttons.addWidget(self.clear_all_button)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.ref_view, 2)
        layout.addWidget(self.ref_caption)
        layout.addWidget(self.hint)
        layout.addWidget(self.table, 3)
        layout.addLayout(buttons)

        self._rebuild_timer = QTimer(self, singleShot=True, interval=0)  # a combo's own signal must not delete it
        self._rebuild_timer.timeout.connect(self.rebuild)
        for signal in (self.session.match_table_changed, self.session.match_refs_changed, self.session.pins_changed,
                       self.session.regions_changed, self.session.draft_changed, self.gallery.changed):
            signal.connect(self._rebuild_timer.start)
        self.session.selected_region_changed.connect(self._selection_changed)
        self.session.random_weights_changed.connect(self._show_reference)
        self.session.reference_regions_changed.connect(self._reference_analysed)
        self.session.selected_style_region_changed.connect(self._show_reference)
        self.session.models_missing_changed.connect(self._show_reference)
        self.gallery.analysis_changed.connect(self._reference_analysed)
        self.ref_view.clicked.connect(self._reference_region_clicked)
        self.rebuild()

    # ----- the reference view
    def show_reference(self, ref_id: str | None) -> None:
        self.ref_id = ref_id
        self._show_reference()

    @Slot()
    def _show_reference(self) -> None:
        ref = self.gallery.get(self.ref_id) if self.ref_id else None
        image = analysis = None
        if ref is not None:
            image = self._reference_picture(ref.id)
            analysis = self.gallery.analysis(ref.id)
        self.ref_view.set_image(image)
        labels = None if analysis is None else self.session.reference_labels(ref.id, analysis.labels)
        self.ref_view.set_labels(labels)
        self.ref_view.set_note(RANDOM_WEIGHTS_NOTE if analysis is not None and self.session.random_weights else "")
        match = self.session.shown_match(self.session.selected_region) if self.session.selected_region else None
        picked = self.session.selected_style_region
        self.ref_view.set_strong(({match.style_region} if match and match.ref_id == self.ref_id else set())
                                 | ({picked[1]} if picked is not None and picked[0] == self.ref_id else set()))
        if ref is None:
            self.ref_caption.setText("")
        else:
            state = (count(len(set(labels.ravel().tolist())), "region") if labels is not None else
                     "not analysed: needs the full model" if self.session.models_missing else "analysing…")
            self.ref_caption.setText(f"<b>{ref.name}</b> ({state})")
        self.reference_shown.emit()

    def _reference_picture(self, ref_id: str) -> QImage | None:
        """The reference's picture, decoded once per reference shown: a stroke or a pick on its map changes only the
        labels drawn over it, and decoding the file on the UI thread for each would stall the brush."""
        if self._ref_picture is None or self._ref_picture[0] != ref_id:
            try:
                self._ref_picture = ref_id, load_qimage(self.gallery.path(ref_id))
            except StyleGalleryError:
                return None  # not kept: a file put back later is read at the next look
        return self._ref_picture[1]

    @Slot(str)
    def _reference_analysed(self, ref_id: str) -> None:
        if ref_id == self.ref_id:
            self._show_reference()

    @Slot(object)
    def _reference_region_clicked(self, style_region: int | None) -> None:
        """Pick a reference region (the region tools' brush colour there; click it again to let go) and pin the
        selected photo region to it."""
        if self.ref_id is None or style_region is None:
            return
        picked = (self.ref_id, style_region)
        self.session.selected_style_region = None if self.session.selected_style_region == picked else picked
        region = self.session.selected_region
        if region is not None:
            self.session.pin(region, PinTarget(self.ref_id, style_region))

    @Slot(object)
    def _selection_changed(self, region: int | None) -> None:
        match = self.session.shown_match(region) if region is not None else None
        if match is not None and match.ref_id is not None:
            self.ref_id = match.ref_id
        self._show_reference()
        for row in range(self.table.rowCount()):
            if self.table.item(row, 0).data(Qt.ItemDataRole.UserRole) == region:
                self.table.selectRow(row)
                return
        self.table.clearSelection()

    # ----- the table
    @Slot()
    def rebuild(self) -> None:
        shares = self.session.region_shares()
        regions = sorted(shares)
        self.table.setRowCount(len(regions))
        for row, region in enumerate(regions):
            share = shares[region]
            item = QTableWidgetItem(swatch(region), f"{region} ({share:.0%})")
            item.setData(Qt.ItemDataRole.UserRole, region)
            self.table.setItem(row, 0, item)
            match = self.session.shown_match(region)
            self.table.setItem(row, 1, self._match_item(match))
            score = "" if match is None or match.score is None else f"{match.score:.3f}"
            self.table.setItem(row, 2, QTableWidgetItem(score))
            self.table.setCellWidget(row, 3, self._pin_combo(region))
        self.clear_all_button.setEnabled(bool(self.session.pins))
        self.hint.setText(QUICK_HINT if self.session.region_source() == "quick" else PIN_HINT)
        self._selection_changed(self.session.selected_region)

    def _match_item(self, match) -> QTableWidgetItem:
        if match is None:
            return QTableWidgetItem("matching…" if self.session.region_labels() is not None else "")
        ref = self.gallery.get(match.ref_id) if match.ref_id else None
        name = ref.name if ref is not None else "(removed)"
        where = "whole image" if match.style_region is None else f"region {match.style_region}"
        item = QTableWidgetItem(swatch(match.style_region), f"{name} · {where}" + ("  [pinned]" if match.pinned else ""))
        if match.pinned:
            font = item.font()
            font.setBold(True)
            item.setFont(font)
        return item

    def _pin_combo(self, region: int) -> QComboBox:
        """Auto, every participating reference whole, and this region's best candidates."""
        combo = QComboBox()
        combo.addItem(AUTO, None)
        table, refs = self.session.match_table, self.session.match_refs
        for ref_id in self.controller.participants():
            ref = self.gallery.get(ref_id)
            combo.addItem(f"{ref.name} · whole image", PinTarget(ref_id))
        if table is not None:
            for pair in table.candidates(region)[:MAX_CANDIDATES]:
                if pair.style_index < len(refs) and self.gallery.get(refs[pair.style_index]) is not None:
                    ref_id = refs[pair.style_index]
                    combo.addItem(swatch(pair.style_region), f"{self.gallery.get(ref_id).name} · region "
                                  f"{pair.style_region} ({pair.score:.3f})", PinTarget(ref_id, pair.style_region))
        pin = self.session.pins.get(region)
        index = next((i for i in range(combo.count()) if combo.itemData(i) == pin), -1) if pin is not None else 0
        if index < 0:  # pinned to something not offered (a reference no longer checked): show it anyway
            combo.addItem(f"pinned: {pin.ref_id} · {pin.style_region}", pin)
            index = combo.count() - 1
        combo.setCurrentIndex(index)
        combo.setProperty("region", region)
        combo.activated.connect(self._combo_activated)
        return combo

    @Slot(int)
    def _combo_activated(self, index: int) -> None:
        combo = self.sender()
        self.session.pin(int(combo.property("region")), combo.itemData(index))

    @Slot(int, int)
    def _row_clicked(self, row: int, column: int) -> None:
        self.session.selected_region = self.table.item(row, 0).data(Qt.ItemDataRole.UserRole)

    @Slot()
    def clear_selected_pin(self) -> None:
        if self.session.selected_region is not None:
            self.session.pin(self.session.selected_region, None)
