"""Hand edits of the region map: an override applied to stage 1's final labels (after step 10).

An edit is an override grid on the label grid (h, w): 0 keeps the automatic label, a positive value is the region
id the artist gave that cell. The edited map is `where(override > 0, override, automatic)`: region ids never get
renumbered, so pins on surviving regions stay valid, and the eraser (override back to 0) returns cells to the
automatic map exactly. Every edit is a pure function from (automatic, override) to a new override.

Why a final override and not SPEC's user mask (step 9): the mask sits inside stage 1, whose cache key holds it, so
each brush stroke would re-run the DDIM inversion (seconds to minutes) instead of a re-composite, and step 10's
clean-up would silently undo any stroke under `cleanup_min_size` cells. With no edit the method runs unchanged.
"""
from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from ..errors import InvalidRequest
from ..params import EDIT_COLOUR_REGION_BASE, EDIT_MAX_REGION_ID, LATENT_FACTOR, Stage1Params, working_size
from .clustering import kmeans, standardize
from .regions import check_mask_size, sample_grid, user_mask_grid


@dataclass(frozen=True, eq=False)
class RegionEdit:
    """An override grid (int64 (h, w), 0 = automatic). Compared and hashed by content, so it can sit in keys."""

    override: np.ndarray

    @property
    def sha256(self) -> str:
        grid = np.ascontiguousarray(self.override, dtype=np.int64)
        return hashlib.sha256(repr(grid.shape).encode() + grid.tobytes()).hexdigest()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RegionEdit) and self.sha256 == other.sha256

    def __hash__(self) -> int:
        return hash(self.sha256)

    @property
    def is_empty(self) -> bool:
        return not bool(np.any(self.override))


def empty_override(labels: np.ndarray) -> np.ndarray:
    return np.zeros(labels.shape, dtype=np.int64)


def edited_labels(automatic: np.ndarray, override: np.ndarray) -> np.ndarray:
    """The map the artist sees and the method uses: the override's ids where set, the automatic map elsewhere."""
    _check_shape(automatic, override)
    return np.where(override > 0, override, automatic).astype(np.int64)


def apply_edit(analysis, edit: RegionEdit | None):
    """`analysis` (an engine.types.Analysis) with its labels edited; the same object when there is no edit."""
    if edit is None or edit.is_empty:
        return analysis
    return dataclasses.replace(analysis, labels=edited_labels(analysis.labels, edit.override))


def new_region_id(automatic: np.ndarray, override: np.ndarray) -> int:
    """One more than any id in use, refused past what a label PNG can hold."""
    region = int(max(automatic.max(initial=0), override.max(initial=0))) + 1
    if region > EDIT_MAX_REGION_ID:
        raise InvalidRequest(f"A region map holds at most {EDIT_MAX_REGION_ID} regions",
                             hint="Merge some regions first.")
    return region


def _assign(automatic: np.ndarray, override: np.ndarray, cells: np.ndarray, region: int) -> np.ndarray:
    """`cells` (bool (h, w)) given to `region`; a cell whose automatic label already is `region` needs no override."""
    out = override.copy()
    out[cells] = np.where(automatic[cells] == region, 0, region)
    return out


def merge(automatic: np.ndarray, override: np.ndarray, regions: list[int]) -> np.ndarray:
    """Regions (two or more) become one, with the smallest id (so a pin on it stays)."""
    current = edited_labels(automatic, override)
    present = sorted({int(r) for r in regions} & {int(r) for r in np.unique(current)})
    if len(present) < 2:
        raise InvalidRequest("Select two or more regions to merge")
    return _assign(automatic, override, np.isin(current, present[1:]), present[0])


def split_by_mask(automatic: np.ndarray, override: np.ndarray, region: int, stroke: np.ndarray) -> np.ndarray:
    """The part of `region` under `stroke` (bool (h, w): a drawn stroke or the inside of a lasso) becomes a new
    region; refused when that leaves either part empty."""
    current = edited_labels(automatic, override)
    _check_shape(current, stroke)
    inside = (current == region) & stroke
    if not inside.any() or inside.sum() == (current == region).sum():
        raise InvalidRequest(f"The stroke must cover part of region {region}, not none or all of it")
    return _assign(automatic, override, inside, new_region_id(automatic, override))


