"""Checking, before any work, that outputs can be written where the user asked.

A run or an analysis takes minutes; a full disk, a read-only folder, a folder named like the output file or an
over-long file name must be refused before it starts, not discovered when the finished result is saved.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from .errors import OutputUnwritable, describe_os_error

MIN_FREE_BYTES = 32 << 20  # a result PNG + JSON take a few MB; less free space than this fails the save


def check_output_folder(folder: Path, what: str = "output folder") -> Path:
    """Refuse, before any work, a folder that cannot take the outputs: an existing file, a folder that cannot be
    created, written (read-only, permissions) or is nearly full. Creates the folder (and its parents)."""
    folder = Path(folder)
    try:
        if folder.exists() and not folder.is_dir():
            raise OutputUnwritable(f"The {what} {folder} is a file, not a folder")
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test-"):
            pass
        free = shutil.disk_usage(folder).free
    except OSError as exc:
        raise OutputUnwritable(f"The {what} {folder} cannot be written: {describe_os_error(exc)}") from exc
    if free < MIN_FREE_BYTES:
        raise OutputUnwritable(f"The disk of the {what} {folder} is full ({free // (1 << 20)} MB free)",
                               hint="Free some space or choose a folder on another disk.")
    return folder


def check_output_file(path: Path, what: str = "output file") -> Path:
    """Refuse, before any work, an output file that cannot be written (see `check_output_folder`; also an existing
    folder of that name, or a file name too long for the file system)."""
    path = Path(path)
    folder = check_output_folder(path.parent, f"folder of the {what}")
    probe = path.with_suffix(".partial.png")  # the longest name a save writes
    try:
        if path.is_dir():
            raise OutputUnwritable(f"The {what} {path} is a folder; give a file name such as "
                                   f"{path / 'result.png'}")
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL))
        probe.unlink()
    except FileExistsError:
        pass  # a leftover of an interrupted save: the name is valid, the save replaces it
    except OSError as exc:
        raise OutputUnwritable(f"The {what} {path.name[:80]} cannot be written in {folder}: "
                               f"{describe_os_error(exc)}") from exc
    return path
