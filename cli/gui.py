"""`python main.py` / `python main.py gui`: the desktop window. `--smoke` builds it offscreen and exits 0
(the packaged app's self-test: Qt plugins, resources and imports all load)."""
from __future__ import annotations

import argparse
import os


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("gui", help="open the StyleGallery window (the default)")
    parser.add_argument("--smoke", action="store_true",
                        help="build the window offscreen, process events, exit 0 (packaging self-test)")
    parser.add_argument("--data-dir", default=None, help="gallery and sessions folder (default: the user data folder)")


def run(args: argparse.Namespace) -> int:
    import tempfile
    from pathlib import Path

    from engine.logs import setup_logging

    if args.smoke:
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
    # The rotating log file, uncaught errors of every thread and native crashes; in a windowed build (no
    # stdout/stderr) it also gives the libraries a stream to print to.
    log_file = setup_logging()

    from gui.app import create_app, open_window
    from gui.settings import AppSettings, data_folder

    app = create_app()
    if args.smoke:
        from PySide6.QtCore import QSettings

        with tempfile.TemporaryDirectory(prefix="stylegallery-smoke-") as tmp:
            settings = AppSettings(QSettings(str(Path(tmp) / "settings.ini"), QSettings.Format.IniFormat))
            window = open_window(settings, Path(tmp) / "data", log_file=log_file)
            window.show()
            app.processEvents()
            window.close()
            app.processEvents()
            print("smoke: window built and closed")
        return 0

    from gui.data_folder import DataFolderUnavailable, claim_data_folder

    settings = AppSettings()
    folder = Path(args.data_dir) if args.data_dir else data_folder()
    try:
        lock = claim_data_folder(folder, [settings.preferences().cache_folder()])  # held until the app exits
    except DataFolderUnavailable as exc:
        from PySide6.QtWidgets import QMessageBox

        QMessageBox.warning(None, "StyleGallery", f"{exc.message}.\n\n{exc.hint}")
        return 1
    window = open_window(settings, folder, log_file=log_file)
    window.show()
    if not settings.first_run_done:
        from gui.settings import sd_source_kind
        from gui.widgets.first_run import ask_first_run

        settings.first_run_done = True
        prefs = settings.preferences()
        if sd_source_kind(prefs.sd) == "hub":
            choice = ask_first_run(window, prefs)
            if choice.prefs != prefs:  # the commercial depth model, chosen before any download
                window.app.apply_preferences(choice.prefs)
            if choice.open_settings:
                window.open_settings()
    try:
        return app.exec()
    finally:
        lock.unlock()
