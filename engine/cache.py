"""A small disk cache shared by every stage: named numpy arrays plus JSON metadata per key, kept within a size budget.

Keys are sha256 digests of a canonical JSON of whatever determines the result (image pixel hash, model
ids, settings), never a file path. Each entry is one `.npz` file written to a temporary file and moved
into place with `os.replace`, so a crash or a concurrent reader never sees half an entry; an unreadable
entry counts as a miss and is removed. Integer arrays (label maps) are stored deflated; float arrays (features,
latents) are stored as they are: they barely compress and would cost time on every read.

One folder for the window and the command line (`default_cache_dir`). Its size is kept under a budget by evicting
the least recently used entries after each put. The last use of an entry is its file's modification time: a put
writes it, a hit sets it (`os.utime`). That record needs no index file and no lock, so any number of processes can
share the folder: each one evicts after its own puts, and one deleting an entry another is reading or evicting
costs nothing but a miss (POSIX keeps an open file readable; Windows refuses the delete, which is skipped).
"""
from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import logging
import os
import re
import tempfile
import threading
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from .errors import StyleGalleryError
from .params import Stage1Params, settings_key
from .types import Analysis

log = logging.getLogger(__name__)

APP_NAME = "StyleGallery"
CACHE_ENV = "STYLEGALLERY_CACHE"  # a cache folder for every StyleGallery process that has it in its environment
DEFAULT_BUDGET_BYTES = 4 << 30  # a few hundred analyses of the full-size models (about 11 MB each at 512)
CACHE_BUDGET_GB_RANGE = (0.1, 1024.0)  # what Settings and --cache-budget accept, in GB (2**30 bytes)
EVICT_TO_FRACTION = 0.9  # eviction frees this much under the budget, so the next puts need no scan of the folder
RESCAN_SECONDS = 60.0  # a process sees the other processes' puts at its next scan, at the latest this much later
_META = "__meta__"
_ENTRY_NAME = re.compile(r"[0-9a-f]{64}\.npz")
_SHARD_NAME = re.compile(r"[0-9a-f]{2}")
_NAMESPACE_NAME = re.compile(r"[a-z0-9_]+")


class CacheFolderUnsafe(StyleGalleryError):
    """A cache folder that must not be cleared: the home folder, a drive's root, or a folder above either."""

    kind = "cache_folder_unsafe"
    hint = "Choose a folder of its own for the cache in Settings (or leave the field empty for the default one)."


def default_cache_dir() -> Path:
    """$STYLEGALLERY_CACHE, else the platform's per-user cache folder (platformdirs' user_cache_dir: ~/.cache/
    StyleGallery, %LOCALAPPDATA%\\StyleGallery\\Cache, ~/Library/Caches/StyleGallery). The window uses it too (not
    QStandardPaths.CacheLocation, which names another folder on some platforms), so both share one cache."""
    override = os.environ.get(CACHE_ENV, "").strip()
    if override:
        return Path(override).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir(APP_NAME, appauthor=False))


def cache_key(*parts: Any) -> str:
    """sha256 of the canonical JSON (sorted keys, no whitespace) of `parts`; dataclasses count by their fields."""
    def encode(value: Any) -> Any:
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return {"__type__": type(value).__name__, **settings_key(value)}
        raise TypeError(f"cannot use {type(value).__name__} in a cache key")

    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=encode, allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclasses.dataclass(frozen=True)
class CacheEntry:
    path: Path
    size: int
    last_used_ns: int  # the file's modification time: set by the put that wrote it and by every hit since


def cache_entries(root: Path | str) -> list[CacheEntry]:
    """Every entry under `root/<namespace>/<xx>/<key>.npz`, our own names only (temp files of writes in progress and
    anything else in the folder are not entries). Entries deleted meanwhile by another process are left out."""
    entries = []
    for namespace in _subfolders(Path(root), _NAMESPACE_NAME):
        for shard in _subfolders(namespace, _SHARD_NAME):
            try:
                with os.scandir(shard) as found:
                    for item in found:
                        if _ENTRY_NAME.fullmatch(item.name) and item.is_file(follow_symlinks=False):
                            stat = item.stat(follow_symlinks=False)
                            entries.append(CacheEntry(Path(item.path), stat.st_size, stat.st_mtime_ns))
            except OSError:  # the shard (or an entry in it) vanished while we looked: the others still count
                continue
    return entries


def cache_size(root: Path | str) -> int:
    """Bytes the cache's entries take (what the budget counts)."""
    return sum(entry.size for entry in cache_entries(root))


def _subfolders(folder: Path, name: re.Pattern) -> list[Path]:
    """Subfolders of `folder` whose names match `name` (not links); none when `folder` is missing."""
    try:
        with os.scandir(folder) as found:
            return [Path(item.path) for item in found
                    if name.fullmatch(item.name) and item.is_dir(follow_symlinks=False)]
    except OSError:
        return []


