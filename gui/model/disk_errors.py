"""What the window says when the disk refuses a write or a path: full, read-only, name too long. One wording
for every write the window makes (gallery copies and index, session, results), so none raises out of a slot."""
from __future__ import annotations

import errno

from .errors import ErrorInfo

HINTS = {
    errno.ENOSPC: "The disk is full: free some space, then try again.",
    errno.EDQUOT: "Your disk quota is used up: free some space, then try again.",
    errno.EROFS: "The folder is on a read-only disk: choose another place.",
    errno.EACCES: "The folder cannot be written to: check its permissions.",
    errno.EPERM: "The folder cannot be written to: check its permissions.",
    errno.ENAMETOOLONG: "The file name or path is too long: rename the file or move it to a shorter path.",
}


def disk_error_info(what: str, exc: OSError, kind: str = "save_failed") -> ErrorInfo:
    """"Could not <what>: <reason>" with a hint that says what to do for the common causes. `kind`: "save_failed"
    for a write, "image_unreadable" for a file that cannot even be looked at (a name too long, say)."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    return ErrorInfo(kind, f"Could not {what}: {reason}",
                     HINTS.get(exc.errno, "Check the folder and the free space, then try again."))
