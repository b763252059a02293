"""Settings: model sources (hub id, local folder or .safetensors file), each with its licence, device, precision,
cache folder (its size, its limit and a Clear button), the working and result sizes. The licences come from
`engine.licences`; the depth model can be switched to the commercial one."""
from __future__ import annotations

from dataclasses import replace
from functools import partial
from pathlib import Path

from PySide6.QtCore import Slot
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDialog, QDialogButtonBox, QFileDialog, QFormLayout,
                               QHBoxLayout, QLabel, QLineEdit, QPushButton, QSpinBox, QVBoxLayout, QWidget)

from engine.licences import depth_note, licence_of, licence_summary
from engine.params import DEPTH_SOURCES, FAST_MODES

from ..cache_folder import CacheFolderTask, CacheReport, clear, measure
from ..settings import (CACHE_BUDGETS_GB, DEVICES, MAX_SIDES, OUTPUT_SIZES, PRECISIONS, SIZE_POLICIES, UPSCALES,
                        Preferences, sd_source_kind)

SOURCE_KINDS = {"hub": "Hugging Face hub id", "folder": "Local diffusers folder", "file": ".safetensors file"}
OTHER_DEPTH = "Other: a hub id or a local folder"
POLICY_NAMES = {"aspect": "The photo's shape (about 512 x 512 of area)",
                "square": "Square 512 x 512, the photo squashed (the authors')"}
OUTPUT_NAMES = {"photo": "The photo's own size (long side up to 2048)", "working": "The working size (no resampling)"}
UPSCALE_NAMES = {"auto": "Automatic (refine on a GPU, fast otherwise)", "refine": "Refine (continue on a larger grid)",
                 "fast": "Fast (resample guided by the photo)"}


def depth_choices() -> dict[str, str]:
    """Depth combo text by hub id: the two Depth Anything V2 sizes, each with its licence (the note under the
    combo says what the licence allows)."""
    return {source: f"{licence_of(source).name} ({licence_of(source).licence})" for source in DEPTH_SOURCES.values()}


def fast_mode_note() -> str:
    """The fast modes' LoRAs download on first use: their licences, named before that happens."""
    lines = "; ".join(licence_summary(spec.lora) for spec in FAST_MODES.values())
    return f"Fast modes download a LoRA on first use: {lines}."


