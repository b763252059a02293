"""Undoable pin edits. Each command goes through the document's `set_pin` (`Session.set_pin`), so undo and redo
emit the same signals as the original edit; `QUndoStack.push` runs `redo()` at once, so handlers only push (never
apply first). The commands know the document only through `PinDocument`: the session imports them, not the
other way round."""
from __future__ import annotations

from typing import Hashable, Protocol

from PySide6.QtGui import QUndoCommand


class PinDocument(Protocol):
    """What a pin command edits: the model setter of a region's pin (a target, or None for unpinned)."""

    def set_pin(self, region: int, target: Hashable | None) -> None: ...


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
