"""Versioned JSON documents (gallery index, sessions, result metadata) that survive a crash, a kill mid-write,
several writers at once and hostile content.

On disk: `{"version": <int>, "data": <document>}`. A save never touches the live file until the new content is
complete on disk: it is written to a temp file beside it (created with the user's umask), flushed and fsynced,
then swapped in with `os.replace` (atomic on POSIX and Windows). Before the swap the current file, if it is a
good document, is *copied* to `<name>.bak` (the last good state); the live file itself is never renamed away,
so concurrent savers cannot race on it and a kill at any moment leaves a complete file.

A load checks the document's shape (`validate`, see `engine.schema`) as well as its JSON, and never loses what
it could not read: a damaged file is kept aside as `<name>.damaged-<time>` (never overwritten) before the
backup is restored, a document of a newer version is opened read-only (and a save over it is refused), and a
file that cannot be read at all (permissions, I/O error) is opened read-only. What happened is told in
`LoadedDocument.problem`, for the window to show.
"""
from __future__ import annotations

import glob
import json
import logging
import os
import secrets
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, Callable

from .errors import DocumentTooNew
from .schema import SchemaError

log = logging.getLogger(__name__)

Migrate = Callable[[Any, int], Any]  # (data, stored version) -> data of the current version
Validate = Callable[[Any], Any]  # raw data -> checked (typed) data; raises SchemaError

STALE_TEMP_SECONDS = 600.0  # a leftover this old belongs to a writer that was killed, not a running one
# Our own names for unfinished writes: JSON temps (here), result PNGs (engine.results), cache entries (engine.cache)
LEFTOVER_PATTERNS = ("*.json.*.tmp", "*.partial.png", ".tmp-*.npz")
_REPLACE_RETRIES = 10  # Windows refuses to replace a file another process has open (virus scanner, indexer)
_TEMP_NAME_TRIES = 100  # random temp names collide about never; a bound keeps the loop finite anyway


@dataclass(frozen=True)
class LoadedDocument:
    """What `load_document` found. `data` is None when nothing usable was left (start empty: what could not be
    read was kept aside). `read_only`: the file must not be saved over (newer version, or unreadable)."""

    data: Any
    read_only: bool = False
    problem: str = ""  # for the user: which file, what was wrong, what was restored or kept; "" when all was well


@dataclass(frozen=True)
class _Reading:
    """One file as read: state is "ok", "missing", "unreadable" (OSError), "damaged" (JSON, envelope or shape),
    or "newer" (a version this build does not know)."""

    state: str
    version: int = 0
    data: Any = None
    raw: bytes = b""
    reason: str = ""


def backup_path(path: str | Path) -> Path:
    """Where the last good version of `path` is kept."""
    path = Path(path)
    return path.with_name(path.name + ".bak")


