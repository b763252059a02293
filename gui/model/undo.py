"""Undoable pin and region edits. Each command goes through the document's model setters (`Session.set_pin`,
`Session.set_region_override`), so undo and redo emit the same signals as the original edit; `QUndoStack.push` runs
`redo()` at once, so handlers only push (never apply first). The commands know the document only through
`PinDocument` and `RegionDocument`: the session imports them, not the other way round."""
from __future__ import annotations

from typing import Hashable, Protocol

import numpy as np
from PySide6.QtGui import QUndoCommand


class PinDocument(Protocol):
    """What a pin command edits: the model setter of a region's pin (a target, or None for unpinned)."""

    def set_pin(self, region: int, target: Hashable | None) -> None: ...


class RegionDocument(PinDocument, Protocol):
    """What a region edit changes: the override grid, and the pins it may drop."""

    pins: dict

    def set_region_override(self, override: np.ndarray | None, ref_id: str | None = None,
                            automatic: np.ndarray | None = None) -> None: ...


class PinRegion(QUndoCommand):
    """Set content region `region`'s pin from `old` to `new` (None = unpinned). Holds ids, not objects."""

    def __init__(self, document: PinDocument, region: int, new: Hashable | None, old: Hashable | None):
        text = f"Unpin region {region}" if new is None else f"Pin region {region}"
        super().__init__(text)
        self.document, self.region, self.new, self.old = document, region, new, old

    def redo(self) -> None:
        self.document.set_pin(self.region, self.new)

    def undo(self) -> None:
        self.document.set_pin(self.region, self.old)


class EditRegions(QUndoCommand):
    """Replace the hand edit of the photo's region map, or with `ref_id` of that reference's (made on its `automatic`
    labels): `old` -> `new`, None = no edit. Undo also gives back the pins the edit dropped, so it restores the
    document exactly."""

    def __init__(self, document: RegionDocument, new: np.ndarray | None, old: np.ndarray | None, text: str,
                 ref_id: str | None = None, automatic: np.ndarray | None = None):
        super().__init__(text)
        self.document, self.new, self.old = document, new, old
        self.ref_id, self.automatic = ref_id, automatic
        self.pins_before = dict(document.pins)

    def redo(self) -> None:
        self.document.set_region_override(self.new, self.ref_id, self.automatic)

    def undo(self) -> None:
        self.document.set_region_override(self.old, self.ref_id, self.automatic)
        for region, target in self.pins_before.items():
            self.document.set_pin(region, target)
