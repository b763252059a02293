"""Typed engine errors: each carries a one-line message for people and a hint on what to do next.

The GUI turns them into an error banner, the CLI into one readable line and a non-zero exit.
Cancellation is not an error for the user, but analyses (which have no useful partial result)
signal it with `Cancelled`.
"""
from __future__ import annotations


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
    hint = "Downscale the image below the pixel limit (Settings) and try again."


class ModelMissing(StyleGalleryError):
    kind = "model_missing"
    hint = "Check the model source in Settings, or connect once to download it."


class UnsafeCheckpoint(StyleGalleryError):
    kind = "unsafe_checkpoint"
    hint = "Convert the checkpoint to .safetensors, or allow pickled checkpoints in Settings if you trust the file."


class OutOfMemory(StyleGalleryError):
    kind = "out_of_memory"
    hint = ("Close other GPU programs, use fewer references, or turn on the memory options "
            "(attention slicing, VAE tiling, CPU offload) in Settings.")


class DocumentTooNew(StyleGalleryError):
    """A saved document was written by a newer StyleGallery: this one opens it read-only and never saves over it."""

    kind = "document_too_new"
    hint = "Update StyleGallery to edit it; this version leaves the file as it is."


class InvalidRequest(StyleGalleryError):
    kind = "invalid_request"


class Cancelled(StyleGalleryError):
    """Raised by work that has no meaningful partial result (e.g. an analysis) when its cancel flag is set."""

    kind = "cancelled"
