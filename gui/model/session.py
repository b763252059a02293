"""The document: one content photo with its analysis, matches, pins, generation parameters and run history.

Pins and history are saved per content (keyed by the pixels' hash, so reopening the same photo restores
them) in `<data folder>/sessions/<sha>/session.json`, about a second after the last change and on close.
Pins go through the `QUndoStack` (`gui.model.undo`); selection, hover and opacity are not undoable.

The saved session is untrusted input when read back: `parse_session` checks every field (a damaged file falls
back to its backup, with a message; one that cannot be used is kept aside, never overwritten). A newer or
unreadable session opens read-only. Runs whose result file is missing stay in the history.

Pins name regions of the map shown: the method's (stage 1) once the photo is analysed, else the instant draft's
quick regions. Their ids differ, so pins made on quick regions are dropped when the method's regions arrive.

The artist's hand edits of the method's regions (engine/stage1/edits.py) are saved beside the pins and go through
the same undo stack: the photo's (`region_override`) and each reference's (`reference_overrides`, by gallery id).
They live in the photo's session, not in the gallery, because the pins that name reference regions live here: one
document keeps the pins and the maps they point at consistent (another photo's pins are never left naming a region
that an edit made for this one removed). An edit that removes a pinned region drops that pin with a notice.
"""
from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, QTimer, Signal, Slot
from PySide6.QtGui import QUndoStack

from engine.errors import StyleGalleryError
from engine.params import FAST_MODES, Stage3Params, stage3_for_fast_mode
from engine.persistence import load_document, save_json_atomic
from engine.recipe import edit_document, parse_edit
from engine.schema import SchemaError, expect, file_name, items, member, number, one_of, whole
from engine.stage1.edits import RegionEdit, edited_labels, removed_regions
from engine.types import Pin

from .disk_errors import disk_error_info
from .errors import ErrorInfo, document_problem
from .properties import Property
from .region_names import QUICK_REGIONS
from .undo import EditRegions, PinRegion

SESSION_VERSION = 1
AUTOSAVE_MS = 1000
_DEFAULT_STAGE3 = Stage3Params()


@dataclass(frozen=True)
class PinTarget:
    """What the artist pinned a content region to: a gallery reference, whole (region None) or one region."""

    ref_id: str
    style_region: int | None = None


@dataclass(frozen=True)
class ShownMatch:
    """A content region's match as shown: the engine's choice, or the artist's pin over it."""

    content_region: int
    ref_id: str | None
    style_region: int | None
    score: float | None
    pinned: bool


@dataclass(frozen=True)
class RunRecord:
    """One run in this content's history; `file` is the result PNG inside the session folder."""

    file: str
    created: str
    params: dict
    references: list[str]
    pins: list[dict]
    steps_done: int
    steps_total: int
    cancelled: bool
    seconds: float
    random_weights: bool
    final_loss: float | None = None


@dataclass(frozen=True)
class SavedSession:
    """A session document as checked by `parse_session`."""

    pins: dict[int, PinTarget]
    pins_source: str
    params: dict  # the saved ones of steps, content_weight, lr, seed, fast_mode
    history: list[RunRecord]
    region_override: np.ndarray | None = None  # the hand edit of the method's regions (0 = automatic)
    reference_overrides: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)  # by gallery id


PIN_SOURCES = ("method", "quick")
SAVED_PARAMS = ("fast_mode", "steps", "content_weight", "lr", "seed")  # the fast mode first: it resets the rest


