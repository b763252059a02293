"""Restoring how a saved result was made: drop its PNG (or JSON) on the window, or File > Open result….

The recipe (engine/recipe.py) names images by pixel hash. The photo is looked for where this computer last opened
it (its saved session), then in the dropped file's folder and the gallery, else the artist is asked to locate it;
the references are looked up in the gallery. Then the photo opens with the result's pins, region edits (the
photo's and each reference's) and every parameter, and the gallery's checkboxes are set so that the next run uses
exactly the result's references, in the same order: Run makes the same TransferRequest. References not in the
gallery are listed by name in the banner.
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Callable

import numpy as np
from PySide6.QtCore import QMimeData, QObject
from PySide6.QtWidgets import QFileDialog, QWidget

from engine.errors import InvalidRequest
from engine.types import TransferRequest
from engine.recipe import (RESULT_SUFFIXES, Resolution, is_result_file, photo_candidates, read_recipe,
                           resolve_recipe)
from engine.wording import count

from .controller import Controller
from .model.errors import ErrorInfo
from .model.session import PinTarget
from .widgets.gallery_panel import IMAGE_FILTER

RESULT_FILTER = "StyleGallery results (*.png *.json)"
TOPIC = "restore"  # the banner's topic for what a restore reports


def result_files(paths: list[Path]) -> list[Path]:
    """Those of `paths` that are saved results (a PNG with StyleGallery's settings, or a JSON)."""
    return [p for p in paths if p.suffix.lower() in RESULT_SUFFIXES and is_result_file(p)]


def dropped_results(mime: QMimeData) -> list[Path]:
    """The dropped local files that are saved results."""
    return result_files([Path(url.toLocalFile()) for url in mime.urls() if url.isLocalFile()])


def copy_result(source: Path, out: Path) -> None:
    """A result PNG and its JSON (when there is one) to `out` and beside it: either restores how it was made."""
    shutil.copyfile(source, out)
    if source.with_suffix(".json").is_file():
        shutil.copyfile(source.with_suffix(".json"), out.with_suffix(".json"))


def checked_references(order: list[str], gallery_order: list[str], pinned: set[str]) -> int:
    """How many of a run's references (`order`) to check in the gallery so that the controller's participants
    (the checked ones in gallery order, then the pinned ones) come out in that order: the longest start of `order`
    in gallery order after which every reference is pinned. -1 when no split gives that order."""
    positions = [gallery_order.index(ref_id) for ref_id in order]
    for checked in range(len(order), -1, -1):
        ascending = all(a < b for a, b in zip(positions[:checked], positions[1:checked]))
        if ascending and all(ref_id in pinned for ref_id in order[checked:]):
            return checked
    return -1


class ResultRestorer(QObject):
    """Restores a result into the window's photo, gallery selection, pins and parameters."""

    def __init__(self, controller: Controller, parent: QWidget):
        super().__init__(parent)
        self.controller, self.widget = controller, parent
        # Asks the artist where the photo is (name, folder to start in); tests replace it.
        self.locate_photo: Callable[[str, Path], Path | None] = self._ask_for_photo

    def open_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self.widget, "Open a result to restore how it was made", "",
                                              RESULT_FILTER)
        if path:
            self.restore(Path(path))

    def restore(self, path: Path) -> bool:
        """Restore the result at `path`; what could not be restored (or why nothing was) goes to the banner."""
        session, gallery = self.controller.session, self.controller.gallery
        session.show_error(None, TOPIC)
        try:
            recipe = read_recipe(path)
        except InvalidRequest as exc:
            session.show_error(ErrorInfo.from_exception(exc), TOPIC)
            return False
        present = {r.sha256: gallery.path(r.id) for r in gallery.references if not gallery.is_missing(r.id)}
        known = session.known_photo(recipe.content.sha256) if recipe.content.sha256 else None
        in_gallery = present.get(recipe.content.sha256)  # a reference used as the photo
        candidates = [p for p in (known,) if p] + photo_candidates(Path(path)) + [p for p in (in_gallery,) if p]
        resolution = resolve_recipe(recipe, present, candidates)
        if resolution.request is None:
            located = self.locate_photo(recipe.content.name, Path(path).parent)
            if located is None:
                session.show_error(ErrorInfo("photo_missing", f"The photo {recipe.content.name} of {Path(path).name} "
                                             "was not found: nothing was restored",
                                             "Drop the result again and locate the photo when asked."), TOPIC)
                return False
            resolution = resolve_recipe(recipe, present, content=located)
        return self._apply(resolution, Path(path).name)

    def _apply(self, resolution: Resolution, name: str) -> bool:
        controller, session, gallery = self.controller, self.controller.session, self.controller.gallery
        request = resolution.request
        before = controller.stage1, controller.match, controller.output
        controller.stage1, controller.match, controller.output = request.stage1, request.match, request.output
        if not controller.open_content(resolution.content):  # analysed with the result's working size
            controller.stage1, controller.match, controller.output = before
            return False  # the photo's own message is in the banner
        stage1_changed = request.stage1 != before[0]
        if stage1_changed:  # the references' analyses are of another working size: redo them
            for ref in gallery.references:
                gallery.set_analysis(ref.id, None)
            controller.analyze_references()
        ids_by_path = {gallery.path(r.id): r.id for r in gallery.references}
        ids = [ids_by_path[ref.path] for ref in request.references]
        pins = [(pin.content_region, PinTarget(ids[pin.style_index], pin.style_region)) for pin in request.pins]
        pinned_only = self._check_references(ids, {target.ref_id for _, target in pins})
        # the controller lists pinned-only references in the order of their first pin: pin them in the run's order
        pins.sort(key=lambda pin: pinned_only.index(pin[1].ref_id) if pin[1].ref_id in pinned_only else -1)
        edit = request.content.region_edit
        session.restore_pins(pins, None if edit is None else edit.override,
                             self._reference_overrides(ids, request, name))
        session.restore_parameters(request.stage3)
        if resolution.missing:
            session.show_error(ErrorInfo(
                "references_missing", f"{count(len(resolution.missing), 'reference')} of {name} "
                f"{'is' if len(resolution.missing) == 1 else 'are'} not in the gallery: {resolution.missing_text()}",
                "Add the same pictures to the gallery and drop the result again; until then a run uses the others "
                "(pins to the missing ones were left out)."), TOPIC)
        if not resolution.content_matches:
            session.show_error(ErrorInfo("photo_differs", f"{Path(resolution.content).name} is not the photo "
                                         f"{name} was made from (other pixels): its pins and region edit were "
                                         "left out", "The parameters and references were restored."), TOPIC)
        session.status = f"Restored how {name} was made: ready to run"
        return True

    def _reference_overrides(self, ids: list[str], request: TransferRequest, name: str) -> dict[str, np.ndarray | None]:
        """Gallery id -> the run's edit of that reference's map (None: the run had none). An edit on another grid than
        the reference's analysis here is left out with a notice; one whose reference is not analysed yet is checked
        when its analysis arrives (`Session.fit_reference_edit`)."""
        gallery, overrides, unfit = self.controller.gallery, {}, []
        for ref_id, ref in zip(ids, request.references):
            override = None if ref.region_edit is None else ref.region_edit.override
            analysis = gallery.analysis(ref_id)
            if override is not None and analysis is not None and override.shape != analysis.labels.shape:
                unfit.append(gallery.get(ref_id).name)
                override = None
            overrides[ref_id] = override
        if unfit:
            self.controller.session.show_error(ErrorInfo(
                "region_edit_dropped", f"The region edit of {', '.join(unfit)} in {name} does not fit "
                f"{'its' if len(unfit) == 1 else 'their'} regions here (another grid): it was left out",
                "The rest was restored; paint that reference's regions again if needed."), TOPIC)
        return overrides

    def _check_references(self, ids: list[str], pinned: set[str]) -> list[str]:
        """Check exactly the run's references `ids` but those in it by their pin only (returned, in the run's order),
        so the next run lists them as the original did."""
        gallery = self.controller.gallery
        order = [r.id for r in gallery.references]
        checked = checked_references(ids, order, pinned)
        if checked < 0:  # no split reproduces the order (a recipe not made in the window): check them all
            checked = len(ids)
        for ref_id in order:
            if gallery.get(ref_id).enabled != (ref_id in ids[:checked]):
                gallery.set_enabled(ref_id, ref_id in ids[:checked])
        return ids[checked:]

    def _ask_for_photo(self, name: str, folder: Path) -> Path | None:
        path, _ = QFileDialog.getOpenFileName(self.widget, f"Where is {name}? (the photo of this result)",
                                              str(folder / name), IMAGE_FILTER)
        return Path(path) if path else None
