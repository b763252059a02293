"""A small disk cache shared by every stage: named numpy arrays plus JSON metadata per key.

Keys are sha256 digests of a canonical JSON of whatever determines the result (image pixel hash, model
ids, settings), never a file path. Each entry is one `.npz` file written to a temporary file and moved
into place with `os.replace`, so a crash or a concurrent reader never sees half an entry; an unreadable
entry counts as a miss and is removed.
"""
from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import logging
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from .params import Stage1Params, settings_key
from .types import Analysis

log = logging.getLogger(__name__)

APP_NAME = "StyleGallery"
_META = "__meta__"


def default_cache_dir() -> Path:
    """The per-user data folder's `cache` (platformdirs: ~/.local/share, %LOCALAPPDATA%, ~/Library/...)."""
    from platformdirs import user_data_dir

    return Path(user_data_dir(APP_NAME, appauthor=False)) / "cache"


def cache_key(*parts: Any) -> str:
    """sha256 of the canonical JSON (sorted keys, no whitespace) of `parts`; dataclasses count by their fields."""
    def encode(value: Any) -> Any:
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return {"__type__": type(value).__name__, **settings_key(value)}
        raise TypeError(f"cannot use {type(value).__name__} in a cache key")

    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=encode, allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class DiskCache:
    """Entries under `root/<namespace>/<key[:2]>/<key>.npz`; `get` returns (arrays, metadata) or None.

    Each stage uses its own namespace ("analysis", ...) so one can be cleared without the others.
    """

    def __init__(self, root: Path | str):
        self.root = Path(root)

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
        return arrays, meta

    def put(self, key: str, arrays: dict[str, np.ndarray], meta: dict | None = None,
            namespace: str = "misc") -> Path:
        path = self.path(key, namespace)
        path.parent.mkdir(parents=True, exist_ok=True)
        if _META in arrays:
            raise ValueError(f"{_META} is reserved")
        buffer = io.BytesIO()
        meta_bytes = np.frombuffer(json.dumps(meta or {}, allow_nan=False).encode("utf-8"), dtype=np.uint8)
        np.savez(buffer, **{name: np.ascontiguousarray(a) for name, a in arrays.items()}, **{_META: meta_bytes})
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".npz")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(buffer.getvalue())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path


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
    grid (whatever its height and width), region ids lie in 0..cells, every float is finite. A well-formed entry
    with wrong content (copied, tampered with, or from a bug) must be recomputed, not served."""
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
    if "depth" in arrays and arrays["depth"].ndim != 2:
        return f"depth of shape {arrays['depth'].shape}"
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
