"""Versioned JSON documents (gallery index, pins, run history) that survive a crash or kill mid-write.

A save never touches the live file until the new content is complete on disk: it is written to a temp
file beside it, flushed and fsynced, then swapped in with `os.replace` (atomic on POSIX and Windows).
Before the swap, the previous file -- if it still parses -- becomes `<name>.bak`, so a file damaged
later (disk trouble, another program) can fall back to the last good state. A kill between the two
renames leaves only the backup, which `load_json` then returns.

On disk: `{"version": <int>, "data": <document>}`; `migrate(data, version)` upgrades old documents.
"""
from __future__ import annotations

import glob
import json
import logging
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable

from .errors import DocumentUnreadable

log = logging.getLogger(__name__)

Migrate = Callable[[Any, int], Any]

STALE_TEMP_SECONDS = 60.0  # a temp file this old belongs to a writer that was killed, not a running one
_REPLACE_RETRIES = 10  # Windows refuses to replace a file another process has open (virus scanner, indexer)
_locks: dict[Path, threading.Lock] = {}
_locks_guard = threading.Lock()


def backup_path(path: str | Path) -> Path:
    """Where the last good version of `path` is kept."""
    path = Path(path)
    return path.with_name(path.name + ".bak")


def save_json_atomic(path: str | Path, data: Any, version: int) -> None:
    """Write `data` as version `version` of the document at `path`, atomically, keeping `<name>.bak`."""
    path = Path(path)
    text = json.dumps({"version": int(version), "data": data}, ensure_ascii=False, indent=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _lock_for(path):
        tmp = _write_temp(path, text.encode("utf-8"))
        try:
            if _read_document(path) is not None:  # only a file that parses may become the backup
                _replace(path, backup_path(path))
            _replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        _fsync_dir(path.parent)
        _remove_stale_temps(path)


def load_json(path: str | Path, migrate: Migrate | None = None) -> Any | None:
    """The document at `path` (migrated), its backup if the file is damaged or gone, or None if neither exists.

    Raises DocumentUnreadable when files exist but none parses, so the caller does not start empty and
    overwrite what might still be recovered by hand.
    """
    path = Path(path)
    candidates = [path, backup_path(path)]
    existing = [p for p in candidates if p.exists()]
    for candidate in existing:
        document = _read_document(candidate)
        if document is None:
            log.warning("%s is damaged; trying the backup", candidate)
            continue
        if candidate != path:
            log.warning("restored %s from its backup %s", path.name, candidate.name)
        version, data = document
        return migrate(data, version) if migrate is not None else data
    if existing:
        raise DocumentUnreadable(f"{path.name} and its backup in {path.parent} are damaged and cannot be read")
    return None


def _read_document(path: Path) -> tuple[int, Any] | None:
    """(version, data) of a well-formed document, None for a missing, unreadable or malformed file."""
    try:
        raw = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        return None
    if not isinstance(raw, dict) or not isinstance(raw.get("version"), int) or "data" not in raw:
        return None
    return raw["version"], raw["data"]


def _write_temp(path: Path, payload: bytes) -> Path:
    """A complete, fsynced copy of `payload` in a fresh temp file beside `path`."""
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def _replace(src: Path, dst: Path) -> None:
    """os.replace, retried briefly where Windows reports the target as in use."""
    for attempt in range(_REPLACE_RETRIES):
        try:
            os.replace(src, dst)
            return
        except PermissionError:
            if sys.platform != "win32" or attempt == _REPLACE_RETRIES - 1:
                raise
            time.sleep(0.05 * (attempt + 1))


def _fsync_dir(folder: Path) -> None:
    """Make the renames themselves durable (POSIX; Windows has no directory handles to sync)."""
    if sys.platform == "win32":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove_stale_temps(path: Path) -> None:
    """Delete temp files left by writers that were killed (they are never read)."""
    cutoff = time.time() - STALE_TEMP_SECONDS
    for leftover in path.parent.glob(glob.escape(path.name) + ".*.tmp"):
        try:
            if leftover.stat().st_mtime < cutoff:
                leftover.unlink()
        except OSError:
            pass  # another writer got there first, or the file is in use: harmless either way


def _lock_for(path: Path) -> threading.Lock:
    """One lock per document, so two threads saving the same file do not interleave their renames."""
    key = path.resolve()
    with _locks_guard:
        return _locks.setdefault(key, threading.Lock())
