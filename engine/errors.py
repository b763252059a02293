"""Typed engine errors: each carries a one-line message for people and a hint on what to do next.

The GUI turns them into an error banner, the CLI into one readable line and a non-zero exit.
Cancellation is not an error for the user, but analyses (which have no useful partial result)
signal it with `Cancelled`.
"""
from __future__ import annotations

import errno


class StyleGalleryError(Exception):
    """Base of every error the engine raises on purpose."""

    kind = "error"
    hint = ""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        if hint is not None:
            self.hint = hint

    @property
    def message(self) -> str:
        return str(self)


class ImageUnreadable(StyleGalleryError):
    kind = "image_unreadable"
    hint = "Use a PNG, JPEG, WebP, BMP or TIFF file that opens in an image viewer."


class ImageTooLarge(ImageUnreadable):
    kind = "image_too_large"
    hint = "Save a smaller copy of the picture (4000 pixels on the long side is plenty) and open that."


class ModelMissing(StyleGalleryError):
    kind = "model_missing"
    hint = "Check the model source in Settings, or connect once to download it."


class UnsafeCheckpoint(StyleGalleryError):
    kind = "unsafe_checkpoint"
    hint = ("Convert the checkpoint to .safetensors, or, if you trust the file, allow pickled checkpoints on the "
            "command line (--allow-pickle); the window never loads them.")


class OutOfMemory(StyleGalleryError):
    kind = "out_of_memory"
    hint = ("Close other GPU programs, use fewer references, or lower the memory use: half precision (fp16 in "
            "Settings, --precision fp16), fewer references per feature pass (--feature-batch 1) or a smaller "
            "working size (--working-size 384).")


class DocumentTooNew(StyleGalleryError):
    """A saved document was written by a newer StyleGallery: this one opens it read-only and never saves over it."""

    kind = "document_too_new"
    hint = "Update StyleGallery to edit it; this version leaves the file as it is."


class OutputUnwritable(StyleGalleryError):
    """An output file or folder (result, analysis, cache) that cannot be written: refused before the work."""

    kind = "output_unwritable"
    hint = "Choose another output (a writable folder on a disk with free space)."


class InvalidRequest(StyleGalleryError):
    kind = "invalid_request"


class Cancelled(StyleGalleryError):
    """Raised by work that has no meaningful partial result (e.g. an analysis) when its cancel flag is set."""

    kind = "cancelled"


_OS_ERROR_PHRASES = {
    errno.ENOSPC: "the disk is full", errno.EROFS: "the disk or folder is read-only",
    errno.ENAMETOOLONG: "a file name is too long (255 characters at most)", errno.EACCES: "permission denied",
    errno.EPERM: "permission denied", errno.ENOENT: "no such file or folder",
    errno.ENOTDIR: "a part of the path is a file, not a folder", errno.EISDIR: "it is a folder, not a file",
    errno.EEXIST: "a file of that name is in the way",
}
_SHOWN_PATH_CHARS = 120


def describe_os_error(exc: OSError) -> str:
    """A file-system error as one short readable line, whatever the platform's own wording: 'the disk is full
    (/out/result.png)'. Over-long paths are shortened to their end."""
    phrase = _OS_ERROR_PHRASES.get(exc.errno) or exc.strerror or str(exc) or type(exc).__name__
    if exc.filename is None:
        return phrase.replace("\n", " ")
    path = str(exc.filename)
    if len(path) > _SHOWN_PATH_CHARS:
        path = "..." + path[-(_SHOWN_PATH_CHARS - 3):]
    return f"{phrase} ({path})".replace("\n", " ")