def save_json_atomic(path: str | Path, data: Any, version: int, validate: Validate | None = None) -> None:
    """Write `data` as version `version` of the document at `path`, atomically, copying the current good file
    to `<name>.bak` first. A current file that is damaged (by `validate` too) is kept aside, never overwritten;
    one of a newer version raises DocumentTooNew and is left as it is."""
    path = Path(path)
    text = json.dumps({"version": int(version), "data": data}, ensure_ascii=False, indent=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _write_temp(path, text.encode("utf-8"))
    try:
        current = _read(path, version)
        if current.state == "ok" and current.version == version:
            current = _validated(current, validate, None)  # an older version passed its migration when loaded
        if current.state == "newer":
            raise DocumentTooNew(f"{path} was written by a newer StyleGallery (format {current.version}; this one "
                                 f"writes {version}): it was not overwritten")
        if current.state == "unreadable":
            raise OSError(f"{path} cannot be read ({current.reason}): it was not overwritten")
        if current.state == "ok":
            _replace(_write_temp(path, current.raw, backup_path(path).name), backup_path(path))
        elif current.state == "damaged":
            _set_aside(path)
        _replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    _remove_stale_temps(path)


def load_document(path: str | Path, version: int, validate: Validate | None = None,
                  migrate: Migrate | None = None) -> LoadedDocument | None:
    """The document at `path` (migrated, then checked by `validate`), else its backup, else None when neither
    file exists. Never raises for bad content and never deletes what it could not read (see the module doc)."""
    path = Path(path)
    main = _validated(_read(path, version), validate, migrate)
    if main.state == "ok":
        return LoadedDocument(main.data)
    if main.state in ("newer", "unreadable"):
        return _read_only(path, main, version, validate)
    backup = _validated(_read(backup_path(path), version), validate, migrate)
    if main.state == "missing" and backup.state == "missing":
        return None
    if backup.state in ("newer", "unreadable"):
        return _read_only(backup_path(path), backup, version, validate)
    what = f"{path} is damaged ({main.reason})" if main.state == "damaged" else f"{path} is missing"
    try:
        kept = [_set_aside(p) for p, r in ((path, main), (backup_path(path), backup)) if r.state == "damaged"]
        kept = [p for p in kept if p is not None]
    except OSError as exc:
        log.warning("could not keep the damaged %s aside: %s", path, exc)
        return LoadedDocument(backup.data, read_only=True, problem=(
            f"{what} and could not be set aside ({exc.strerror or exc}): changes will not be saved"))
    kept_text = f"; the damaged file was kept as {', '.join(p.name for p in kept)}" if kept else ""
    if backup.state == "ok":
        saved = datetime.fromtimestamp(backup_path(path).stat().st_mtime).strftime("%Y-%m-%d %H:%M")
        problem = f"{what}{kept_text}; its backup of {saved} was restored: changes made after that are lost"
        data = backup.data
    else:
        why = f"damaged ({backup.reason})" if backup.state == "damaged" else "missing"
        problem = f"{what} and its backup is {why}{kept_text}; starting empty"
        data = None
    log.warning(problem)
    return LoadedDocument(data, problem=problem)


def remove_stale_leftovers(folder: str | Path, older_than: float = STALE_TEMP_SECONDS) -> int:
    """Delete unfinished writes (`LEFTOVER_PATTERNS`: our own temp names only) older than `older_than` seconds
    anywhere under `folder`; run at start, when no write of ours from before can still be going on. Returns the
    number removed."""
    cutoff = time.time() - older_than
    removed = 0
    for root, _, names in os.walk(folder):  # one walk: a cache folder holds thousands of entries
        for name in names:
            if not any(fnmatchcase(name, pattern) for pattern in LEFTOVER_PATTERNS):
                continue
            leftover = Path(root) / name
            try:
                if leftover.is_file() and not leftover.is_symlink() and leftover.stat().st_mtime < cutoff:
                    leftover.unlink()
                    removed += 1
            except OSError:
                pass  # gone already, or in use: harmless either way
    if removed:
        log.info("removed %d unfinished writes older than %.0f s under %s", removed, older_than, folder)
    return removed


def _read(path: Path, version: int | None = None) -> _Reading:
    """The envelope of `path`; "newer" when its version is above `version`."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return _Reading("missing")
    except OSError as exc:
        return _Reading("unreadable", reason=exc.strerror or str(exc))
    try:
        document = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return _Reading("damaged", reason="not readable as JSON")
    if not isinstance(document, dict) or type(document.get("version")) is not int or "data" not in document:
        return _Reading("damaged", reason="not a StyleGallery document")
    stored = document["version"]
    state = "newer" if version is not None and stored > version else "ok"
    return _Reading(state, stored, document["data"], raw)


def _validated(reading: _Reading, validate: Validate | None, migrate: Migrate | None) -> _Reading:
    """An "ok" reading migrated and checked (a shape error makes it "damaged"); other states unchanged."""
    if reading.state != "ok":
        return reading
    try:
        data = migrate(reading.data, reading.version) if migrate is not None else reading.data
        data = validate(data) if validate is not None else data
    except SchemaError as exc:
        return _Reading("damaged", reading.version, reason=str(exc))
    return _Reading("ok", reading.version, data, reading.raw)


def _read_only(path: Path, reading: _Reading, version: int, validate: Validate | None) -> LoadedDocument:
    """A newer or unreadable file: shown if its data still passes our checks, never saved over."""
    if reading.state == "unreadable":
        problem = f"{path} cannot be read ({reading.reason}): nothing is saved to it until this is fixed"
        return LoadedDocument(None, read_only=True, problem=problem)
    checked = _validated(_Reading("ok", reading.version, reading.data), validate, None)
    problem = (f"{path} was saved by a newer StyleGallery (format {reading.version}; this one knows {version}): "
               "it is open read-only and changes are not saved. Update StyleGallery to edit it.")
    return LoadedDocument(checked.data if checked.state == "ok" else None, read_only=True, problem=problem)


def _set_aside(path: Path) -> Path | None:
    """Rename a damaged file to `<name>.damaged-<time>` (never over another one) and return the new path; None
    when another process has just moved it."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    for attempt in range(_TEMP_NAME_TRIES):
        target = path.with_name(f"{path.name}.damaged-{stamp}" + (f"-{attempt}" if attempt else ""))
        if target.exists():
            continue
        try:
            os.rename(path, target)
        except FileNotFoundError:
            return None
        log.warning("kept the damaged %s as %s", path, target.name)
        return target
    raise FileExistsError(f"no free name to keep {path} aside")


def _write_temp(path: Path, payload: bytes, name: str | None = None) -> Path:
    """A complete, fsynced copy of `payload` in a fresh temp file beside `path` (named after `name`, default
    `path`'s), created with mode 0666 minus the user's umask like any other file the user saves."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(_TEMP_NAME_TRIES):
        tmp = path.with_name(f"{name or path.name}.{secrets.token_hex(6)}.tmp")
        try:
            fd = os.open(tmp, flags, 0o666)
            break
        except FileExistsError:
            continue
    else:
        raise FileExistsError(f"no free temp name beside {path}")
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
    """Delete this document's temp files left by writers that were killed (they are never read)."""
    cutoff = time.time() - STALE_TEMP_SECONDS
    for leftover in path.parent.glob(glob.escape(path.name) + ".*.tmp"):
        try:
            if leftover.stat().st_mtime < cutoff:
                leftover.unlink()
        except OSError:
            pass  # another writer got there first, or the file is in use: harmless either way
