"""Export…: the format and, for JPEG and WebP, the quality (the file name is asked next, by the file dialog)."""
from __future__ import annotations

from PySide6.QtCore import Qt, Slot
from PySide6.QtWidgets import QComboBox, QDialog, QDialogButtonBox, QFormLayout, QSpinBox, QWidget

from engine.export import FORMAT_LABELS, QUALITY_FORMATS, QUALITY_RANGE

FORMAT_TIPS = {"png": "Lossless, 8-bit, with the run's parameters in its metadata",
               "jpeg": "Small, lossy: for the web and sharing",
               "webp": "Smaller than JPEG at the same quality; most browsers and editors open it",
               "tiff": "16 bits per channel, uncompressed: for print and further editing"}


class ExportDialog(QDialog):
    def __init__(self, fmt: str, quality: int, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Export")
        self.format = QComboBox()
        self.format.setObjectName("exportFormat")
        for key, label in FORMAT_LABELS.items():
            self.format.addItem(label, key)
            self.format.setItemData(self.format.count() - 1, FORMAT_TIPS[key], Qt.ItemDataRole.ToolTipRole)
        self.quality = QSpinBox()
        self.quality.setObjectName("exportQuality")
        self.quality.setRange(*QUALITY_RANGE)
        self.quality.setSuffix(" %")
        self.quality.setToolTip("JPEG and WebP: higher keeps more detail in a larger file")
        self.format.currentIndexChanged.connect(self._format_changed)
        self.format.setCurrentIndex(max(self.format.findData(fmt), 0))
        self.quality.setValue(quality)
        self._format_changed()
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Export…")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QFormLayout(self)
        layout.addRow("Format", self.format)
        layout.addRow("Quality", self.quality)
        layout.addRow(buttons)

    @Slot()
    def _format_changed(self) -> None:
        self.quality.setEnabled(self.format.currentData() in QUALITY_FORMATS)

    def choice(self) -> tuple[str, int]:
        """(format, quality) chosen."""
        return self.format.currentData(), self.quality.value()
