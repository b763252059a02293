"""Region maps handed to the draft from outside (a saved .npy, a caller's array), checked before any work: a bad
map is one readable message (InvalidRequest), never a traceback later on nor a silent nonsense draft."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import InvalidRequest
from ..params import LabelMapLimits


def check_labels(labels: object, limits: LabelMapLimits = LabelMapLimits()) -> np.ndarray:
    """`labels` as an int64 (h, w) map, or InvalidRequest saying what is wrong with it."""
    array = np.asarray(labels)
    if array.dtype.kind not in "iu":
        raise InvalidRequest(f"Region labels must be whole numbers (integer ids), got {array.dtype} values")
    if array.ndim != 2:
        raise InvalidRequest(f"Region labels must be a 2-D map, got shape {array.shape}")
    if min(array.shape) < limits.min_side:
        raise InvalidRequest(f"Region labels of {array.shape[0]}x{array.shape[1]} cells are too coarse to place "
                             f"regions: at least {limits.min_side} cells per side")
    if array.min() < 0:
        raise InvalidRequest(f"Region labels must not be negative, got {int(array.min())}")
    if array.max() > limits.max_id:
        raise InvalidRequest(f"Region id {int(array.max())} is too large (at most {limits.max_id})")
    regions = len(np.unique(array))
    if regions > limits.max_regions:
        raise InvalidRequest(f"Region labels hold {regions} regions, more than the {limits.max_regions} a draft "
                             "takes: is this a region map?")
    return array.astype(np.int64)


def load_labels(path: Path, limits: LabelMapLimits = LabelMapLimits()) -> np.ndarray:
    """A region map saved with numpy.save (e.g. by `analyze`), never unpickling anything."""
    try:
        labels = np.load(path, allow_pickle=False)
    except (ValueError, EOFError) as exc:  # pickled/object data, text, truncated or not a .npy at all
        raise InvalidRequest(f"{path} is not a saved region map (a .npy of integer ids): "
                             f"{str(exc).splitlines()[0]}") from None
    if not isinstance(labels, np.ndarray):  # an .npz archive
        labels.close()
        raise InvalidRequest(f"{path} is an .npz archive: give one region map saved with numpy.save (.npy)")
    try:
        return check_labels(labels, limits)
    except InvalidRequest as exc:
        raise InvalidRequest(f"{path}: {exc}") from None