def parse_session(data) -> SavedSession:
    """A session document, checked field by field (SchemaError at the first thing wrong)."""
    expect(data, dict, "session")
    pins = {}
    for row, where in items(member(data, "pins", list, "session", []), "pins"):
        style_region = member(row, "style_region", (int, type(None)), where, None)
        pins[whole(member(row, "region", int, where), f"{where}.region", 0)] = PinTarget(
            member(row, "ref_id", str, where), None if style_region is None else whole(style_region, where, 0))
    saved = member(data, "params", dict, "session", {})
    checks = {"steps": lambda v, w: whole(v, w, 1), "content_weight": lambda v, w: number(v, w, 0.0),
              "lr": lambda v, w: number(v, w, 0.0), "seed": whole,
              "fast_mode": lambda v, w: one_of(v, ("none", *FAST_MODES), w)}
    params = {name: checks[name](saved[name], f"params.{name}") for name in SAVED_PARAMS if name in saved}
    history = [_run_record(row, where) for row, where in items(member(data, "history", list, "session", []),
                                                                 "history")]
    references = {}
    for row, where in items(member(data, "reference_edits", list, "session", []), "reference_edits"):
        ref_id = member(row, "ref_id", str, where)
        if not ref_id or ref_id in references:
            raise SchemaError(f"{where}.ref_id: empty, or a reference edited twice")
        references[ref_id] = _region_override(row, where)
    return SavedSession(pins, one_of(member(data, "pins_source", str, "session", "method"), PIN_SOURCES,
                                     "pins_source"), params, history,
                        _region_override(member(data, "region_edit", (dict, type(None)), "session", None)),
                        references)


def session_document(content: Path | None, saved: SavedSession) -> dict:
    """A session as the JSON that `parse_session` reads back."""
    override = saved.region_override
    return {
        "content": str(content) if content else None,
        "pins": [{"region": r, **asdict(t)} for r, t in sorted(saved.pins.items())],
        "pins_source": saved.pins_source,
        "region_edit": None if override is None else edit_document(override),
        "reference_edits": [{"ref_id": ref_id, **edit_document(edit)}
                            for ref_id, edit in sorted(saved.reference_overrides.items())],
        "params": saved.params,
        "history": [asdict(r) for r in saved.history],
    }


def _region_override(row: dict | None, where: str = "region_edit") -> np.ndarray | None:
    """A saved edit (`engine.recipe.edit_document`'s form), or None."""
    return None if row is None else parse_edit(row, where)


def _run_record(row, where: str) -> RunRecord:
    references = [expect(name, str, w) for name, w in items(member(row, "references", list, where),
                                                             f"{where}.references")]
    pins = [expect(pin, dict, w) for pin, w in items(member(row, "pins", list, where), f"{where}.pins")]
    final_loss = member(row, "final_loss", (int, float, type(None)), where, None)
    return RunRecord(
        file=file_name(member(row, "file", str, where), f"{where}.file"), created=member(row, "created", str, where),
        params=member(row, "params", dict, where), references=references, pins=pins,
        steps_done=whole(member(row, "steps_done", int, where), f"{where}.steps_done", 0),
        steps_total=whole(member(row, "steps_total", int, where), f"{where}.steps_total", 0),
        cancelled=member(row, "cancelled", bool, where), seconds=number(member(row, "seconds", (int, float), where),
                                                                      f"{where}.seconds", 0.0),
        random_weights=member(row, "random_weights", bool, where),
        final_loss=None if final_loss is None else number(final_loss, f"{where}.final_loss"))


