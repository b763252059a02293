"""Preferences in QSettings (model source, device, precision, cache folder, working and result size, draft options,
one-time notices, window geometry).

Documents (gallery, pins, history) are not preferences: they live as JSON in the data folder. QSettings
hands back "true"/"false" strings on some back ends, so every bool is read with `type=bool`.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, fields, replace
from pathlib import Path

from PySide6.QtCore import QByteArray, QSettings, QStandardPaths

from engine.params import MAX_SIDE_RANGE, ModelSource, OutputParams, Stage1Params

DEVICES = ("auto", "cuda", "cpu")
PRECISIONS = ("auto", "fp32", "fp16", "bf16")
SIZE_POLICIES = ("aspect", "square")
MAX_SIDES = tuple(range(MAX_SIDE_RANGE[0], MAX_SIDE_RANGE[1] + 1, Stage1Params.size_multiple))
OUTPUT_SIZES = ("photo", "working", str(OutputParams.max_side // 2), str(OutputParams.max_side))  # or a long side
UPSCALES = ("auto", "refine", "fast")


@dataclass(frozen=True)
class Preferences:
    """What the settings dialog edits. `sd` is a hub id, a diffusers folder or a .safetensors file."""

    sd: str = ModelSource.sd
    dinov2: str = ModelSource.dinov2
    depth: str = ModelSource.depth
    offline: bool = False
    device: str = "auto"
    precision: str = "auto"
    cache_dir: str = ""  # empty: <data folder>/cache
    size_policy: str = Stage1Params.size_policy
    max_side: int = Stage1Params.max_side
    output_size: str = "photo"
    upscale: str = OutputParams.upscale

    def model_source(self) -> ModelSource:
        return ModelSource(sd=self.sd, dinov2=self.dinov2, depth=self.depth, offline=self.offline)

    def stage1(self, base: Stage1Params) -> Stage1Params:
        """`base` with the working size chosen here (an unknown stored value falls back to the default)."""
        policy = self.size_policy if self.size_policy in SIZE_POLICIES else Stage1Params.size_policy
        side = self.max_side if self.max_side in MAX_SIDES else Stage1Params.max_side
        return replace(base, size_policy=policy, max_side=side)

    def output(self) -> OutputParams:
        """The result's size and the way there."""
        size = self.output_size if self.output_size in OUTPUT_SIZES else "photo"
        return OutputParams(size=int(size) if size.isdigit() else size,
                            upscale=self.upscale if self.upscale in UPSCALES else OutputParams.upscale)


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


def random_weights(source: ModelSource) -> bool:
    """True for the random-weight test models (tests/tiny_models.py writes a manifest.json beside them saying so);
    everything they make must be labelled as such."""
    sd = Path(source.sd).expanduser()
    for folder in (sd, sd.parent):
        manifest = folder / "manifest.json"
        if manifest.is_file():
            try:
                data = json.loads(manifest.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                return False
            return bool(data.get("random_weights")) or "seed" in data  # the parity set's manifest has a seed
    return False


def _flag(key: str, doc: str) -> property:
    """A bool in QSettings under `key` (False until set), read with `type=bool`."""
    def get(self) -> bool:
        return self.qsettings.value(key, False, type=bool)

    def set_(self, value: bool) -> None:
        self.qsettings.setValue(key, bool(value))

    return property(get, set_, doc=doc)


class AppSettings:
    """Typed access to QSettings; pass a QSettings (an .ini in a temp folder) to keep tests away from the user's."""

    def __init__(self, settings: QSettings | None = None):
        self.qsettings = settings if settings is not None else QSettings()

    def preferences(self) -> Preferences:
        values = {}
        for f in fields(Preferences):
            default = f.default
            values[f.name] = self.qsettings.value(f"model/{f.name}", default, type=type(default))
        return Preferences(**values)

    def set_preferences(self, prefs: Preferences) -> None:
        for f in fields(Preferences):
            self.qsettings.setValue(f"model/{f.name}", getattr(prefs, f.name))
        self.qsettings.sync()

    first_run_done = _flag("app/first_run_done", "the first-start explanation was shown")
    cpu_warning_shown = _flag("app/cpu_warning_shown", "the CPU speed notice was shown (it shows once)")

    def draft_options(self) -> tuple[int, bool]:
        """(strength in percent, keep the photo's colours) of the instant draft."""
        strength = self.qsettings.value("draft/strength", 100, type=int)
        return min(100, max(0, strength)), self.qsettings.value("draft/preserve_colour", False, type=bool)

    def set_draft_options(self, strength: int, preserve_colour: bool) -> None:
        self.qsettings.setValue("draft/strength", int(strength))
        self.qsettings.setValue("draft/preserve_colour", bool(preserve_colour))

    def as_dict(self) -> dict:
        """Every stored value by key, for the diagnostics report (which redacts paths itself)."""
        return {key: self.qsettings.value(key) for key in self.qsettings.allKeys()}

    def geometry(self) -> QByteArray | None:
        value = self.qsettings.value("window/geometry")
        return value if isinstance(value, QByteArray) else None

    def set_geometry(self, geometry: QByteArray) -> None:
        self.qsettings.setValue("window/geometry", geometry)
