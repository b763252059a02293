"""One StyleGallery per data folder, and a clean start in it.

Two windows on one data folder each keep the gallery index and the sessions in memory and save them whole, so
the second's additions vanish from `index.json` (last writer wins) and their images are orphaned. The launcher
therefore claims the folder with a lock file first and refuses a second instance with a message. `QLockFile`
records the process id: the lock of a process that crashed or was killed is taken over, not left blocking.

Once the folder is ours, unfinished writes left by killed processes (`engine.persistence.LEFTOVER_PATTERNS`)
are removed on a background thread, so a large cache folder never delays the window.
"""
from __future__ import annotations

import threading
from pathlib import Path

from PySide6.QtCore import QLockFile

from engine.errors import StyleGalleryError
from engine.persistence import remove_stale_leftovers

LOCK_NAME = "stylegallery.lock"


class DataFolderUnavailable(StyleGalleryError):
    kind = "data_folder_unavailable"
    hint = "Check that the data folder exists and is writable, or start with another one (--data-dir)."


class DataFolderInUse(DataFolderUnavailable):
    kind = "data_folder_in_use"
    hint = "Switch to the StyleGallery window that is already open, or close it and start StyleGallery again."


def claim_data_folder(folder: Path, other_folders: list[Path] = ()) -> QLockFile:
    """Lock `folder` for this process (keep the returned lock alive while the app runs) and clean stale
    leftovers in it and in `other_folders` (a cache folder elsewhere). Raises DataFolderInUse, or
    DataFolderUnavailable when no lock file can be made there."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataFolderUnavailable(f"Cannot use the data folder {folder}: {exc.strerror or exc}") from exc
    lock = QLockFile(str(folder / LOCK_NAME))
    lock.setStaleLockTime(0)  # stale only when its process is gone, never by age: the app runs for hours
    if not lock.tryLock(0):
        if lock.error() != QLockFile.LockError.LockFailedError:
            raise DataFolderUnavailable(f"Cannot create a lock file in the data folder {folder}")
        pid = lock.getLockInfo()[0]  # PySide6: (pid, hostname, appname)
        raise DataFolderInUse(f"StyleGallery is already open on {folder} (process {pid}); a second window there "
                              "would overwrite the first one's gallery and pins")
    folders = [folder, *map(Path, other_folders)]
    threading.Thread(target=lambda: [remove_stale_leftovers(f) for f in folders if f.is_dir()],
                     name="stale-leftovers", daemon=True).start()
    return lock
