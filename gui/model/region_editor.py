"""Hand edits of the content's region map as document operations: each one is the engine's pure edit function
(engine/stage1/edits.py) applied to the session's map and pushed as one undoable step (`Session.edit_regions`).

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
from engine.stage1.edits import brush_cells  # noqa: F401 (the region view draws strokes with the model's brush)

from .disk_errors import disk_error_info
from .errors import ErrorInfo
from .session import Session

Change = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (automatic labels, override) -> new override


class RegionEditor:
    """The edit operations on one session's region map."""

    def __init__(self, session: Session):
        self.session = session

    def _apply(self, text: str, change: Change) -> bool:
        """Apply `change` as one undoable step named `text`; False (and a banner message) when it is refused."""
        analysis = self.session.analysis
        if analysis is None:
            return False
        override = self.session.region_override
        if override is None:
            override = edits.empty_override(analysis.labels)
        try:
            new = change(analysis.labels, override)
        except InvalidRequest as exc:
            self.session.show_error(ErrorInfo.from_exception(exc), "regions")
            return False
        self.session.show_error(None, "regions")
        self.session.edit_regions(new, text)
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

    def merge(self, regions: list[int]) -> bool:
        return self._apply(f"Merge regions {', '.join(map(str, regions))}",
                           lambda auto, over: edits.merge(auto, over, regions))

    def split_automatically(self, region: int | None) -> bool:
        """k = 2 on the region's stage-1 features (the method's own clustering)."""
        analysis = self.session.analysis
        if region is None or analysis is None:
            self.session.show_error(ErrorInfo("invalid_request", "Select a region to split automatically"),
                                    "regions")
            return False
        return self._apply(f"Split region {region} automatically",
                           lambda auto, over: edits.split_automatic(auto, over, region, analysis.fmix,
                                                                    analysis.params))

    def export_png(self, path: Path) -> bool:
        """The current map as a label PNG (one grey value per region)."""
        labels = self.session.region_labels()
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
        """A label PNG painted elsewhere (at the photo's or the working size) as one undoable edit."""
        analysis = self.session.analysis
        if analysis is None or self.session.content is None:
            return False
        try:
            photo = load_image(self.session.content)
            edit = edits.read_label_png(load_image(path, colour_managed=False), photo.size, analysis.params)
        except StyleGalleryError as exc:
            self.session.show_error(ErrorInfo.from_exception(exc), "regions")
            return False
        return self._apply(f"Import regions from {Path(path).name}", lambda auto, over: edit.override)
