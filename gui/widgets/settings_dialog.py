"""Settings: model source (hub id, local folder or .safetensors file), device, precision, cache folder, and the
working and result sizes."""
from __future__ import annotations

from dataclasses import replace

from PySide6.QtCore import Slot
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDialog, QDialogButtonBox, QFileDialog, QFormLayout,
                               QHBoxLayout, QLabel, QLineEdit, QPushButton, QVBoxLayout, QWidget)

from ..settings import (DEVICES, MAX_SIDES, OUTPUT_SIZES, PRECISIONS, SIZE_POLICIES, UPSCALES, Preferences,
                        sd_source_kind)

SOURCE_KINDS = {"hub": "Hugging Face hub id", "folder": "Local diffusers folder", "file": ".safetensors file"}
POLICY_NAMES = {"aspect": "The photo's shape (about 512 x 512 of area)",
                "square": "Square 512 x 512, the photo squashed (the authors')"}
OUTPUT_NAMES = {"photo": "The photo's own size (long side up to 2048)", "working": "The working size (no resampling)"}
UPSCALE_NAMES = {"auto": "Automatic (refine on a GPU, fast otherwise)", "refine": "Refine (continue on a larger grid)",
                 "fast": "Fast (resample guided by the photo)"}


def _combo(names: dict[str, str], keys: tuple, current: str) -> QComboBox:
    box = QComboBox()
    for key in keys:
        box.addItem(names.get(key, f"Long side {key}" if key.isdigit() else key), key)
    box.setCurrentIndex(max(0, box.findData(current)))
    return box


class SettingsDialog(QDialog):
    def __init__(self, prefs: Preferences, default_cache: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self.setMinimumWidth(560)
        self.kind = QComboBox()
        for key, text in SOURCE_KINDS.items():
            self.kind.addItem(text, key)
        self.kind.setCurrentIndex(list(SOURCE_KINDS).index(sd_source_kind(prefs.sd)))
        self.sd = QLineEdit(prefs.sd)
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse_model)
        self.dinov2 = QLineEdit(prefs.dinov2)
        self.depth = QLineEdit(prefs.depth)
        self.offline = QCheckBox("Offline: never download (use the Hugging Face cache and local files)")
        self.offline.setChecked(prefs.offline)
        self.device = QComboBox()
        self.device.addItems(DEVICES)
        self.device.setCurrentText(prefs.device)
        self.precision = QComboBox()
        self.precision.addItems(PRECISIONS)
        self.precision.setCurrentText(prefs.precision)
        self.precision.setToolTip("auto = fp16 on a GPU, fp32 on the CPU")
        self.cache = QLineEdit(prefs.cache_dir)
        self.cache.setPlaceholderText(default_cache)
        cache_browse = QPushButton("Browse…")
        cache_browse.clicked.connect(self._browse_cache)
        self.size_policy = _combo(POLICY_NAMES, SIZE_POLICIES, prefs.size_policy)
        self.size_policy.setToolTip("The shape the method works at. Square squashes a photo that is not square.")
        self.max_side = QComboBox()
        for side in MAX_SIDES:
            self.max_side.addItem(str(side), side)
        self.max_side.setCurrentIndex(max(0, self.max_side.findData(prefs.max_side)))
        self.max_side.setToolTip("Longest side of the working size for a long, thin photo (larger = slower)")
        self.output_size = _combo(OUTPUT_NAMES, OUTPUT_SIZES, prefs.output_size)
        self.output_size.setToolTip("The result's size; never larger than the photo")
        self.upscale = _combo(UPSCALE_NAMES, UPSCALES, prefs.upscale)

        model_row = QHBoxLayout()
        model_row.addWidget(self.sd, 1)
        model_row.addWidget(browse)
        cache_row = QHBoxLayout()
        cache_row.addWidget(self.cache, 1)
        cache_row.addWidget(cache_browse)
        form = QFormLayout()
        form.addRow("Stable Diffusion 1.5 from", self.kind)
        form.addRow("Model", model_row)
        form.addRow("DINOv2", self.dinov2)
        form.addRow("Depth model", self.depth)
        form.addRow("", self.offline)
        form.addRow("Device", self.device)
        form.addRow("Precision", self.precision)
        form.addRow("Cache folder", cache_row)
        form.addRow("Working shape", self.size_policy)
        form.addRow("Working long side at most", self.max_side)
        form.addRow("Result size", self.output_size)
        form.addRow("Result made by", self.upscale)
        note = QLabel("Weights stay in the Hugging Face cache; the cache folder holds StyleGallery's analyses.")
        note.setWordWrap(True)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(note)
        layout.addWidget(buttons)
        self._prefs = prefs

    @Slot()
    def _browse_model(self) -> None:
        kind = self.kind.currentData()
        if kind == "folder":
            path = QFileDialog.getExistingDirectory(self, "Stable Diffusion 1.5 diffusers folder")
        elif kind == "file":
            path, _ = QFileDialog.getOpenFileName(self, "Stable Diffusion 1.5 checkpoint", "",
                                                  "Safetensors (*.safetensors)")
        else:
            return
        if path:
            self.sd.setText(path)

    @Slot()
    def _browse_cache(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Cache folder")
        if path:
            self.cache.setText(path)

    def preferences(self) -> Preferences:
        return replace(self._prefs, sd=self.sd.text().strip() or Preferences.sd,
                       dinov2=self.dinov2.text().strip() or Preferences.dinov2,
                       depth=self.depth.text().strip() or Preferences.depth, offline=self.offline.isChecked(),
                       device=self.device.currentText(), precision=self.precision.currentText(),
                       cache_dir=self.cache.text().strip(), size_policy=self.size_policy.currentData(),
                       max_side=int(self.max_side.currentData()), output_size=self.output_size.currentData(),
                       upscale=self.upscale.currentData())
