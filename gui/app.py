"""QApplication set-up: organisation and app names first (QSettings and QStandardPaths depend on them),
then the style sheet and icon. Logging (and uncaught errors) is `engine.logs.setup_logging`'s job."""
from __future__ import annotations

import sys
from pathlib import Path

from PySide6.QtCore import QCoreApplication
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication

ORGANIZATION = "StyleGallery"
APPLICATION = "StyleGallery"
RESOURCES = Path(__file__).resolve().parent.parent / "resources"


def set_names() -> None:
    """Before any QSettings or QStandardPaths call."""
    QCoreApplication.setOrganizationName(ORGANIZATION)
    QCoreApplication.setApplicationName(APPLICATION)


def create_app(argv: list[str] | None = None) -> QApplication:
    """The QApplication (or the existing one), named, styled and with the app icon."""
    set_names()
    app = QApplication.instance() or QApplication(argv if argv is not None else sys.argv[:1])
    app.setApplicationDisplayName(APPLICATION)
    style = RESOURCES / "style.qss"
    if style.is_file():
        app.setStyleSheet(style.read_text(encoding="utf-8"))
    icon = app_icon()
    if icon is not None:
        app.setWindowIcon(icon)
    return app


def app_icon() -> QIcon | None:
    """The icon drawn by packaging/make_icon.py (absent in a partial checkout: Qt's default)."""
    path = RESOURCES / "icons" / "stylegallery.png"
    return QIcon(str(path)) if path.is_file() else None

