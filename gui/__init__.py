"""The PySide6 desktop app: observable document model (`gui.model`), widgets, and the GPU worker thread."""