def split_by_lasso(automatic: np.ndarray, override: np.ndarray, inside: np.ndarray,
                   preferred: int | None = None) -> np.ndarray:
    """The lasso's `inside` (bool (h, w), `polygon_cells`) becomes a new region, cut out of `lasso_region`'s choice."""
    region = lasso_region(edited_labels(automatic, override), inside, preferred)
    return split_by_mask(automatic, override, region, inside)


def split_automatic(automatic: np.ndarray, override: np.ndarray, region: int, fmix: np.ndarray,
                    params: Stage1Params) -> np.ndarray:
    """`region` split in two by the method's own k-means (k = 2, its restarts, iterations, tolerance and seed) on its
    cells' standardised stage-1 features `fmix` (C, h, w); the cluster without the region's first cell gets a new
    id."""
    current = edited_labels(automatic, override)
    cells = current == region
    if cells.sum() < 2:
        raise InvalidRequest(f"Region {region} has fewer than two cells: nothing to split")
    if tuple(fmix.shape[1:]) != current.shape:
        raise InvalidRequest(f"The features are {fmix.shape[1]}x{fmix.shape[2]} but the region map is "
                             f"{current.shape[0]}x{current.shape[1]}")
    features = standardize(torch.from_numpy(np.ascontiguousarray(fmix[:, cells].T, dtype=np.float32)))
    generator = torch.Generator().manual_seed(params.seed)
    halves = kmeans(features, 2, params.kmeans_restarts, params.kmeans_max_iters, params.kmeans_tol,
                    generator).labels.numpy()
    second = halves != halves[0]
    if not second.any():
        raise InvalidRequest(f"Region {region}'s features are uniform: split it with a stroke instead")
    part = np.zeros_like(cells)
    part[cells] = second
    return _assign(automatic, override, part, new_region_id(automatic, override))


def paint(automatic: np.ndarray, override: np.ndarray, cells: np.ndarray, region: int | None) -> np.ndarray:
    """The brush: `cells` (bool (h, w)) join `region`, or a new region when `region` is None."""
    _check_shape(automatic, cells)
    if region is None:
        region = new_region_id(automatic, override)
    elif not 1 <= region <= EDIT_MAX_REGION_ID:
        raise InvalidRequest(f"Region ids run from 1 to {EDIT_MAX_REGION_ID}, not {region}")
    return _assign(automatic, override, cells, region)


def erase(override: np.ndarray, cells: np.ndarray) -> np.ndarray:
    """The eraser: `cells` return to the automatic map."""
    _check_shape(override, cells)
    out = override.copy()
    out[cells] = 0
    return out


def brush_cells(shape: tuple[int, int], centre: tuple[float, float], size: int) -> np.ndarray:
    """A round brush `size` cells across centred at `centre` (row, col) in cell units (the pointer's position, so
    (0.5, 0.5) is the middle of the top-left cell) on a grid of `shape`; the cell under the pointer always counts."""
    rows, cols = np.ogrid[:shape[0], :shape[1]]
    radius = size / 2
    cells = (rows + 0.5 - centre[0]) ** 2 + (cols + 0.5 - centre[1]) ** 2 <= radius * radius
    row, col = int(centre[0]), int(centre[1])
    if 0 <= row < shape[0] and 0 <= col < shape[1]:
        cells[row, col] = True
    return cells


def polygon_cells(shape: tuple[int, int], points: list[tuple[float, float]]) -> np.ndarray:
    """The lasso's inside: cells (bool (h, w)) whose centre lies inside the closed polygon `points` ((row, col) in
    cell units, the last point joined back to the first), by the even-odd rule, so concave and self-crossing
    outlines fill as a painting program fills them. One pass per edge: it finishes for any outline."""
    if len(points) < 3:
        raise InvalidRequest("A lasso needs at least three points")
    rows = np.arange(shape[0], dtype=np.float64)[:, None] + 0.5
    cols = np.arange(shape[1], dtype=np.float64)[None, :] + 0.5
    inside = np.zeros(shape, dtype=bool)
    corners = np.asarray(points, dtype=np.float64)
    for (row0, col0), (row1, col1) in zip(corners, np.roll(corners, -1, axis=0)):
        if row0 == row1:
            continue  # a horizontal edge crosses no row of centres an odd number of times
        crossing = (row0 <= rows) != (row1 <= rows)
        col_at = col0 + (rows - row0) * (col1 - col0) / (row1 - row0)
        inside ^= crossing & (cols < col_at)
    return inside