def check_clearable(root: Path | str) -> Path:
    """`root` resolved, or CacheFolderUnsafe when it is a drive's root, the home folder or a folder above it: a
    cache setting pointing there (a slip in Settings) must never have anything deleted in it."""
    folder = Path(root).expanduser().resolve()
    home = Path.home().resolve()
    if folder == Path(folder.anchor) or folder == home or folder in home.parents:
        raise CacheFolderUnsafe(f"The cache folder {folder} is your home folder, a drive or a folder above them: "
                                "StyleGallery will not clear it")
    return folder


def clear_cache(root: Path | str) -> int:
    """Delete every entry of the cache at `root` (our own entry names only, then the emptied subfolders we made) and
    return the bytes freed. Raises CacheFolderUnsafe for a home or root folder. Another process may be writing:
    what it adds meanwhile stays, and an entry it deletes first is simply not counted."""
    folder = check_clearable(root)
    freed = 0
    for entry in cache_entries(folder):
        try:
            entry.path.unlink()
            freed += entry.size
        except OSError:  # gone already, or open elsewhere (Windows): left for the next clear
            continue
    for namespace in _subfolders(folder, _NAMESPACE_NAME):
        for shard in _subfolders(namespace, _SHARD_NAME):
            _remove_if_empty(shard)
        _remove_if_empty(namespace)
    return freed


def _remove_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:
        pass  # not empty (another process's entry or someone's file): kept


