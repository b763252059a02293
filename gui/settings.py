"""Preferences in QSettings (model source, device, precision, cache folder, working and result size, draft options,
one-time notices, window geometry).

Documents (gallery, pins, history) are not preferences: they live as JSON in the data folder. Every value is read
through `AppSettings.read`, which converts it to the default's type and checks it: QSettings hands back strings
on some back ends ("true", "40"), and a value edited by hand ("abc" for a number, an unknown device) falls back to
the default with a warning in the log instead of turning silently into 0 or False.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Callable, TypeVar

from PySide6.QtCore import QByteArray, QSettings, QStandardPaths

from engine.cache import CACHE_BUDGET_GB_RANGE, DEFAULT_BUDGET_BYTES, default_cache_dir
from engine.export import DEFAULT_QUALITY, FORMAT_LABELS, QUALITY_RANGE
from engine.params import MAX_SIDE_RANGE, ModelSource, OutputParams, Stage1Params

log = logging.getLogger(__name__)
T = TypeVar("T")

DEVICES = ("auto", "cuda", "cpu")
PRECISIONS = ("auto", "fp32", "fp16", "bf16")
SIZE_POLICIES = ("aspect", "square")
MAX_SIDES = tuple(range(MAX_SIDE_RANGE[0], MAX_SIDE_RANGE[1] + 1, Stage1Params.size_multiple))
OUTPUT_SIZES = ("photo", "working", str(OutputParams.max_side // 2), str(OutputParams.max_side))  # or a long side
UPSCALES = ("auto", "refine", "fast")
CACHE_BUDGETS_GB = range(1, int(CACHE_BUDGET_GB_RANGE[1]) + 1)  # whole GB in the window
_BOOL_TEXT = {"true": True, "1": True, "false": False, "0": False}
_INVALID = object()


@dataclass(frozen=True)
class Preferences:
    """What the settings dialog edits. `sd` is a hub id, a diffusers folder or a .safetensors file."""

    sd: str = ModelSource.sd
    dinov2: str = ModelSource.dinov2
    depth: str = ModelSource.depth
    offline: bool = False
    device: str = "auto"
    precision: str = "auto"
    cache_dir: str = ""  # empty: engine.cache.default_cache_dir(), the command line's too
    cache_budget_gb: int = DEFAULT_BUDGET_BYTES >> 30
    size_policy: str = Stage1Params.size_policy
    max_side: int = Stage1Params.max_side
    output_size: str = "photo"
    upscale: str = OutputParams.upscale

    def model_source(self) -> ModelSource:
        return ModelSource(sd=self.sd, dinov2=self.dinov2, depth=self.depth, offline=self.offline)

    def cache_folder(self) -> Path:
        """The stage cache's folder: the one chosen here, else the default the command line uses as well."""
        return Path(self.cache_dir).expanduser() if self.cache_dir else default_cache_dir()

    def cache_budget_bytes(self) -> int:
        return self.cache_budget_gb << 30

    def stage1(self, base: Stage1Params) -> Stage1Params:
        """`base` with the working size chosen here."""
        return replace(base, size_policy=self.size_policy, max_side=self.max_side)

    def output(self) -> OutputParams:
        """The result's size and the way there."""
        size = int(self.output_size) if self.output_size.isdigit() else self.output_size
        return OutputParams(size=size, upscale=self.upscale)


def data_folder() -> Path:
    """The user's data folder for this app (org/app names must be set first: see gui.app)."""
    return Path(QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppDataLocation))


def sd_source_kind(sd: str) -> str:
    """How the settings dialog labels a model source: "file", "folder" or "hub"."""
    if sd.lower().endswith((".safetensors", ".ckpt", ".pt")):
        return "file"
    if Path(sd).expanduser().is_dir() or "\\" in sd or sd.startswith(("/", ".", "~")):
        return "folder"
    return "hub"


def _flag(key: str, doc: str) -> property:
    """A bool in QSettings under `key` (False until set)."""
    def get(self) -> bool:
        return self.read(key, False)

    def set_(self, value: bool) -> None:
        self.qsettings.setValue(key, bool(value))

    return property(get, set_, doc=doc)


