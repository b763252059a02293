"""`python main.py` / `python main.py gui`: the desktop window. `--smoke` builds it offscreen and exits 0
(the packaged app's self-test: Qt plugins, resources and imports all load)."""
from __future__ import annotations

import argparse
import os
import sys


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("gui", help="open the StyleGallery window (the default)")
    parser.add_argument("--smoke", action="store_true",
                        help="build the window offscreen, process events, exit 0 (packaging self-test)")
    parser.add_argument("--data-dir", default=None, help="gallery and sessions folder (default: the user data folder)")


def run(args: argparse.Namespace) -> int:
    import logging
    import tempfile
    from pathlib import Path

    if args.smoke:
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
    if sys.stdout is None or sys.stderr is None:  # windowed builds: tqdm and logging need somewhere to write
        sys.stdout = sys.stdout or open(os.devnull, "w")
        sys.stderr = sys.stderr or open(os.devnull, "w")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")

    from gui.app import create_app, log_uncaught
    from gui.main_window import MainWindow
    from gui.settings import AppSettings, data_folder

    app = create_app()
    log_uncaught()
    if args.smoke:
        from PySide6.QtCore import QSettings

        with tempfile.TemporaryDirectory(prefix="stylegallery-smoke-") as tmp:
            settings = AppSettings(QSettings(str(Path(tmp) / "settings.ini"), QSettings.Format.IniFormat))
            window = MainWindow(settings, Path(tmp) / "data")
            window.show()
            app.processEvents()
            window.close()
            app.processEvents()
            print("smoke: window built and closed")
        return 0

    settings = AppSettings()
    window = MainWindow(settings, Path(args.data_dir) if args.data_dir else data_folder())
    window.show()
    if not settings.first_run_done:
        from gui.settings import sd_source_kind
        from gui.widgets.first_run import ask_first_run

        settings.first_run_done = True
        if sd_source_kind(settings.preferences().sd) == "hub" and ask_first_run(window):
            window.open_settings()
    return app.exec()
