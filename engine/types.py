"""The plain data that crosses the engine's boundary: analyses, matches, pins, jobs, results, events.

Arrays are numpy (CPU), so results can be cached, pickled, shown by the GUI and compared in tests
without a device. Region ids are the final 1-based stage-1 ids (gaps allowed).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Literal, Protocol

import numpy as np

from .params import LATENT_FACTOR, DraftParams, MatchParams, OutputParams, Stage1Params, Stage3Params

if TYPE_CHECKING:
    from .stage1.edits import RegionEdit


class CancelFlag(Protocol):
    """Anything with `is_set()`, e.g. `threading.Event`. Checked every step and in inner loops."""

    def is_set(self) -> bool: ...


def is_cancelled(cancel: CancelFlag | None) -> bool:
    """The check made between the passes of a step as well as between steps: a CPU step takes many seconds, and
    closing the window or pressing Cancel must not wait for all of it."""
    return cancel is not None and cancel.is_set()


@dataclass(frozen=True)
class StepEvent:
    """Progress of one unit of work. `stage` is "analyze", "match", "transfer", "decode" or "download".

    `preview` (uint8 HxWx3) is only set on the steps that carry one.
    """

    stage: str
    step: int
    total: int
    loss: float | None = None
    preview: np.ndarray | None = None
    message: str = ""


EventCallback = Callable[[StepEvent], None]


@dataclass
class Analysis:
    """Stage-1 result for one image (content or reference).

    labels: int64 (h, w), final ids 1..K (gaps possible), on the latent grid of the working size (the size
    policy's: 64 x 64 for 512 x 512, 96 x 64 for a 512 x 768 portrait); fmix: float32 (C, h, w);
    depth: float32 (H, W) at the image's native size as computed, at the label grid (h, w) as loaded from the cache
    (the method samples it only there: the same values either way; None when depth is off); c15 and vae_latent:
    float32 (4, h, w). `steps` keeps the intermediate label maps and scores for inspection and parity.
    """

    image_sha256: str
    labels: np.ndarray
    fmix: np.ndarray
    depth: np.ndarray | None
    c15: np.ndarray
    vae_latent: np.ndarray
    params: Stage1Params
    model_id: str
    silhouette: dict[int, float] = field(default_factory=dict)
    chosen_k: int = 0
    steps: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def working_size(self) -> tuple[int, int]:
        """(width, height) in pixels at which stage 1 saw the image."""
        height, width = self.labels.shape
        return width * LATENT_FACTOR, height * LATENT_FACTOR

    @property
    def region_ids(self) -> list[int]:
        return [int(i) for i in np.unique(self.labels)]

    def region_sizes(self) -> dict[int, int]:
        ids, counts = np.unique(self.labels, return_counts=True)
        return {int(i): int(c) for i, c in zip(ids, counts)}


@dataclass(frozen=True)
class Pin:
    """The artist's choice for one content region. `style_region` None = the whole reference."""

    content_region: int
    style_index: int
    style_region: int | None = None


@dataclass(frozen=True)
class PairScore:
    """One scored (content region, reference, reference region) candidate."""

    content_region: int
    style_index: int
    style_region: int
    s_stat: float
    s_sem: float
    s_pos: float
    score: float


@dataclass(frozen=True)
class RegionMatch:
    """What a content region will take its style from. `style_region` None = whole reference (a pin)."""

    content_region: int
    style_index: int
    style_region: int | None
    score: float | None
    pinned: bool = False


@dataclass
class MatchTable:
    """Stage-2 result: every candidate's scores plus the chosen match per content region (ascending id)."""

    pairs: list[PairScore]
    matches: dict[int, RegionMatch]
    params: MatchParams = field(default_factory=MatchParams)

    def candidates(self, content_region: int) -> list[PairScore]:
        """This region's candidates, best first (for the GUI's runner-up list)."""
        rows = [p for p in self.pairs if p.content_region == content_region]
        return sorted(rows, key=lambda p: -p.score)


@dataclass(frozen=True)
class ImageRef:
    """An input image on disk, with an optional user label mask (SPEC stage 1, step 9) and an optional hand edit of
    its final regions (engine/stage1/edits.py), which matching, stage 3 and the draft use in place of stage 1's."""

    path: Path
    user_mask: Path | None = None
    region_edit: RegionEdit | None = None


@dataclass
class TransferRequest:
    """All one run needs: replayable and testable without a window."""

    content: ImageRef
    references: list[ImageRef]
    pins: list[Pin] = field(default_factory=list)
    stage1: Stage1Params = field(default_factory=Stage1Params)
    match: MatchParams = field(default_factory=MatchParams)
    stage3: Stage3Params = field(default_factory=Stage3Params)
    output: OutputParams = field(default_factory=OutputParams)


DraftRegions = Literal["auto", "method", "quick"]


@dataclass
class DraftRequest:
    """All one instant draft needs (`Engine.draft`). `regions` "method": stage 1's regions and stage 2's matches
    (`stage1`, `match`); "quick": the classical stand-ins; "auto": "method" when its models are here."""

    content: ImageRef
    references: list[ImageRef]
    pins: list[Pin] = field(default_factory=list)
    regions: DraftRegions = "auto"
    stage1: Stage1Params = field(default_factory=Stage1Params)
    match: MatchParams = field(default_factory=MatchParams)
    draft: DraftParams = field(default_factory=DraftParams)


@dataclass(frozen=True)
class LossRecord:
    """Loss at one optimisation step, evaluated before that step's update."""

    step: int
    timestep: float
    total: float
    style: float
    content: float


@dataclass
class TransferResult:
    """A run's outcome. `cancelled` results hold the partial latent decoded; never pass them off as finished."""

    image: np.ndarray  # uint8 (H, W, 3) at output_size: the photo's aspect ratio
    latent: np.ndarray  # float32 (4, h, w): stage 3's latent at the working size
    matches: MatchTable
    losses: list[LossRecord]  # stage 3's, then refine's (if any)
    steps_done: int
    steps_total: int
    cancelled: bool = False
    seconds: float = 0.0
    working_size: tuple[int, int] = (0, 0)  # (width, height) stage 3 ran at
    output_size: tuple[int, int] = (0, 0)  # (width, height) of `image`
    upscale: str = "none"  # how `image` got to output_size: "none", "fast" or "refine"
