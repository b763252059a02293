"""A dismissible banner over the content for the session's error (one-way bound to `session.error`)."""
from __future__ import annotations

from PySide6.QtCore import Slot
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QToolButton

from ..model.errors import ErrorInfo
from ..model.session import Session


class ErrorBanner(QFrame):
    def __init__(self, session: Session, parent=None):
        super().__init__(parent)
        self.session = session
        self.setObjectName("errorBanner")
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.label.setObjectName("errorText")
        close = QToolButton(text="✕")
        close.setToolTip("Dismiss")
        close.clicked.connect(self.dismiss)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(8, 4, 4, 4)
        layout.addWidget(self.label, 1)
        layout.addWidget(close)
        session.error_changed.connect(self.show_error)
        self.show_error(session.error)

    @Slot(object)
    def show_error(self, info: ErrorInfo | None) -> None:
        if info is None:
            self.hide()
            return
        self.setProperty("warning", info.is_warning)
        self.style().unpolish(self)
        self.style().polish(self)
        hint = f"<br><span style='font-weight:normal'>{info.hint}</span>" if info.hint else ""
        self.label.setText(f"<b>{info.message}</b>{hint}")
        self.show()

    @Slot()
    def dismiss(self) -> None:
        self.session.show_error(None)
