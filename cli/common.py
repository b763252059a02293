"""Shared CLI plumbing: engine errors to one readable line, and a text progress bar for StepEvents."""
from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Iterator

from engine.errors import StyleGalleryError
from engine.types import StepEvent


@contextmanager
def report_errors() -> Iterator[None]:
    """Turn engine errors, bad files and Ctrl-C into one line on stderr and a non-zero exit."""
    try:
        yield
    except StyleGalleryError as exc:
        hint = f" ({exc.hint})" if exc.hint else ""
        print(f"stylegallery: error: {exc}{hint}", file=sys.stderr)
        raise SystemExit(2) from None
    except (FileNotFoundError, IsADirectoryError, PermissionError) as exc:
        print(f"stylegallery: error: {exc.strerror}: {exc.filename}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        print("stylegallery: cancelled", file=sys.stderr)
        raise SystemExit(130) from None


class ProgressBar:
    """A tqdm bar per stage, fed by StepEvents (callback for Engine calls)."""

    def __init__(self) -> None:
        self._bars: dict[str, object] = {}

    def __call__(self, event: StepEvent) -> None:
        from tqdm import tqdm

        bar = self._bars.get(event.stage)
        if bar is None:
            bar = self._bars[event.stage] = tqdm(total=event.total, desc=event.stage, unit="step",
                                                 file=sys.stderr, leave=True, dynamic_ncols=True)
        bar.n = event.step
        if event.loss is not None:
            bar.set_postfix(loss=f"{event.loss:.4f}", refresh=False)
        bar.refresh()

    def close(self) -> None:
        for bar in self._bars.values():
            bar.close()
        self._bars.clear()