class SettingsDialog(QDialog):
    def __init__(self, prefs: Preferences, default_cache: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self.setMinimumWidth(620)
        self.kind = QComboBox()
        for key, text in SOURCE_KINDS.items():
            self.kind.addItem(text, key)
        self.kind.setCurrentIndex(list(SOURCE_KINDS).index(sd_source_kind(prefs.sd)))
        self.sd = QLineEdit(prefs.sd)
        self.sd_browse = QPushButton("Browse…")
        self.sd_browse.clicked.connect(self._browse_model)
        self.kind.currentIndexChanged.connect(self._kind_changed)
        self.dinov2 = QLineEdit(prefs.dinov2)
        self.dinov2_browse = QPushButton("Browse…")
        self.dinov2_browse.clicked.connect(partial(self._browse_folder, self.dinov2, "DINOv2 model folder"))
        self.depth_choice = QComboBox()
        for source, text in depth_choices().items():
            self.depth_choice.addItem(text, source)
        self.depth_choice.addItem(OTHER_DEPTH, "")
        self.depth_choice.activated.connect(self._depth_chosen)
        self.depth = QLineEdit(prefs.depth)
        self.depth_browse = QPushButton("Browse…")
        self.depth_browse.clicked.connect(partial(self._browse_folder, self.depth, "Depth model folder"))
        self.licences = {edit: self._note() for edit in (self.sd, self.dinov2, self.depth)}
        for edit in self.licences:
            edit.textChanged.connect(self._sources_changed)
        self.offline = QCheckBox("Offline: never download")
        self.offline.setToolTip("Use only the Hugging Face cache and local files")
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
        self.cache.editingFinished.connect(self.measure_cache)
        cache_browse = QPushButton("Browse…")
        cache_browse.clicked.connect(partial(self._browse_folder, self.cache, "Cache folder"))
        self.cache_budget = QSpinBox()
        self.cache_budget.setRange(CACHE_BUDGETS_GB.start, CACHE_BUDGETS_GB.stop - 1)
        self.cache_budget.setSuffix(" GB")
        self.cache_budget.setValue(prefs.cache_budget_gb)
        self.cache_budget.setToolTip("When the cache grows past this, the analyses used longest ago are deleted "
                                     "(they are made again when needed)")
        self.cache_size = self._note()
        self.cache_clear = QPushButton("Clear cache")
        self.cache_clear.setToolTip("Delete the stored analyses; they are made again when needed")
        self.cache_clear.clicked.connect(self.clear_cache)
        self._cache_task = CacheFolderTask()
        self._cache_task.finished.connect(self._cache_reported)
        self.size_policy = _combo({key: POLICY_NAMES[key] for key in SIZE_POLICIES}, prefs.size_policy)
        self.size_policy.setToolTip("The shape the method works at. Square squashes a photo that is not square.")
        self.max_side = _combo({side: str(side) for side in MAX_SIDES}, prefs.max_side)
        self.max_side.setToolTip("Longest side of the working size, for a long, thin photo (larger = slower)")
        self.output_size = _combo({key: OUTPUT_NAMES.get(key, f"Long side {key}") for key in OUTPUT_SIZES},
                                  prefs.output_size)
        self.output_size.setToolTip("The result's size; never larger than the photo")
        self.upscale = _combo({key: UPSCALE_NAMES[key] for key in UPSCALES}, prefs.upscale)

        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.addRow("Stable Diffusion 1.5 from", self.kind)
        form.addRow("Model", _row(self.sd, self.sd_browse))
        form.addRow("", self.licences[self.sd])
        form.addRow("DINOv2", _row(self.dinov2, self.dinov2_browse))
        form.addRow("", self.licences[self.dinov2])
        form.addRow("Depth model", self.depth_choice)
        form.addRow("", _row(self.depth, self.depth_browse))
        form.addRow("", self.licences[self.depth])
        form.addRow("", self._note(fast_mode_note()))
        form.addRow("Downloads", self.offline)
        form.addRow("Device", self.device)
        form.addRow("Precision", self.precision)
        form.addRow("Cache folder", _row(self.cache, cache_browse))
        form.addRow("Cache size limit", _row(self.cache_budget, self.cache_clear))
        form.addRow("", self.cache_size)
        form.addRow("Working shape", self.size_policy)
        form.addRow("Working long side at most", self.max_side)
        form.addRow("Result size", self.output_size)
        form.addRow("Result made by", self.upscale)
        note = self._note("Weights stay in the Hugging Face cache; the cache folder holds StyleGallery's analyses. "
                          "The licences are summaries: each licence's own text rules.")
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(note)
        layout.addWidget(buttons)
        self._prefs = prefs
        self._kind_changed()
        self._sources_changed()
        self.measure_cache()

    @staticmethod
    def _note(text: str = "") -> QLabel:
        label = QLabel(text)
        label.setWordWrap(True)
        label.setObjectName("hint")
        return label

    @Slot()
    def _kind_changed(self) -> None:
        """A hub id has nothing to browse for."""
        self.sd_browse.setEnabled(self.kind.currentData() != "hub")

    @Slot()
    def _sources_changed(self) -> None:
        """Each model's licence under it, and the depth combo following the depth field."""
        self.licences[self.sd].setText(licence_summary(self.sd.text().strip()))
        self.licences[self.dinov2].setText(licence_summary(self.dinov2.text().strip()))
        depth = self.depth.text().strip()
        self.licences[self.depth].setText(depth_note(depth))
        index = self.depth_choice.findData(depth)
        self.depth_choice.setCurrentIndex(index if index >= 0 else self.depth_choice.count() - 1)

    @Slot(int)
    def _depth_chosen(self, index: int) -> None:
        source = self.depth_choice.itemData(index)
        if source:
            self.depth.setText(source)
        else:
            self.depth.setFocus()

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

    def _browse_folder(self, edit: QLineEdit, title: str) -> None:
        path = QFileDialog.getExistingDirectory(self, title)
        if path:
            edit.setText(path)
            if edit is self.cache:
                self.measure_cache()

    def cache_folder(self) -> Path:
        """The folder the cache line is about: the one typed in, else the default."""
        return replace(self._prefs, cache_dir=self.cache.text().strip()).cache_folder()

    @Slot()
    def measure_cache(self) -> None:
        self.cache_size.setText("Measuring the cache…")
        self._cache_task.start(measure, self.cache_folder())

    @Slot()
    def clear_cache(self) -> None:
        """Empty the cache folder shown, off the UI thread (a large cache takes a while to delete)."""
        self.cache_clear.setEnabled(False)
        self.cache_size.setText("Clearing the cache…")
        self._cache_task.start(clear, self.cache_folder())

    @Slot(object)
    def _cache_reported(self, report: CacheReport) -> None:
        self.cache_size.setText(report.text)
        self.cache_clear.setEnabled(True)

    def preferences(self) -> Preferences:
        return replace(self._prefs, sd=self.sd.text().strip() or Preferences.sd,
                       dinov2=self.dinov2.text().strip() or Preferences.dinov2,
                       depth=self.depth.text().strip() or Preferences.depth, offline=self.offline.isChecked(),
                       device=self.device.currentText(), precision=self.precision.currentText(),
                       cache_dir=self.cache.text().strip(), cache_budget_gb=self.cache_budget.value(),
                       size_policy=self.size_policy.currentData(),
                       max_side=self.max_side.currentData(), output_size=self.output_size.currentData(),
                       upscale=self.upscale.currentData())


def _row(edit: QWidget, browse: QPushButton) -> QHBoxLayout:
    """A field with its button (a path and its Browse…)."""
    row = QHBoxLayout()
    row.addWidget(edit, 1)
    row.addWidget(browse)
    return row


def _combo(texts: dict, current) -> QComboBox:
    """A combo box of `texts` (value -> text shown) with `current` selected."""
    box = QComboBox()
    for value, text in texts.items():
        box.addItem(text, value)
    box.setCurrentIndex(max(0, box.findData(current)))
    return box
