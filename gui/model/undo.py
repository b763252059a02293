"""Undoable pin edits. Each command goes through `Session.set_pin`, so undo and redo emit the same signals
as the original edit; `QUndoStack.push` runs `redo()` at once, so handlers only push (never apply first)."""
from __future__ import annotations

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
