"""First start: what will be downloaded, how big, under which licence, where it goes; the commercial depth model
as a choice before anything is downloaded; or point at models already on disk."""
from __future__ import annotations

from dataclasses import dataclass, replace
from html import escape

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QCheckBox, QMessageBox, QWidget

from engine.licences import SMALL_DEPTH_TRADEOFF, licence_of
from engine.params import DEPTH_SOURCES

from ..settings import Preferences


@dataclass(frozen=True)
class FirstRunChoice:
    """What the artist chose: the preferences to use (the depth model may have changed) and whether to open
    Settings to point at local models."""

    prefs: Preferences
    open_settings: bool


def first_run_text(prefs: Preferences) -> str:
    """The welcome text: each model the first analysis downloads, with its size and licence."""
    rows = []
    for source in (prefs.sd, prefs.dinov2, prefs.depth):
        entry = licence_of(source)
        if entry is None:
            rows.append(f"<li>{escape(source)}: a model of your own (its own licence applies)</li>")
            continue
        use = "commercial use allowed" if entry.commercial else "<b>non-commercial use only</b>"
        rows.append(f"<li>{escape(entry.name)} ({entry.size}), for {escape(entry.role)}: "
                    f"<a href='{entry.url}'>{escape(entry.licence)}</a>, {use}</li>")
    return ("<h3>Welcome to StyleGallery</h3>"
            "<p>StyleGallery restyles your photo after your own gallery of references, on this computer. "
            "It needs these models from the Hugging Face hub, downloaded <b>once</b>, at the first analysis:</p>"
            f"<ul>{''.join(rows)}</ul>"
            "<p>The fast modes download a small LoRA on their first use (Settings names their licences). "
            "The models go into the Hugging Face cache and are shared with other tools; the progress shows at "
            "the bottom of the window. After that, StyleGallery works offline. The licences are summaries: each "
            "licence's own text rules.</p>"
            "<p>If you already have the models on disk (a diffusers folder or a <code>.safetensors</code> file), "
            "choose <b>Settings…</b> to point at them.</p>")


class FirstRunDialog(QMessageBox):
    """The welcome box, with "use the commercial depth model" as a check box (shown when the default is not)."""

    def __init__(self, prefs: Preferences, parent: QWidget | None = None):
        super().__init__(parent)
        self.prefs = prefs
        self.setWindowTitle("First start")
        self.setTextFormat(Qt.TextFormat.RichText)
        self.setText(first_run_text(prefs))
        self.settings_button = self.addButton("Settings…", QMessageBox.ButtonRole.ActionRole)
        self.download_button = self.addButton("Download on first use", QMessageBox.ButtonRole.AcceptRole)
        self.commercial: QCheckBox | None = None
        depth = licence_of(prefs.depth)
        if depth is not None and not depth.commercial:
            small = licence_of(DEPTH_SOURCES["small"])
            self.commercial = QCheckBox(f"I sell my work: use {small.name} ({small.licence}) instead", self)
            self.setCheckBox(self.commercial)
            self.setInformativeText(SMALL_DEPTH_TRADEOFF)

    def choice(self) -> FirstRunChoice:
        """After the box closed: the preferences to use and whether Settings should open."""
        commercial = self.commercial is not None and self.commercial.isChecked()
        prefs = replace(self.prefs, depth=DEPTH_SOURCES["small"]) if commercial else self.prefs
        return FirstRunChoice(prefs, self.clickedButton() is self.settings_button)


def ask_first_run(parent: QWidget, prefs: Preferences) -> FirstRunChoice:
    """Show the explanation (modal) and return the artist's choice."""
    box = FirstRunDialog(prefs, parent)
    box.exec()
    return box.choice()
