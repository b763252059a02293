"""Hand edits of a region map as document operations: the photo's, or a gallery reference's (a pin can target a
reference's region). Each one is the engine's pure edit function (engine/stage1/edits.py) applied to that map and
pushed as one undoable step on the session's stack (`Session.edit_regions`).

The region tools widget only turns clicks and strokes into these calls; the map arithmetic stays out of widgets.
A refused edit (an empty merge, a stroke that splits nothing) goes to the banner under the "regions" topic.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from engine.errors import InvalidRequest, StyleGalleryError
from engine.images import load_image
from engine.stage1 import edits
from engine.stage1.edits import brush_cells, polygon_cells  # noqa: F401 (the region view's strokes and lasso)
from engine.types import Analysis

from .disk_errors import disk_error_info
from .errors import ErrorInfo
from .gallery import Gallery
from .session import Session

Change = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (automatic labels, override) -> new override


class RegionEditor:
    """The edit operations on one region map: the photo's, or with `ref_id` that gallery reference's."""

    def __init__(self, session: Session, gallery: Gallery | None = None, ref_id: str | None = None):
        self.session, self.gallery, self.ref_id = session, gallery, ref_id

    @property
    def analysis(self) -> Analysis | None:
        """The stage-1 analysis whose automatic labels are edited (None: not analysed yet, or no such reference:
        nothing to edit)."""
        if self.ref_id is None:
            return self.session.analysis
        return self.gallery.analysis(self.ref_id) if self.gallery.get(self.ref_id) is not None else None

    def name(self) -> str:
        """What is edited, in words: "the photo", or the reference's name."""
        reference = None if self.ref_id is None else self.gallery.get(self.ref_id)
        return "the photo" if reference is None else reference.name

    def file_stem(self) -> str:
        """The start of an exported label PNG's name: the photo's or the reference's."""
        return Path(self.session.content).stem if self.ref_id is None else self.name()

    def labels(self) -> np.ndarray | None:
        """The map as shown: the automatic labels with the edit."""
        if self.ref_id is None:
            return self.session.region_labels()
        analysis = self.analysis
        return self.session.reference_labels(self.ref_id, None if analysis is None else analysis.labels)

    def image_path(self) -> Path | None:
        """The image whose map this is (its size is a label PNG's other allowed size)."""
        if self.ref_id is None:
            return self.session.content
        return self.gallery.path(self.ref_id) if self.gallery.get(self.ref_id) is not None else None

    def _apply(self, text: str, change: Change) -> bool:
        """Apply `change` as one undoable step named `text`; False (and a banner message) when it is refused."""
        analysis = self.analysis
        if analysis is None:
            return False
        automatic = analysis.labels
        override = self.session.override_of(self.ref_id)
        if override is None or override.shape != automatic.shape:
            override = edits.empty_override(automatic)
        try:
            new = change(automatic, override)
        except InvalidRequest as exc:
            self.session.show_error(ErrorInfo.from_exception(exc), "regions")
            return False
        self.session.show_error(None, "regions")
        where = "" if self.ref_id is None else f" of {self.name()}"
        self.session.edit_regions(new, text + where, self.ref_id, automatic)
        return True

    def paint(self, cells: np.ndarray, region: int | None) -> bool:
        """Cells into `region`, or into a new region when None."""
        name = f"Paint into region {region}" if region is not None else "Paint a new region"
        return self._apply(name, lambda auto, over: edits.paint(auto, over, cells, region))

    def erase(self, cells: np.ndarray) -> bool:
        """Cells back to the automatic map."""
        return self._apply("Erase region edits", lambda auto, over: edits.erase(over, cells))

    def split_by_stroke(self, region: int, cells: np.ndarray) -> bool:
        return self._apply(f"Split region {region}",
                           lambda auto, over: edits.split_by_mask(auto, over, region, cells))

    def split_by_lasso(self, inside: np.ndarray, preferred: int | None) -> bool:
        """The lasso's inside (`edits.polygon_cells`) becomes a new region, cut out of the region it takes part of
        (`preferred`, the selected one, when it does)."""
        return self._apply("Split by lasso", lambda auto, over: edits.split_by_lasso(auto, over, inside, preferred))

    def merge(self, regions: list[int]) -> bool:
        return self._apply(f"Merge regions {', '.join(map(str, regions))}",
                           lambda auto, over: edits.merge(auto, over, regions))

    def split_automatically(self, region: int | None) -> bool:
        """k = 2 on the region's stage-1 features (the method's own clustering)."""
        analysis = self.analysis
        if region is None or analysis is None:
            self.session.show_error(ErrorInfo("invalid_request", "Select a region to split automatically"),
                                    "regions")
            return False
        return self._apply(f"Split region {region} automatically",
                           lambda auto, over: edits.split_automatic(auto, over, region, analysis.fmix,
                                                                    analysis.params))

    def export_png(self, path: Path) -> bool:
        """The current map as a label PNG (one grey value per region)."""
        labels = self.labels()
        if labels is None:
            return False
        try:
            edits.label_png(labels).save(path, format="PNG")
        except StyleGalleryError as exc:
            self.session.show_error(ErrorInfo.from_exception(exc), "regions")
            return False
        except OSError as exc:
            self.session.show_error(disk_error_info(f"export the regions to {Path(path).name}", exc), "regions")
            return False
        self.session.status = f"Regions exported to {Path(path).name}"
        return True

    def import_png(self, path: Path) -> bool:
        """A label PNG painted elsewhere (at the image's own or the working size) as one undoable edit."""
        analysis, image = self.analysis, self.image_path()
        if analysis is None or image is None:
            return False
        try:
            photo = load_image(image)
            edit = edits.read_label_png(load_image(path, colour_managed=False), photo.size, analysis.params)
        except StyleGalleryError as exc:
            self.session.show_error(ErrorInfo.from_exception(exc), "regions")
            return False
        return self._apply(f"Import regions from {Path(path).name}", lambda auto, over: edit.override)