def _npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """An .npz archive (what np.load reads) with integer and boolean arrays deflated, floats stored: a label map
    shrinks about 30-fold, while float features save a few percent for a slower write and read."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", allowZip64=True) as archive:
        for name, array in arrays.items():
            compress = zipfile.ZIP_DEFLATED if array.dtype.kind in "biu" else zipfile.ZIP_STORED
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = compress
            with archive.open(info, "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


class DiskCache:
    """Entries under `root/<namespace>/<key[:2]>/<key>.npz`; `get` returns (arrays, metadata) or None.

    Each stage uses its own namespace ("analysis", ...) so one can be cleared without the others. A put that takes
    the cache over `budget_bytes` deletes the least recently used entries down to EVICT_TO_FRACTION of it, sparing
    the entry just written and those this object read since its previous put (the operation in progress may still
    need them). Whether a put goes over is told by the total of the last scan plus this object's puts since (a scan
    walks the whole folder: thousands of entries for a draft's many small puts); the folder is scanned again at
    least every RESCAN_SECONDS, for what other processes added.
    """

    def __init__(self, root: Path | str, budget_bytes: int = DEFAULT_BUDGET_BYTES):
        self.root = Path(root)
        self.budget_bytes = int(budget_bytes)
        self._read_since_put: set[Path] = set()
        self._estimate = 0  # bytes in the folder: the last scan's total plus this object's puts since
        self._scanned_at: float | None = None  # time.monotonic() of the last scan
        self._lock = threading.Lock()  # the draft thread and the worker thread may share one cache

    def check_writable(self) -> None:
        """Refuse, before any work, a cache folder that cannot take entries (a file, read-only, no permission,
        a full disk): otherwise a long analysis would end on the write of its result."""
        from .outputs import check_output_folder

        check_output_folder(self.root, "stage cache folder")

    def path(self, key: str, namespace: str = "misc") -> Path:
        return self.root / namespace / key[:2] / f"{key}.npz"

    def get(self, key: str, namespace: str = "misc") -> tuple[dict[str, np.ndarray], dict] | None:
        path = self.path(key, namespace)
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {name: data[name] for name in data.files}
            meta = json.loads(arrays.pop(_META).tobytes().decode("utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, UnicodeDecodeError):
            path.unlink(missing_ok=True)  # damaged (e.g. disk full mid-copy): recompute
            return None
        with self._lock:
            self._read_since_put.add(path)
        try:
            os.utime(path)  # used now: the last to be evicted
        except OSError:
            pass  # evicted by another process meanwhile: the arrays are read already
        return arrays, meta

    def put(self, key: str, arrays: dict[str, np.ndarray], meta: dict | None = None,
            namespace: str = "misc") -> Path:
        path = self.path(key, namespace)
        path.parent.mkdir(parents=True, exist_ok=True)
        if _META in arrays:
            raise ValueError(f"{_META} is reserved")
        meta_bytes = np.frombuffer(json.dumps(meta or {}, allow_nan=False).encode("utf-8"), dtype=np.uint8)
        content = _npz_bytes({**arrays, _META: meta_bytes})
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".npz")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(content)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self._keep_to_budget(path, len(content))
        return path

    def _keep_to_budget(self, written: Path, size: int) -> None:
        """After a put of `size` bytes at `written`: evict when the cache may now be over its budget."""
        with self._lock:
            spared, self._read_since_put = {written} | self._read_since_put, set()
            self._estimate += size
            fresh = self._scanned_at is not None and time.monotonic() - self._scanned_at < RESCAN_SECONDS
            if fresh and self._estimate <= self.budget_bytes:
                return
        total = self.evict(spared, int(self.budget_bytes * EVICT_TO_FRACTION))
        with self._lock:
            self._estimate, self._scanned_at = total, time.monotonic()

    def evict(self, spared: set[Path] = frozenset(), target: int | None = None) -> int:
        """When the cache is over its budget, delete the least recently used entries (never those in `spared`) until
        it fits `target` (default: the budget); returns the bytes it takes then. One pass over a list made first, so
        it always ends; an entry deleted meanwhile by another process counts as gone, one that cannot be deleted
        (open on Windows) stays counted."""
        entries = sorted(cache_entries(self.root), key=lambda entry: (entry.last_used_ns, str(entry.path)))
        total = sum(entry.size for entry in entries)
        target = self.budget_bytes if target is None or total <= self.budget_bytes else target
        for entry in entries:
            if total <= target:
                break
            if entry.path in spared:
                continue
            try:
                entry.path.unlink()
            except FileNotFoundError:
                pass  # another process evicted it first
            except OSError:
                continue
            total -= entry.size
        return total


ANALYSIS_NAMESPACE = "analysis"
_STEP_PREFIX = "steps."


def save_analysis(cache: DiskCache, key: str, analysis: Analysis) -> Path:
    """Store an Analysis (arrays as arrays, the rest as metadata)."""
    arrays = {"labels": analysis.labels, "fmix": analysis.fmix, "c15": analysis.c15,
              "vae_latent": analysis.vae_latent}
    if analysis.depth is not None:
        arrays["depth"] = analysis.depth
    arrays.update({_STEP_PREFIX + name: value for name, value in analysis.steps.items()})
    meta = {"image_sha256": analysis.image_sha256, "model_id": analysis.model_id,
            "params": settings_key(analysis.params), "chosen_k": analysis.chosen_k,
            "silhouette": {str(k): v for k, v in analysis.silhouette.items()}}
    return cache.put(key, arrays, meta, namespace=ANALYSIS_NAMESPACE)


def analysis_arrays_problem(arrays: dict[str, np.ndarray]) -> str | None:
    """Why a cached analysis's arrays cannot be one stage 1 made (None when they can): the label grid is the latent
    grid (whatever its height and width) and the depth's, region ids lie in 0..cells, every float is finite. A
    well-formed entry with wrong content (copied, tampered with, or from a bug) must be recomputed, not served."""
    labels, latent = arrays.get("labels"), arrays.get("vae_latent")
    if labels is None or latent is None or "c15" not in arrays or "fmix" not in arrays:
        return "arrays missing"
    if labels.ndim != 2 or labels.size == 0 or not np.issubdtype(labels.dtype, np.integer):
        return f"labels of shape {labels.shape} and type {labels.dtype}"
    if latent.ndim != 3 or latent.shape[1:] != labels.shape:
        return f"latent {latent.shape} for a {labels.shape} label grid"
    if arrays["c15"].shape != latent.shape or arrays["fmix"].ndim != 3 or arrays["fmix"].shape[1:] != labels.shape:
        return "feature arrays of another grid"
    if labels.min() < 0 or labels.max() > labels.size:
        return f"region ids {labels.min()}..{labels.max()} outside 0..{labels.size}"
    floats = [arrays[name] for name in ("vae_latent", "c15", "fmix", "depth") if name in arrays]
    if any(not np.issubdtype(a.dtype, np.floating) or not np.isfinite(a).all() for a in floats):
        return "non-finite or non-float values"
    if "depth" in arrays and arrays["depth"].shape != labels.shape:
        return f"depth of shape {arrays['depth'].shape}, not the label grid's"
    return None


def load_analysis(cache: DiskCache, key: str) -> Analysis | None:
    """The Analysis stored under `key`, or None (missing, damaged, inconsistent, or written by incompatible params):
    None makes the caller recompute and overwrite the entry."""
    entry = cache.get(key, namespace=ANALYSIS_NAMESPACE)
    if entry is None:
        return None
    arrays, meta = entry
    problem = analysis_arrays_problem(arrays)
    if problem is not None:
        log.warning("Cached analysis %s is inconsistent (%s): recomputing", key[:12], problem)
        return None
    try:
        params = Stage1Params(**meta["params"])
        return Analysis(image_sha256=meta["image_sha256"], labels=arrays["labels"], fmix=arrays["fmix"],
                        depth=arrays.get("depth"), c15=arrays["c15"], vae_latent=arrays["vae_latent"],
                        params=params, model_id=meta["model_id"], chosen_k=int(meta["chosen_k"]),
                        silhouette={int(k): float(v) for k, v in meta["silhouette"].items()},
                        steps={name[len(_STEP_PREFIX):]: value for name, value in arrays.items()
                               if name.startswith(_STEP_PREFIX)})
    except (KeyError, TypeError, ValueError):
        return None
