"""The centre: the content photo with its region map, the overlay toggle and opacity, and the hovered region's size."""
from __future__ import annotations

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QCheckBox, QHBoxLayout, QLabel, QSlider, QVBoxLayout, QWidget

from engine.wording import count
from engine.errors import StyleGalleryError

from ..model.errors import ErrorInfo
from ..model.properties import bind
from ..model.region_names import QUICK_REGIONS_LONG, region_noun
from ..model.session import Session
from .images import load_qimage
from .region_tools import RegionTools
from .region_view import RANDOM_WEIGHTS_NOTE, RegionView


class ContentPanel(QWidget):
    files_dropped = Signal(list)

    def __init__(self, session: Session, parent: QWidget | None = None):
        super().__init__(parent)
        self.session = session
        self.view = RegionView("Drop a photo here, or File > Open photo… (Ctrl+O)", accept_drops=True)
        self.view.setObjectName("contentView")
        self.overlay_box = QCheckBox("Region map")
        self.overlay_box.setToolTip("Show the regions found in the photo (R)")
        self.opacity_slider = QSlider(Qt.Orientation.Horizontal)
        self.opacity_slider.setRange(0, 100)
        self.opacity_slider.setToolTip("Region map opacity")
        self.opacity_slider.setMaximumWidth(160)
        self.info = QLabel("")
        self.info.setObjectName("regionInfo")

        row = QHBoxLayout()
        row.addWidget(self.overlay_box)
        row.addWidget(QLabel("Opacity"))
        row.addWidget(self.opacity_slider)
        row.addStretch(1)
        row.addWidget(self.info)
        self.tools = RegionTools(session, self.view, self)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.tools.toolbar)
        layout.addWidget(self.view, 1)
        layout.addLayout(row)

        bind(session, "overlay_visible", self.overlay_box, "checked")
        bind(session, "opacity", self.opacity_slider, "value")
        session.content_changed.connect(self._content_changed)
        session.regions_changed.connect(self._analysis_changed)
        for signal in (session.overlay_visible_changed, session.opacity_changed):
            signal.connect(self._overlay_changed)
        for signal in (session.hovered_region_changed, session.selected_region_changed):
            signal.connect(self._highlight_changed)
        session.random_weights_changed.connect(self._analysis_changed)
        self.view.hovered.connect(self._hovered)
        self.view.clicked.connect(self._clicked)
        self.view.files_dropped.connect(self.files_dropped)
        self._overlay_changed()

    @Slot()
    def _content_changed(self) -> None:
        image = None
        if self.session.content is not None:
            try:
                image = load_qimage(self.session.content)
            except StyleGalleryError as exc:
                self.session.show_error(ErrorInfo.from_exception(exc), "content")
        self.view.set_image(image)
        self._analysis_changed()

    @Slot()
    def _analysis_changed(self) -> None:
        """The method's region map, or the draft's quick regions until the analysis is done (labelled so)."""
        labels, source = self.session.region_labels(), self.session.region_source()
        self.view.set_labels(labels)
        note = ""
        if source == "quick":
            note = f"Region map: {QUICK_REGIONS_LONG}"
        elif source == "method" and self.session.random_weights:
            note = RANDOM_WEIGHTS_NOTE
        self.view.set_note(note)
        regions = len(self.session.region_shares())
        self.info.setText("" if labels is None else f"{count(regions, region_noun(source))} · click one to pin it")

    @Slot()
    def _overlay_changed(self) -> None:
        self.view.set_overlay(bool(self.session.overlay_visible), self.session.opacity / 100)

    @Slot()
    def _highlight_changed(self) -> None:
        self.view.set_strong({self.session.hovered_region, self.session.selected_region})
        region = self.session.hovered_region or self.session.selected_region
        if region is not None and self.session.region_labels() is not None:
            self.info.setText(region_size_text(self.session.region_shares().get(region, 0.0), region,
                                               self.view.image))

    @Slot(object)
    def _hovered(self, region: int | None) -> None:
        self.session.hovered_region = region

    @Slot(object)
    def _clicked(self, region: int | None) -> None:
        """Click a region to select it (then click a reference to pin it); click it again to deselect."""
        self.session.selected_region = None if region == self.session.selected_region else region


def region_size_text(share: float, region: int, image: QImage | None) -> str:
    """'Region 3: 18.2 % of the photo (≈ 47,700 px)', from the region's share of the map and the photo's size."""
    pixels = f" (≈ {int(share * image.width() * image.height()):,} px)" if image is not None else ""
    return f"Region {region}: {share:.1%} of the photo{pixels}"