def _convert(raw: object, kind: type) -> object:
    """`raw` as a `kind` (bool, int, str or a Qt type), accepting the strings text back ends store; _INVALID
    when it is not one."""
    if kind is bool:
        return raw if isinstance(raw, bool) else _BOOL_TEXT.get(raw.strip().lower(), _INVALID) if isinstance(
            raw, str) else _INVALID
    if kind is int:
        if isinstance(raw, int) and not isinstance(raw, bool):
            return raw
        text = raw.strip() if isinstance(raw, str) else ""
        return int(text) if text.lstrip("+-").isdigit() else _INVALID
    return raw if isinstance(raw, kind) else _INVALID


# Which stored preferences are usable beyond their type (model sources must name something).
_PREFERENCE_CHECKS: dict[str, Callable[[object], bool]] = {
    "sd": bool, "dinov2": bool, "depth": bool, "device": DEVICES.__contains__, "precision": PRECISIONS.__contains__,
    "size_policy": SIZE_POLICIES.__contains__, "max_side": MAX_SIDES.__contains__,
    "output_size": OUTPUT_SIZES.__contains__, "upscale": UPSCALES.__contains__,
    "cache_budget_gb": CACHE_BUDGETS_GB.__contains__}


class AppSettings:
    """Typed access to QSettings; pass a QSettings (an .ini in a temp folder) to keep tests away from the user's."""

    def __init__(self, settings: QSettings | None = None):
        self.qsettings = settings if settings is not None else QSettings()

    def read(self, key: str, default: T, valid: Callable[[T], bool] | None = None) -> T:
        """The value under `key` as the type of `default`; `default` when it is absent, and (with a warning in the
        log) when it is of another type or `valid` refuses it."""
        raw = self.qsettings.value(key)
        if raw is None:
            return default
        value = _convert(raw, type(default))
        if value is _INVALID or valid is not None and not valid(value):
            log.warning("setting %s = %r is not valid: using %r", key, raw, default)
            return default
        return value

    def preferences(self) -> Preferences:
        return Preferences(**{f.name: self.read(f"model/{f.name}", f.default, _PREFERENCE_CHECKS.get(f.name))
                              for f in fields(Preferences)})

    def set_preferences(self, prefs: Preferences) -> None:
        for f in fields(Preferences):
            self.qsettings.setValue(f"model/{f.name}", getattr(prefs, f.name))
        self.qsettings.sync()

    first_run_done = _flag("app/first_run_done", "the first-start explanation was shown")
    cpu_warning_shown = _flag("app/cpu_warning_shown", "the CPU speed notice was shown (it shows once)")

    def draft_options(self) -> tuple[int, bool]:
        """(strength in percent, keep the photo's colours) of the instant draft."""
        return (self.read("draft/strength", 100, lambda percent: 0 <= percent <= 100),
                self.read("draft/preserve_colour", False))

    def set_draft_options(self, strength: int, preserve_colour: bool) -> None:
        self.qsettings.setValue("draft/strength", int(strength))
        self.qsettings.setValue("draft/preserve_colour", bool(preserve_colour))

    def export_options(self) -> tuple[str, int]:
        """(format, quality) of the last Export…: the artist's usual choice comes back."""
        return (self.read("export/format", "png", FORMAT_LABELS.__contains__),
                self.read("export/quality", DEFAULT_QUALITY, lambda q: QUALITY_RANGE[0] <= q <= QUALITY_RANGE[1]))

    def set_export_options(self, fmt: str, quality: int) -> None:
        self.qsettings.setValue("export/format", fmt)
        self.qsettings.setValue("export/quality", int(quality))

    def as_dict(self) -> dict:
        """Every stored value by key, for the diagnostics report (which redacts paths itself)."""
        return {key: self.qsettings.value(key) for key in self.qsettings.allKeys()}

    def geometry(self) -> QByteArray | None:
        geometry = self.read("window/geometry", QByteArray())
        return None if geometry.isEmpty() else geometry

    def set_geometry(self, geometry: QByteArray) -> None:
        self.qsettings.setValue("window/geometry", geometry)
