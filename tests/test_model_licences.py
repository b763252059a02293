"""Model licences, named before any download: the engine's table covers every model the app fetches,
THIRD_PARTY_LICENSES.md lists each, and the first-run dialog and Settings show them and offer the commercial
depth model. Also the Settings dialog's layout (nothing cut off, a Browse button per model path). Offscreen Qt."""
from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtWidgets import QCheckBox, QComboBox, QLabel, QPushButton, QWidget

from engine.licences import MODEL_LICENCES, licence_of
from engine.params import DEFAULT_DINOV2_SOURCE, DEFAULT_SD_SOURCE, DEPTH_SOURCES, FAST_MODES

pytest.importorskip("pytestqt")

ROOT = Path(__file__).resolve().parent.parent
DOWNLOADED = [DEFAULT_SD_SOURCE, DEFAULT_DINOV2_SOURCE, *DEPTH_SOURCES.values(),
              *(spec.lora for spec in FAST_MODES.values())]


def test_every_downloaded_model_has_a_licence_entry():
    assert all(licence_of(source) is not None for source in DOWNLOADED)
    assert not licence_of(DEPTH_SOURCES["large"]).commercial  # CC-BY-NC-4.0
    assert licence_of(DEPTH_SOURCES["small"]).commercial and licence_of(DEPTH_SOURCES["small"]).licence == "Apache-2.0"


def test_third_party_licenses_lists_every_model():
    text = (ROOT / "THIRD_PARTY_LICENSES.md").read_text(encoding="utf-8")
    for entry in MODEL_LICENCES:
        assert entry.name in text and entry.source in text and entry.licence in text, entry.name


@pytest.fixture
def dialog(qtbot, tmp_path):
    from gui.settings import Preferences
    from gui.widgets.settings_dialog import SettingsDialog

    dialog = SettingsDialog(Preferences(), str(tmp_path / "cache"))
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitExposed(dialog)
    return dialog


def test_settings_names_each_licence_and_offers_the_commercial_depth_model(dialog):
    assert "CreativeML OpenRAIL-M" in dialog.licences[dialog.sd].text()
    assert "Apache-2.0" in dialog.licences[dialog.dinov2].text()
    depth_note = dialog.licences[dialog.depth].text()
    assert "CC-BY-NC-4.0" in depth_note and "NON-COMMERCIAL" in depth_note and "Small" in depth_note
    assert "OpenRAIL++" in "".join(label.text() for label in dialog.findChildren(QLabel))  # the fast modes' LoRAs

    small = dialog.depth_choice.findData(DEPTH_SOURCES["small"])
    dialog.depth_choice.activated.emit(small)
    assert dialog.preferences().depth == DEPTH_SOURCES["small"]
    assert "coarser" in dialog.licences[dialog.depth].text()  # what the choice changes
    dialog.depth.setText("/models/my-depth")  # a folder of one's own: the combo says "Other"
    assert dialog.depth_choice.currentData() == ""
    assert "its own licence" in dialog.licences[dialog.depth].text()


def test_settings_dialog_cuts_off_no_text(dialog):
    for widget in dialog.findChildren(QWidget):
        if not isinstance(widget, (QLabel, QCheckBox, QPushButton, QComboBox)) or not widget.isVisible():
            continue
        if not (isinstance(widget, QLabel) and widget.wordWrap()):
            assert widget.width() >= widget.sizeHint().width(), widget.objectName() or type(widget).__name__


def test_every_model_path_has_a_browse_button(dialog, monkeypatch, tmp_path):
    from gui.widgets import settings_dialog

    monkeypatch.setattr(settings_dialog.QFileDialog, "getExistingDirectory", lambda *a, **k: str(tmp_path / "m"))
    dialog.dinov2_browse.click()
    dialog.depth_browse.click()
    prefs = dialog.preferences()
    assert prefs.dinov2 == prefs.depth == str(tmp_path / "m")
    assert not dialog.sd_browse.isEnabled()  # a hub id has nothing to browse for
    dialog.kind.setCurrentIndex(dialog.kind.findData("folder"))
    dialog.sd_browse.click()
    assert dialog.preferences().sd == str(tmp_path / "m")


def test_first_run_names_licences_before_the_download_and_offers_small(qtbot):
    from gui.settings import Preferences
    from gui.widgets.first_run import FirstRunDialog

    box = FirstRunDialog(Preferences())
    qtbot.addWidget(box)
    for source in (DEFAULT_SD_SOURCE, DEFAULT_DINOV2_SOURCE, DEPTH_SOURCES["large"]):
        assert licence_of(source).licence in box.text()
    assert "non-commercial" in box.text()
    assert "coarser" in box.informativeText()
    box.commercial.setChecked(True)
    box.download_button.click()
    choice = box.choice()
    assert choice.prefs.depth == DEPTH_SOURCES["small"] and not choice.open_settings

    again = FirstRunDialog(Preferences())
    qtbot.addWidget(again)
    again.settings_button.click()
    assert again.choice() == type(choice)(Preferences(), True)  # the default kept, Settings asked for
