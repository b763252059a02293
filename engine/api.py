"""The engine's one entry point for the GUI and the CLI: `Engine`.

Plain calls, a job in and a result out, a callback for progress and previews, a cancel flag.
Models load lazily and once; every stage caches on disk under `cache_dir`.
"""
from __future__ import annotations

from pathlib import Path

from .params import MatchParams, ModelSource, Stage1Params
from .types import Analysis, CancelFlag, EventCallback, ImageRef, MatchTable, Pin, TransferRequest, TransferResult


class Engine:
    """Owns the models (lazy), the device choice and the disk cache.

    device: "auto" | "cuda" | "cpu" (or any torch device string); precision: "auto" | "fp32" | "fp16" | "bf16"
    ("auto" = fp16 on CUDA, fp32 on CPU). Not thread-safe: one worker thread calls it at a time.
    """

    def __init__(self, models: ModelSource | None = None, device: str = "auto", precision: str = "auto",
                 cache_dir: Path | None = None, on_event: EventCallback | None = None):
        raise NotImplementedError("filled in once the stage modules land")

    def device_summary(self) -> str:
        """'NVIDIA GeForce RTX 4090, 21.3 GiB free' or 'CPU: slow'."""
        raise NotImplementedError

    def analyze(self, image: ImageRef, params: Stage1Params | None = None, on_event: EventCallback | None = None,
                cancel: CancelFlag | None = None) -> Analysis:
        """Stage 1 for one image (cached). Raises `Cancelled` if cancelled."""
        raise NotImplementedError

    def match(self, content: ImageRef, references: list[ImageRef], pins: list[Pin] | None = None,
              stage1: Stage1Params | None = None, params: MatchParams | None = None,
              on_event: EventCallback | None = None, cancel: CancelFlag | None = None) -> MatchTable:
        """Stage 2 (analysing each image first, cached): scores of every candidate and the chosen matches."""
        raise NotImplementedError

    def transfer(self, request: TransferRequest, on_event: EventCallback | None = None,
                 cancel: CancelFlag | None = None) -> TransferResult:
        """Stages 1-3 end to end. On cancel returns the partial result with `cancelled=True`."""
        raise NotImplementedError
