"""The Settings dialog's cache line: the cache folder's size, and clearing it, measured and done off the UI thread.

Why a daemon thread: a cache of thousands of entries on a slow or network disk takes seconds to walk or delete,
and the dialog must never freeze meanwhile; the result comes back as a queued signal. `engine.cache.clear_cache`
deletes only the cache's own entries and refuses a home or root folder, so a slip in the folder field cannot
delete anything else.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from PySide6.QtCore import QObject, Signal, Slot

from engine.cache import cache_entries, clear_cache
from engine.errors import StyleGalleryError, describe_os_error
from engine.wording import byte_size, count


@dataclass(frozen=True)
class CacheReport:
    """What one measure or clear found: the text to show, and whether it failed."""

    text: str
    failed: bool = False


def measure(folder: Path) -> CacheReport:
    entries = cache_entries(folder)
    return CacheReport(f"{byte_size(sum(e.size for e in entries))} in {count(len(entries), 'entry', 'entries')}")


def clear(folder: Path) -> CacheReport:
    try:
        freed = clear_cache(folder)
    except StyleGalleryError as exc:
        return CacheReport(exc.message, failed=True)
    except OSError as exc:
        return CacheReport(f"The cache could not be cleared: {describe_os_error(exc)}", failed=True)
    return CacheReport(f"Cleared {byte_size(freed)}; now {measure(folder).text}")


class CacheFolderTask(QObject):
    """Runs `measure` or `clear` on a daemon thread and emits `finished(CacheReport)` in the GUI thread, for the
    latest request only (a measure started before a clear must not show its older size after it). Kept by its
    threads, so a dialog closed meanwhile loses nothing but the report."""

    finished = Signal(object)
    _reported = Signal(int, object)  # request number, report: from the worker thread, queued to the GUI thread

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._latest = 0
        self._reported.connect(self._relay)

    def start(self, action: Callable[[Path], CacheReport], folder: Path) -> threading.Thread:
        self._latest += 1
        request = self._latest
        thread = threading.Thread(target=lambda: self._reported.emit(request, action(folder)),
                                  name="stylegallery-cache", daemon=True)
        thread.start()
        return thread

    @Slot(int, object)
    def _relay(self, request: int, report: CacheReport) -> None:
        if request == self._latest:
            self.finished.emit(report)
