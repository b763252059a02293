"""Preferences in QSettings (model source, device, precision, cache folder, draft options, one-time notices,
window geometry).

Documents (gallery, pins, history) are not preferences: they live as JSON in the data folder. QSettings
hands back "true"/"false" strings on some back ends, so every bool is read with `type=bool`.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

from PySide6.QtCore import QByteArray, QSettings, QStandardPaths

from engine.models import random_weights  # noqa: F401 (the window labels what such models make)
from engine.params import ModelSource

DEVICES = ("auto", "cuda", "cpu")
PRECISIONS = ("auto", "fp32", "fp16", "bf16")


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

    def model_source(self) -> ModelSource:
        return ModelSource(sd=self.sd, dinov2=self.dinov2, depth=self.depth, offline=self.offline)


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
