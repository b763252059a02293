"""The application's composition root, and the QApplication set-up.

`App` builds and owns what the window shows: the settings, the document (`Session`), the `Gallery`, the
`Controller` and the Engine it drives; it keeps the preferences that the window's controls change (draft
strength and colour option, window geometry, one-time notices) in QSettings, their one store. `MainWindow`
only shows the App and forwards the artist's actions to it (after KAD's root object). `open_window` wires the
two and starts the first jobs; `main.py gui` and the tests call it.

`create_app` sets up the QApplication: organisation and app names first (QSettings and QStandardPaths depend
on them), then the style sheet and icon. Logging (and uncaught errors) is `engine.logs.setup_logging`'s job.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QByteArray, QCoreApplication, QObject, Signal, Slot
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication

from engine.cache import default_cache_dir
from engine.logs import LOG_NAME, default_log_dir
from engine.models import random_weights

from .controller import Controller
from .model.errors import ErrorInfo
from .model.gallery import Gallery
from .model.session import Session
from .settings import AppSettings, Preferences, sd_source_kind

if TYPE_CHECKING:
    from .main_window import MainWindow

ORGANIZATION = "StyleGallery"
APPLICATION = "StyleGallery"
RESOURCES = Path(__file__).resolve().parent.parent / "resources"


def make_engine(prefs: Preferences, on_event=None) -> tuple[Any, ErrorInfo | None]:
    """An Engine for `prefs` (models load lazily, on the first job), or the error that prevents one.
    `on_event` gets the model downloads' progress (on the worker thread)."""
    try:
        from engine.api import Engine

        return Engine(prefs.model_source(), device=prefs.device, precision=prefs.precision,
                      cache_dir=prefs.cache_folder(), cache_budget=prefs.cache_budget_bytes(), on_event=on_event), None
    except Exception as exc:  # shown in the window; the gallery and pins stay usable without an engine
        return None, ErrorInfo.from_exception(exc)


def model_label(prefs: Preferences) -> str:
    """The model in use as the status bar names it; random-weight test models say so."""
    label = prefs.sd if sd_source_kind(prefs.sd) == "hub" else Path(prefs.sd).name
    return f"{label} (RANDOM WEIGHTS)" if random_weights(prefs.model_source()) else label


class App(QObject):
    """Settings, document, gallery, controller and engine of one window, and the preferences kept in QSettings."""

    speed_notice = Signal(str)  # the engine runs on the CPU: shown once per installation

    def __init__(self, settings: AppSettings, data_dir: Path, engine: Any = None, log_file: Path | None = None,
                 parent: QObject | None = None):
        """`engine` None: built from the settings (tests pass their own); `log_file`: where `setup_logging` writes."""
        super().__init__(parent)
        self.settings = settings
        self.data_dir = Path(data_dir)
        self.log_file = Path(log_file) if log_file is not None else default_log_dir() / LOG_NAME
        prefs = settings.preferences()
        self.session = Session(self.data_dir / "sessions", self)
        self.gallery = Gallery(self.data_dir / "gallery", self)
        self.controller = Controller(self.session, self.gallery, engine, model_label(prefs),
                                     random_weights(prefs.model_source()), parent=self)
        if engine is None:
            self.controller.engine, self.controller.engine_error = make_engine(prefs, self.controller.engine_event)
        self._apply_sizes(prefs)
        self.session.draft_strength, self.session.draft_preserve_colour = settings.draft_options()
        for signal in (self.session.draft_strength_changed, self.session.draft_preserve_colour_changed):
            signal.connect(self._draft_options_changed)
        self.controller.speed_warning.connect(self._speed_warning)

    def start(self) -> None:
        """The first jobs (device summary, analyses): once the window listens to the models."""
        self.controller.start()

    def default_cache(self) -> Path:
        """The cache folder when Settings names none: the command line's (engine.cache.default_cache_dir)."""
        return default_cache_dir()

    def preferences(self) -> Preferences:
        return self.settings.preferences()

    def apply_preferences(self, prefs: Preferences) -> None:
        """Store `prefs` and switch to an engine built from them (the next job uses it)."""
        self.settings.set_preferences(prefs)
        engine, error = make_engine(prefs, self.controller.engine_event)
        self.session.show_error(None, "models")  # the old models' problems; the new ones report their own
        self._apply_sizes(prefs)
        self.controller.use_engine(engine, model_label(prefs), random_weights(prefs.model_source()), error)

    def _apply_sizes(self, prefs: Preferences) -> None:
        """The working size and the result's size the controller's jobs use."""
        self.controller.stage1, self.controller.output = prefs.stage1(self.controller.stage1), prefs.output()

    def diagnostics(self) -> str:
        """Versions, device and settings (local paths redacted), for a bug report."""
        from engine.diagnostics import collect_diagnostics

        return collect_diagnostics(self.settings.as_dict(), self.log_file)

    def window_geometry(self) -> QByteArray | None:
        return self.settings.geometry()

    def close(self, window_geometry: QByteArray) -> None:
        """Cancel, wait for the worker threads, save the document and the window's geometry."""
        self.controller.shutdown()
        self.settings.set_geometry(window_geometry)

    @Slot()
    def _draft_options_changed(self) -> None:
        self.settings.set_draft_options(self.session.draft_strength, self.session.draft_preserve_colour)

    @Slot(str)
    def _speed_warning(self, warning: str) -> None:
        if not self.settings.cpu_warning_shown:
            self.settings.cpu_warning_shown = True
            self.speed_notice.emit(warning)


def open_window(settings: AppSettings, data_dir: Path, engine: Any = None,
                log_file: Path | None = None) -> MainWindow:
    """Build the App and its window, then start the first jobs (the window must be listening by then)."""
    from .main_window import MainWindow

    window = MainWindow(App(settings, data_dir, engine, log_file))
    window.app.start()
    return window


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
