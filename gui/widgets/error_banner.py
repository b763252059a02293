"""The banner over the content: the session's queued messages, newest last, each with its own dismiss button
(one-way bound to `session.messages`). Errors and notices look different; a new message never hides an older one:
past `MAX_SHOWN` rows a line counts the rest, which come up as newer ones are dismissed."""
from __future__ import annotations

from html import escape

from PySide6.QtCore import Slot
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QToolButton, QVBoxLayout, QWidget

from engine.wording import count

from ..model.errors import ErrorInfo
from ..model.session import Session

MAX_SHOWN = 3  # rows on screen at once; the banner must not push the photo out of the window


class MessageRow(QFrame):
    """One message: bold text, its hint, and ✕."""

    def __init__(self, session: Session, info: ErrorInfo, parent: QWidget | None = None):
        super().__init__(parent)
        self.session, self.info = session, info
        self.setObjectName("errorBanner")
        self.setProperty("warning", info.is_warning)
        self.setAccessibleName("Notice" if info.is_warning else "Error")
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.label.setObjectName("errorText")
        hint = f"<br><span style='font-weight:normal'>{escape(info.hint)}</span>" if info.hint else ""
        self.label.setText(f"<b>{escape(info.message)}</b>{hint}")
        close = QToolButton(text="✕")
        close.setToolTip("Dismiss this message")
        close.clicked.connect(self.dismiss)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(8, 4, 4, 4)
        layout.addWidget(self.label, 1)
        layout.addWidget(close)

    @Slot()
    def dismiss(self) -> None:
        self.session.dismiss(self.info)


class ErrorBanner(QWidget):
    """The queue of rows over the photo; hidden when there is no message."""

    def __init__(self, session: Session, parent: QWidget | None = None):
        super().__init__(parent)
        self.session = session
        self.rows: list[MessageRow] = []
        self.more = QLabel()
        self.more.setObjectName("hint")
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._layout.setSpacing(2)
        self._layout.addWidget(self.more)
        session.messages_changed.connect(self.show_messages)
        self.show_messages(session.messages)

    @Slot(object)
    def show_messages(self, messages: tuple) -> None:
        for row in self.rows:
            self._layout.removeWidget(row)
            row.hide()
            row.deleteLater()
        shown = [info for _, info in messages[-MAX_SHOWN:]]
        self.rows = [MessageRow(self.session, info, self) for info in shown]
        for index, row in enumerate(self.rows):
            self._layout.insertWidget(index, row)
        hidden = len(messages) - len(shown)
        self.more.setText(f"{count(hidden, 'earlier message')}: dismiss the ones above to see them")
        self.more.setVisible(hidden > 0)
        self.setVisible(bool(messages))

    def text(self) -> str:
        """Every message shown, as plain text (for tests and accessibility)."""
        return "\n".join(f"{row.info.message} {row.info.hint}".strip() for row in self.rows)
