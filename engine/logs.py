"""The app's log: a rotating file in the user's log folder, also what a windowed build prints.

Windowed (PyInstaller `console=False`) builds start with `sys.stdout`/`sys.stderr` set to None, and any
library that prints or draws a tqdm bar then crashes (diffusers#3290). `setup_logging` gives them a
stream that writes into the log instead and turns progress bars off, so nothing said is lost and
nothing crashes. Uncaught exceptions (any thread) and native crashes (faulthandler) land there too.
"""
from __future__ import annotations

import faulthandler
import logging
import os
import platform
import sys
import threading
from logging.handlers import RotatingFileHandler
from pathlib import Path
from typing import TextIO

APP_NAME = "StyleGallery"
LOG_NAME = "stylegallery.log"
FAULT_NAME = "crash.log"
MAX_BYTES = 2_000_000
BACKUPS = 5
FORMAT = "%(asctime)s %(levelname)-7s %(name)s [%(threadName)s] %(message)s"

_fault_file: TextIO | None = None  # kept open: faulthandler writes to it from a signal handler


def default_log_dir() -> Path:
    """~/.local/state/StyleGallery/log on Linux, %LOCALAPPDATA%\\StyleGallery\\Logs on Windows."""
    import platformdirs

    return Path(platformdirs.user_log_dir(APP_NAME, appauthor=False))


def setup_logging(level: int = logging.INFO, log_dir: str | Path | None = None, console: bool = True) -> Path:
    """Log to `<log_dir>/stylegallery.log` (rotated) and, where there is a console, warnings to stderr.

    Safe to call again (tests, a second window): it replaces the handlers it added before.
    Returns the log file's path.
    """
    folder = Path(log_dir) if log_dir is not None else default_log_dir()
    folder.mkdir(parents=True, exist_ok=True)
    log_file = folder / LOG_NAME
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, "_stylegallery", False)]:
        root.removeHandler(handler)
        handler.close()
    file_handler = RotatingFileHandler(log_file, maxBytes=MAX_BYTES, backupCount=BACKUPS, encoding="utf-8", delay=True)
    file_handler.setFormatter(logging.Formatter(FORMAT))
    handlers: list[logging.Handler] = [file_handler]
    _replace_missing_streams()
    if console and not isinstance(sys.stderr, LogStream):
        console_handler = logging.StreamHandler(sys.stderr)
        console_handler.setLevel(logging.WARNING)
        console_handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
        handlers.append(console_handler)
    for handler in handlers:
        handler._stylegallery = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(level)
    logging.captureWarnings(True)
    _install_exception_hooks()
    _enable_faulthandler(folder / FAULT_NAME)
    logging.getLogger(__name__).info("StyleGallery %s, Python %s, %s", _app_version(), platform.python_version(),
                                     platform.platform())
    return log_file


class LogStream:
    """A file-like stand-in for a missing stdout/stderr: each complete line becomes a log record."""

    encoding = "utf-8"
    errors = "replace"

    def __init__(self, name: str, level: int):
        self._logger = logging.getLogger(name)
        self._level = level
        self._buffer = ""
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        with self._lock:
            self._buffer += text.replace("\r", "\n")  # tqdm redraws with \r
            *lines, self._buffer = self._buffer.split("\n")
        for line in lines:
            if line.strip():
                self._logger.log(self._level, "%s", line.rstrip())
        return len(text)

    def flush(self) -> None:
        with self._lock:
            line, self._buffer = self._buffer, ""
        if line.strip():
            self._logger.log(self._level, "%s", line.rstrip())

    def isatty(self) -> bool:
        return False

    def writable(self) -> bool:
        return True


def _replace_missing_streams() -> None:
    """Windowed builds: give None stdout/stderr a log-backed stream and turn progress bars off."""
    missing = False
    if sys.stdout is None:
        sys.stdout = LogStream("stdout", logging.INFO)
        missing = True
    if sys.stderr is None:
        sys.stderr = LogStream("stderr", logging.WARNING)
        missing = True
    if missing:
        os.environ.setdefault("TQDM_DISABLE", "1")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


def _install_exception_hooks() -> None:
    """Uncaught errors in any thread go to the log with their traceback (a windowed app has no console)."""
    log = logging.getLogger("uncaught")
    previous = sys.excepthook if not getattr(sys.excepthook, "_stylegallery", False) else sys.__excepthook__

    def excepthook(exc_type, exc, tb):
        if not issubclass(exc_type, KeyboardInterrupt):
            log.critical("uncaught exception", exc_info=(exc_type, exc, tb))
        if not isinstance(sys.stderr, LogStream):  # else the traceback would be logged twice
            previous(exc_type, exc, tb)

    def thread_excepthook(args: threading.ExceptHookArgs) -> None:
        if args.exc_type is not SystemExit:
            log.critical("uncaught exception in thread %s", getattr(args.thread, "name", "?"),
                         exc_info=(args.exc_type, args.exc_value, args.exc_traceback))

    excepthook._stylegallery = True  # type: ignore[attr-defined]
    sys.excepthook = excepthook
    threading.excepthook = thread_excepthook


def _enable_faulthandler(path: Path) -> None:
    """A segfault in native code (a driver, torch) leaves its Python stack in crash.log."""
    global _fault_file
    if _fault_file is not None and not _fault_file.closed and Path(_fault_file.name) == path:
        return
    try:
        fault_file = open(path, "a", encoding="utf-8")
    except OSError:
        return  # the log still works; only native-crash stacks are lost
    faulthandler.enable(file=fault_file)
    if _fault_file is not None:
        _fault_file.close()
    _fault_file = fault_file


def _app_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("stylegallery")
    except metadata.PackageNotFoundError:
        return "(source checkout)"
