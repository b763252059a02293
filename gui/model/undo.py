"""Undoable pin and region edits. Each command goes through `Session.set_pin`, so undo and redo emit the same signals
as the original edit; `QUndoStack.push` runs `redo()` at once, so handlers only push (never apply first)."""
from __future__ import annotations

import numpy as np
from PySide6.QtGui import QUndoCommand

from .session import PinTarget, Session


class PinRegion(QUndoCommand):
    """Set content region `region`'s pin from `old` to `new` (None = unpinned). Holds ids, not objects."""

    def __init__(self, session: Session, region: int, new: PinTarget | None, old: PinTarget | None):
        text = f"Unpin region {region}" if new is None else f"Pin region {region}"
        super().__init__(text)
        self.session, self.region, self.new, self.old = session, region, new, old

    def redo(self) -> None:
        self.session.set_pin(self.region, self.new)

    def undo(self) -> None:
        self.session.set_pin(self.region, self.old)


class EditRegions(QUndoCommand):
    """Replace the hand edit of the region map (`old` -> `new`, None = no edit). Undo also gives back the pins the
    edit dropped, so it restores the document exactly."""

    def __init__(self, session: Session, new: np.ndarray | None, old: np.ndarray | None, text: str):
        super().__init__(text)
        self.session, self.new, self.old = session, new, old
        self.pins_before = dict(session.pins)

    def redo(self) -> None:
        self.session.set_region_override(self.new)

    def undo(self) -> None:
        self.session.set_region_override(self.old)
        for region, target in self.pins_before.items():
            self.session.set_pin(region, target)