class Session(QObject):
    """Observable state of the open content; widgets bind to it and hold nothing themselves."""

    modified = Signal(str)
    content_changed = Signal(object)
    analysis_changed = Signal(object)
    match_table_changed = Signal(object)
    match_refs_changed = Signal(object)
    opacity_changed = Signal(object)
    overlay_visible_changed = Signal(object)
    reference_maps_changed = Signal(object)
    selected_region_changed = Signal(object)
    selected_style_region_changed = Signal(object)
    hovered_region_changed = Signal(object)
    steps_changed = Signal(object)
    content_weight_changed = Signal(object)
    lr_changed = Signal(object)
    seed_changed = Signal(object)
    fast_mode_changed = Signal(object)
    running_changed = Signal(object)
    progress_changed = Signal(object)
    activity_changed = Signal(object)
    loss_changed = Signal(object)
    preview_changed = Signal(object)
    result_changed = Signal(object)
    messages_changed = Signal(object)
    status_changed = Signal(object)
    random_weights_changed = Signal(object)
    draft_changed = Signal(object)
    draft_refs_changed = Signal(object)
    draft_message_changed = Signal(object)
    drafting_changed = Signal(object)
    models_missing_changed = Signal(object)
    draft_strength_changed = Signal(object)
    draft_preserve_colour_changed = Signal(object)
    pins_changed = Signal()
    regions_changed = Signal()  # the region map pins refer to changed (analysis arrived, quick regions, an edit)
    region_override_changed = Signal(object)
    reference_regions_changed = Signal(str)  # a reference's hand edit changed (its gallery id)
    history_changed = Signal()

    content = Property(None)  # Path of the photo
    analysis = Property(None)  # engine Analysis of the content
    region_override = Property(None)  # int64 (h, w) hand edit of the analysis' labels (0 = automatic), or None
    match_table = Property(None)  # engine MatchTable
    match_refs = Property(())  # gallery ids in the order the match table's style_index counts them
    opacity = Property(55)  # region overlay opacity, percent
    overlay_visible = Property(True)
    reference_maps = Property(False)  # gallery thumbnails show their region maps
    selected_region = Property(None)
    selected_style_region = Property(None)  # (gallery id, region) last picked on a reference's map: its brush colour
    hovered_region = Property(None)
    steps = Property(_DEFAULT_STAGE3.steps, persist=True)
    content_weight = Property(_DEFAULT_STAGE3.content_weight, persist=True)
    lr = Property(_DEFAULT_STAGE3.lr, persist=True)
    seed = Property(_DEFAULT_STAGE3.seed, persist=True)
    fast_mode = Property(_DEFAULT_STAGE3.fast_mode, persist=True)
    running = Property(False)
    progress = Property((0, 0))  # (step, total) of the running transfer's optimisation
    activity = Property(None)  # (message, step, total) of other work (analysis, download); None when idle
    loss = Property(None)
    preview = Property(None)  # uint8 HxWx3 of the running transfer
    result = Property(None)  # RunRecord shown in the result view
    messages = Property(())  # (topic, ErrorInfo) pairs in the banner, oldest first: none replaces another
    status = Property("")  # one line for the status bar
    random_weights = Property(False)  # the models in use have random weights: label everything they make
    draft = Property(None)  # engine DraftResult of the instant draft shown in the Draft tab
    draft_refs = Property(())  # gallery ids in the order the draft's matches count them
    draft_message = Property("")  # why there is no draft (extra missing, no reference, ...); "" when fine
    drafting = Property(False)  # a draft is being made
    models_missing = Property(False)  # the full method's models are not here: drafts only until they are
    draft_strength = Property(100)  # percent; a preference (QSettings), not part of the document
    draft_preserve_colour = Property(False)  # a preference (QSettings)

    def __init__(self, folder: Path, parent: QObject | None = None):
        super().__init__(parent)
        self.folder = Path(folder)  # <data folder>/sessions
        self.content_sha = ""
        self.pins: dict[int, PinTarget] = {}
        self.pins_source = "method"  # the region map the pins were made on: "method" or "quick"
        self.history: list[RunRecord] = []
        self.stage3_base: Stage3Params | None = None  # a restored result's stage-3 parameters (see `stage3`)
        self.reference_overrides: dict[str, np.ndarray] = {}  # gallery id -> hand edit of that reference's map
        self.read_only = False  # the open content's session.json is newer or unreadable: never saved over
        self.undo_stack = QUndoStack(self)
        self._autosave = QTimer(self, singleShot=True, interval=AUTOSAVE_MS)
        self._autosave.timeout.connect(self.save)
        self.modified.connect(self._schedule_save)
        self.fast_mode_changed.connect(self._apply_fast_mode)
        self.analysis_changed.connect(self._analysis_changed)
        self.draft_changed.connect(self._draft_changed)

    # ----- content
    @property
    def run_folder(self) -> Path:
        return self.folder / self.content_sha

    def open(self, path: Path, sha256: str) -> None:
        """Switch to another photo: save this one, then restore the new one's pins, history and parameters."""
        self.save()
        self.undo_stack.clear()
        self.analysis = None
        self.match_table = None
        self.match_refs = ()
        self.selected_region = self.hovered_region = self.selected_style_region = None
        self.result = None
        self.preview = None
        self.draft, self.draft_refs, self.draft_message = None, (), ""
        self.content_sha = sha256
        self.pins, self.history, self.pins_source, self.read_only = {}, [], "method", False
        self.region_override = None
        self.stage3_base = None
        edited_before, self.reference_overrides = set(self.reference_overrides), {}
        self._restore()
        self.content = Path(path)
        self.pins_changed.emit()
        self.history_changed.emit()
        for ref_id in sorted(edited_before | set(self.reference_overrides)):  # this photo's reference maps
            self.reference_regions_changed.emit(ref_id)
        if self.history:
            self.result = self.history[-1]

    def known_photo(self, sha256: str) -> Path | None:
        """Where the photo with these pixels was last opened from on this computer (its saved session says so), if
        a file is still there; for restoring a result (gui/restore.py), which knows the photo by hash only."""
        if sha256 == self.content_sha and self.content is not None:
            return Path(self.content)
        if not re.fullmatch(r"[0-9a-f]{64}", sha256):
            return None  # never a path out of the sessions folder
        try:
            saved = json.loads((self.folder / sha256 / "session.json").read_text(encoding="utf-8"))["data"]["content"]
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return Path(saved) if isinstance(saved, str) and Path(saved).is_file() else None

    # ----- pins and matches
    def set_pin(self, region: int, target: PinTarget | None) -> None:
        """Model setter used by the undo commands (never directly by widgets: they call `pin`)."""
        if self.pins.get(region) == target:
            return
        if not self.pins:
            self.pins_source = self.region_source() or "method"
        if target is None:
            self.pins.pop(region, None)
        else:
            self.pins[region] = target
        self.pins_changed.emit()
        self.modified.emit("pins")

    def pin(self, region: int, target: PinTarget | None) -> None:
        """Pin (or with None, unpin) a content region, undoably."""
        if self.pins.get(region) != target:
            self.undo_stack.push(PinRegion(self, region, target, self.pins.get(region)))

    def clear_pins(self) -> None:
        """Unpin every region as one undo step."""
        if not self.pins:
            return
        self.undo_stack.beginMacro("Clear all pins")
        for region in sorted(self.pins):
            self.pin(region, None)
        self.undo_stack.endMacro()

    def restore_pins(self, pins: list[tuple[int, PinTarget]], region_override: np.ndarray | None,
                     reference_overrides: dict[str, np.ndarray | None] | None = None) -> None:
        """A saved result's pins (made on the method's regions, in this order) and region edits in place of this
        photo's, as one undo step: the photo's, and each of the run's references' (gallery id -> its edit, None for
        none), so a reference edited since the run gets the run's map back."""
        no_edit = np.zeros((1, 1), np.int64)
        self.undo_stack.beginMacro("Restore a result's pins and regions")
        self.clear_pins()
        self.edit_regions(region_override if region_override is not None else no_edit, "Restore the region edit")
        for ref_id, override in (reference_overrides or {}).items():  # before the pins, which may name its regions
            self.edit_regions(override if override is not None else no_edit, "Restore a reference's region edit",
                              ref_id)
        self.pins_source = "method"
        for region, target in pins:
            self.pin(region, target)
        self.undo_stack.endMacro()

    # ----- the region map
    def region_labels(self) -> np.ndarray | None:
        """The region map shown and pinned: the method's once analysed (with the artist's edit), else the draft's
        quick regions."""
        if self.analysis is not None:
            if self.region_override is not None:
                return edited_labels(self.analysis.labels, self.region_override)
            return self.analysis.labels
        if self.draft is not None and self.draft.region_source == "quick":
            return self.draft.labels
        return None

    def region_edit(self) -> RegionEdit | None:
        """The edit for engine requests (None without one, or before the analysis it was made on)."""
        if self.analysis is None or self.region_override is None:
            return None
        return RegionEdit(self.region_override)

    def override_of(self, ref_id: str | None = None) -> np.ndarray | None:
        """The hand edit of the photo's map (`ref_id` None) or of reference `ref_id`'s."""
        return self.region_override if ref_id is None else self.reference_overrides.get(ref_id)

    def reference_labels(self, ref_id: str, automatic: np.ndarray | None) -> np.ndarray | None:
        """Reference `ref_id`'s map as shown, matched and pinned: its `automatic` labels with the artist's edit."""
        override = self._fitting_override(ref_id, automatic)
        return automatic if override is None else edited_labels(automatic, override)

    def reference_edit(self, ref_id: str, automatic: np.ndarray | None) -> RegionEdit | None:
        """Reference `ref_id`'s edit for engine requests: None without one, or when it does not fit the `automatic`
        labels it would apply to (not analysed yet, or analysed at another working size)."""
        override = self._fitting_override(ref_id, automatic)
        return None if override is None else RegionEdit(override)

    def _fitting_override(self, ref_id: str, automatic: np.ndarray | None) -> np.ndarray | None:
        """Reference `ref_id`'s hand edit when there are `automatic` labels of its grid to apply it to, else None."""
        override = self.reference_overrides.get(ref_id)
        if automatic is None or override is None or override.shape != automatic.shape:
            return None
        return override

    def fit_reference_edit(self, ref_id: str, automatic: np.ndarray) -> None:
        """A reference's analysis arrived: an edit made at another working size is set aside, with a notice (as the
        photo's is in `_analysis_changed`)."""
        override = self.reference_overrides.get(ref_id)
        if override is not None and override.shape != automatic.shape:
            del self.reference_overrides[ref_id]
            self.undo_stack.clear()
            self.modified.emit("regions")
            self.reference_regions_changed.emit(ref_id)
            self.show_error(ErrorInfo("region_edit_dropped", "A reference's region edit was made at another working "
                                      "size and no longer fits its regions: it was set aside",
                                      "Paint that reference's regions again."), "regions")

    def set_region_override(self, override: np.ndarray | None, ref_id: str | None = None,
                            automatic: np.ndarray | None = None) -> None:
        """Model setter used by the undo commands (widgets call `edit_regions`) for the photo's map, or with `ref_id`
        for that reference's (made on its `automatic` labels): pins on regions the new map no longer has are dropped,
        with a notice naming them."""
        override = None if override is None or not override.any() else override
        if ref_id is None:
            before = self.region_labels()
            self.region_override = override
            removed = removed_regions(before, self.region_labels()) if before is not None else set()
            gone = sorted(removed & set(self.pins))
            lost = f"region {', '.join(map(str, gone))}: its pin was dropped"
        else:
            before = self.reference_labels(ref_id, automatic)
            if override is None:
                self.reference_overrides.pop(ref_id, None)
            else:
                self.reference_overrides[ref_id] = override
            removed = removed_regions(before, self.reference_labels(ref_id, automatic)) if before is not None else set()
            gone = sorted(r for r, t in self.pins.items() if t.ref_id == ref_id and t.style_region in removed)
            targets = sorted({self.pins[r].style_region for r in gone})
            lost = (f"reference region {', '.join(map(str, targets))}: the pin of photo region "
                    f"{', '.join(map(str, gone))} was dropped")
        for region in gone:
            self.set_pin(region, None)
        if gone:
            self.show_error(ErrorInfo("pins_dropped", f"The region edit removed {lost}",
                                      "Undo (Ctrl+Z) brings the region and its pin back."), "regions")
        self.modified.emit("regions")
        if ref_id is None:
            self.regions_changed.emit()
        else:
            self.reference_regions_changed.emit(ref_id)

    def edit_regions(self, override: np.ndarray, text: str, ref_id: str | None = None,
                     automatic: np.ndarray | None = None) -> None:
        """Apply a new override of the photo's map (or of reference `ref_id`'s, made on its `automatic` labels) as one
        undoable step named `text` (nothing when it changes nothing)."""
        old = self.override_of(ref_id)
        if old is None and not override.any() or old is not None and np.array_equal(old, override):
            return
        self.undo_stack.push(EditRegions(self, override, old, text, ref_id, automatic))

    def region_source(self) -> str:
        """"method", "quick" (the draft's classical stand-in) or "" (no map yet)."""
        if self.analysis is not None:
            return "method"
        return "quick" if self.region_labels() is not None else ""

    def region_shares(self) -> dict[int, float]:
        """Each region's share of the photo, from the map shown."""
        labels = self.region_labels()
        if labels is None:
            return {}
        ids, counts = np.unique(labels, return_counts=True)
        return {int(i): int(c) / labels.size for i, c in zip(ids, counts)}

    @Slot(object)
    def _analysis_changed(self, analysis) -> None:
        override = self.region_override
        if analysis is not None and override is not None and override.shape != analysis.labels.shape:
            self.region_override = None  # made at another working size: it would paint the wrong cells
            self.undo_stack.clear()
            self.modified.emit("regions")
            self.show_error(ErrorInfo("region_edit_dropped", "The region edit was made at another working size and "
                                      "no longer fits the regions: it was set aside",
                                      "Paint the regions again."), "regions")
        if analysis is not None and self.pins and self.pins_source != "method":
            self.pins = {}  # quick-region ids mean nothing on the method's map; the commands that made them neither
            self.undo_stack.clear()
            self.pins_source = "method"
            self.pins_changed.emit()
            self.modified.emit("pins")
            self.status = (f"The method's regions replaced the {QUICK_REGIONS}: pins made on {QUICK_REGIONS} "
                           "were cleared")
        self.regions_changed.emit()

    @Slot(object)
    def _draft_changed(self, draft) -> None:
        if self.analysis is None:
            self.regions_changed.emit()

    def shown_match(self, region: int) -> ShownMatch | None:
        """The engine's match for `region`, with the artist's pin (and the pinned pair's score) over it.
        On quick regions (no analysis yet) the engine's match is the draft's quick match."""
        if self.analysis is None and self.draft is not None and self.draft.region_source == "quick":
            return self._draft_match(region)
        table, refs = self.match_table, self.match_refs
        pin = self.pins.get(region)
        if pin is not None:
            score = None
            if table is not None and pin.ref_id in refs and pin.style_region is not None:
                index = refs.index(pin.ref_id)
                score = next((p.score for p in table.candidates(region)
                              if p.style_index == index and p.style_region == pin.style_region), None)
            return ShownMatch(region, pin.ref_id, pin.style_region, score, True)
        if table is None or region not in table.matches:
            return None
        match = table.matches[region]
        ref_id = refs[match.style_index] if match.style_index < len(refs) else None
        return ShownMatch(region, ref_id, match.style_region, match.score, False)

    def _draft_match(self, region: int) -> ShownMatch | None:
        pin = self.pins.get(region)
        if pin is not None:
            return ShownMatch(region, pin.ref_id, pin.style_region, None, True)
        match = self.draft.matches.get(region)
        if match is None:
            return None
        refs = self.draft_refs
        ref_id = refs[match.style_index] if match.style_index < len(refs) else None
        return ShownMatch(region, ref_id, match.style_region, match.score, False)

    def engine_pins(self, ref_ids: list[str], source: str = "method") -> list[Pin]:
        """Pins for a job on `source` regions whose references are `ref_ids` (pins to references not in it, or made
        on the other region map, are left out)."""
        if source != self.pins_source:
            return []
        return [Pin(region, ref_ids.index(t.ref_id), t.style_region)
                for region, t in sorted(self.pins.items()) if t.ref_id in ref_ids]

    # ----- parameters
    def stage3(self) -> Stage3Params:
        """The run's stage-3 parameters: the fast mode's schedule (or a restored result's parameters, while its fast
        mode is chosen) with the artist's numbers over it."""
        base = self.stage3_base
        if base is None or base.fast_mode != self.fast_mode:
            base = stage3_for_fast_mode(self.fast_mode)
        return dataclasses.replace(base, steps=int(self.steps), lr=float(self.lr),
                                   content_weight=float(self.content_weight), seed=int(self.seed))

    def restore_parameters(self, stage3: Stage3Params) -> None:
        """A saved result's stage-3 parameters, all of them: those the panel shows, and the rest kept as the base of
        `stage3` until another fast mode is chosen or another photo opened."""
        self.stage3_base = None
        self.fast_mode = stage3.fast_mode
        self.stage3_base = stage3
        self.steps, self.lr, self.content_weight, self.seed = stage3.steps, stage3.lr, stage3.content_weight, stage3.seed

    @Slot(object)
    def _apply_fast_mode(self, mode: str) -> None:
        """Choosing a fast mode loads its SPEC steps, lr and content weight (the artist may then edit them)."""
        spec = FAST_MODES.get(mode)
        base = stage3_for_fast_mode(mode) if spec else _DEFAULT_STAGE3
        self.steps, self.lr, self.content_weight = base.steps, base.lr, base.content_weight

    # ----- history
    def add_run(self, record: RunRecord) -> None:
        self.history.append(record)
        self.history_changed.emit()
        self.result = record
        self.save()

    def record_run(self, sha: str, content: Path, record: RunRecord) -> None:
        """Add a finished run to its photo's history: the open photo's here, another's (a queued run that ended after
        the artist opened another photo) in its saved session. A session that cannot take it is a banner message."""
        if sha == self.content_sha:
            self.add_run(record)
            return
        path = self.folder / sha / "session.json"
        loaded = load_document(path, SESSION_VERSION, validate=parse_session)
        if loaded is not None and loaded.read_only:
            self.show_error(ErrorInfo("document_read_only", f"The run of {content.name} is in {path.parent} but not "
                                      "in its history: its session file is newer or unreadable",
                                      "Nothing in the file was changed."), "run")
            return
        saved = loaded.data if loaded is not None and loaded.data is not None else SavedSession({}, "method", {}, [])
        saved = dataclasses.replace(saved, history=[*saved.history, record])
        try:
            save_json_atomic(path, session_document(content, saved), SESSION_VERSION, validate=parse_session)
        except StyleGalleryError as exc:  # a newer StyleGallery wrote it meanwhile: leave it to that one
            self.show_error(ErrorInfo.from_exception(exc), "run")
        except OSError as exc:
            self.show_error(disk_error_info(f"add the run to the history of {content.name}", exc), "run")

    def result_path(self, record: RunRecord) -> Path:
        return self.run_folder / record.file

    # ----- messages (the banner)
    @property
    def error(self) -> ErrorInfo | None:
        """The newest message in the banner, or None."""
        return self.messages[-1][1] if self.messages else None

    def show_error(self, info: ErrorInfo | None, topic: str = "") -> None:
        """Queue `info` in the banner under `topic` (what it is about: "content", "run", "models", "gallery",
        "save", ...); an equal message already queued is not repeated. None withdraws `topic`'s messages, when
        what they were about is redone (a new photo opened, a new run started): no other message goes with them."""
        if info is None:
            self.messages = tuple(m for m in self.messages if m[0] != topic)
        elif (topic, info) not in self.messages:
            self.messages = self.messages + ((topic, info),)

    def dismiss(self, info: ErrorInfo) -> None:
        """The artist closed one message."""
        self.messages = tuple(m for m in self.messages if m[1] != info)

    # ----- persistence
    @Slot()
    def _schedule_save(self) -> None:
        self._autosave.start()

    @Slot()
    def save(self) -> bool:
        """Write pins, parameters and history of the open content; marks the undo stack clean. False (and a banner
        message) when the disk refuses: everything stays in memory and the next save tries again."""
        self._autosave.stop()
        if not self.content_sha or self.read_only:
            return True
        data = session_document(self.content, SavedSession(
            self.pins, self.pins_source, {name: getattr(self, name) for name in SAVED_PARAMS}, self.history,
            self.region_override, self.reference_overrides))
        try:
            save_json_atomic(self.run_folder / "session.json", data, SESSION_VERSION, validate=parse_session)
        except StyleGalleryError as exc:  # a newer StyleGallery wrote it meanwhile: leave it to that one
            self.read_only = True
            self.show_error(ErrorInfo.from_exception(exc), "save")
            return False
        except OSError as exc:
            name = Path(self.content).name if self.content else "this photo"
            self.show_error(disk_error_info(f"save the pins and history of {name}", exc), "session_save")
            return False
        self.show_error(None, "session_save")  # an earlier failed save is now made good
        self.undo_stack.setClean()
        return True

    def _restore(self) -> None:
        loaded = load_document(self.run_folder / "session.json", SESSION_VERSION, validate=parse_session)
        if loaded is None:
            return
        self.read_only = loaded.read_only
        problem = document_problem(loaded)
        if problem is not None:
            self.show_error(problem, "content")  # about this photo's session: withdrawn when another opens
        saved: SavedSession | None = loaded.data
        if saved is None:
            return
        self.pins, self.pins_source, self.history = saved.pins, saved.pins_source, saved.history
        self.region_override = saved.region_override
        self.reference_overrides = dict(saved.reference_overrides)
        for name in SAVED_PARAMS:
            if name in saved.params:
                setattr(self, name, saved.params[name])
