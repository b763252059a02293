"""Instant draft: a seconds-fast preview of a region-by-region restyle, on Magenta's arbitrary-stylisation network.

The draft needs the optional `draft` extra (`pip install -e .[draft]`); importing this package loads nothing heavy,
and every entry point raises `DraftUnavailable` with one readable line when the extra is missing.
"""
from __future__ import annotations

from .draft import DraftResult, Drafter
from .onnx_models import DraftUnavailable, draft_available, require_draft

__all__ = ["DraftResult", "Drafter", "DraftUnavailable", "draft_available", "require_draft"]
