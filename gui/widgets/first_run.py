"""First start: what will be downloaded, how big, where it goes; or point at models already on disk."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox, QWidget

FIRST_RUN_TEXT = """<h3>Welcome to StyleGallery</h3>
<p>StyleGallery restyles your photo after your own gallery of references, on this computer.
It needs three models from the Hugging Face hub, downloaded <b>once</b>, at the first analysis:</p>
<ul><li>Stable Diffusion 1.5 (about 4 GB)</li><li>DINOv2-base (about 350 MB)</li>
<li>Depth Anything V2 Large (about 1.3 GB)</li></ul>
<p>They go into the Hugging Face cache and are shared with other tools. The progress shows at the bottom
of the window. After that, StyleGallery works offline.</p>
<p>If you already have the models on disk (a diffusers folder or a <code>.safetensors</code> file),
choose <b>Settings…</b> to point at them.</p>"""


def ask_first_run(parent: QWidget) -> bool:
    """Show the explanation; True when the user wants to open Settings to choose local models."""
    box = QMessageBox(parent)
    box.setWindowTitle("First start")
    box.setTextFormat(Qt.TextFormat.RichText)
    box.setText(FIRST_RUN_TEXT)
    settings = box.addButton("Settings…", QMessageBox.ButtonRole.ActionRole)
    box.addButton("Download on first use", QMessageBox.ButtonRole.AcceptRole)
    box.exec()
    return box.clickedButton() is settings