def lasso_region(current: np.ndarray, inside: np.ndarray, preferred: int | None = None) -> int:
    """The region a lasso splits: `preferred` (the selected region) when the lasso takes part of it, else the region
    with the most cells inside that the lasso does not take whole (the one an outline drawn around part of a region
    means), else the most covered one (whose split is then refused with its reason)."""
    _check_shape(current, inside)
    ids, counts = np.unique(current[inside], return_counts=True)
    if ids.size == 0:
        raise InvalidRequest("The lasso holds no cell: draw it larger")
    totals = np.array([(current == region).sum() for region in ids])
    partial = counts < totals
    if preferred is not None and preferred in ids[partial]:
        return int(preferred)
    pool = np.flatnonzero(partial) if partial.any() else np.arange(ids.size)
    return int(ids[pool[np.argmax(counts[pool])]])


def removed_regions(before: np.ndarray, after: np.ndarray) -> set[int]:
    """Region ids of `before` with no cell left in `after` (the pins to drop)."""
    return {int(r) for r in np.unique(before)} - {int(r) for r in np.unique(after)}


def label_png(labels: np.ndarray) -> Image.Image:
    """The label PNG an artist can open in Krita or GIMP: grey value = region id, one pixel per working-size
    pixel (LATENT_FACTOR per cell)."""
    if labels.max(initial=0) > EDIT_MAX_REGION_ID or labels.min(initial=0) < 0:
        raise InvalidRequest(f"A label PNG holds region ids 0..{EDIT_MAX_REGION_ID}")
    pixels = np.repeat(np.repeat(labels.astype(np.uint8), LATENT_FACTOR, axis=0), LATENT_FACTOR, axis=1)
    return Image.fromarray(pixels, mode="L")


def read_label_png(mask: Image.Image, photo_size: tuple[int, int], params: Stage1Params) -> RegionEdit:
    """A label PNG at the photo's size or the working size -> the override on the label grid.

    Grey (every pixel r = g = b): the grey value is the region id (0 = keep automatic), so painting an existing
    region's grey joins it and an export re-imports to the identical map. Colour (analyze --mask's format): each
    non-black colour is a new region, EDIT_COLOUR_REGION_BASE + its number in order of first appearance.
    """
    work = working_size(*photo_size, params)
    grid = (work[1] // LATENT_FACTOR, work[0] // LATENT_FACTOR)
    rgb = np.asarray(mask.convert("RGB"), dtype=np.int64)
    if (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all():
        check_mask_size(mask, (work, photo_size))
        return RegionEdit(sample_grid(rgb[..., 0], grid))
    ids = user_mask_grid(mask, (work, photo_size), grid)
    if ids.max(initial=0) > EDIT_MAX_REGION_ID - EDIT_COLOUR_REGION_BASE:
        raise InvalidRequest(f"The region mask has {int(ids.max())} colours; at most "
                             f"{EDIT_MAX_REGION_ID - EDIT_COLOUR_REGION_BASE} regions can be painted in colour",
                             hint="Use fewer colours, or one grey value per region.")
    override = np.where(ids > 0, ids + EDIT_COLOUR_REGION_BASE, 0)
    return RegionEdit(override.astype(np.int64))


def _check_shape(reference: np.ndarray, other: np.ndarray) -> None:
    if tuple(reference.shape) != tuple(other.shape):
        raise InvalidRequest(f"The region edit is {other.shape[0]}x{other.shape[1]} cells but the region map is "
                             f"{reference.shape[0]}x{reference.shape[1]}",
                             hint="The edit was made at another working size: erase it or repaint it.")
