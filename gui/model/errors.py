"""What the window shows for a failure: kind, one-line message, hint (KAD's `Error(kind, message, data)`)."""
from __future__ import annotations

import logging
from dataclasses import dataclass

from engine.errors import OutOfMemory, StyleGalleryError
from engine.memory import is_out_of_memory
from engine.persistence import LoadedDocument

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ErrorInfo:
    kind: str
    message: str
    hint: str = ""

    @property
    def is_warning(self) -> bool:
        """Input problems the user fixes by picking another file, and the drafts-only state (no model yet, the
        draft works): not failures of the app."""
        return self.kind in ("image_unreadable", "image_too_large", "not_an_image", "duplicate", "draft_only")

    @classmethod
    def from_exception(cls, exc: BaseException) -> "ErrorInfo":
        """Typed engine errors keep their kind and hint; anything else is logged with its traceback."""
        if isinstance(exc, StyleGalleryError):
            return cls(exc.kind, exc.message, exc.hint)
        if is_out_of_memory(exc):  # the engine's guard turns these into OutOfMemory; this catches the rest
            return cls(OutOfMemory.kind, f"Out of memory: {exc}".strip(), OutOfMemory.hint)
        log.error("unexpected error", exc_info=exc)
        return cls("internal", f"Error: {type(exc).__name__}: {exc}",
                   "This is a bug in StyleGallery; the log has the details.")


def document_problem(loaded: LoadedDocument) -> ErrorInfo | None:
    """The banner for a saved document that was damaged, restored, newer or unreadable (None when it was fine):
    the message names the file and what was done."""
    if not loaded.problem:
        return None
    if loaded.read_only:
        return ErrorInfo("document_read_only", loaded.problem, "Nothing in the file was changed or deleted.")
    return ErrorInfo("document_restored", loaded.problem,
                     "Nothing was deleted: a damaged file is kept beside the original under a .damaged- name.")
