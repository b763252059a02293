"""The cache in the window: the same folder as the command line's, its size and limit in Settings, and the Clear
button (off the UI thread, refusing a home folder). Offscreen Qt."""
from __future__ import annotations

import argparse
import threading
from pathlib import Path

import numpy as np
import pytest

from engine.cache import CACHE_ENV, DiskCache, cache_entries, cache_size
from engine.wording import byte_size
from tests.test_gui_support import make_window  # noqa: F401 (fixture)

pytest.importorskip("pytestqt")


def _cli_engine(arguments: list[str]):
    """The Engine the command line builds from `arguments` (the engine options of `run` and `analyze`)."""
    from cli.common import add_engine_args, engine_from_args

    parser = argparse.ArgumentParser()
    add_engine_args(parser)
    return engine_from_args(parser.parse_args(arguments))


@pytest.mark.parametrize("where", ["platform", "environment"])
def test_window_and_command_line_use_one_cache_folder(where, tmp_path, monkeypatch):
    """By default the platform's user cache folder (platformdirs), or $STYLEGALLERY_CACHE: the same for the window's
    engine, its draft and the command line's engine."""
    from gui.app import make_engine
    from gui.settings import Preferences

    monkeypatch.delenv(CACHE_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))  # where platformdirs puts it on Linux
    if where == "environment":
        monkeypatch.setenv(CACHE_ENV, str(tmp_path / "shared"))
    from platformdirs import user_cache_dir

    expected = tmp_path / "shared" if where == "environment" else Path(user_cache_dir("StyleGallery", appauthor=False))
    window_engine, error = make_engine(Preferences())
    assert error is None
    assert window_engine.cache.root == Preferences().cache_folder() == expected
    assert window_engine.drafter._disk is window_engine.cache
    assert _cli_engine([]).cache.root == expected


def test_a_folder_and_limit_from_settings_or_the_command_line_override_the_default(tmp_path):
    from gui.app import make_engine
    from gui.settings import Preferences

    engine, _ = make_engine(Preferences(cache_dir=str(tmp_path / "mine"), cache_budget_gb=2))
    assert (engine.cache.root, engine.cache.budget_bytes) == (tmp_path / "mine", 2 << 30)
    cli = _cli_engine(["--cache-dir", str(tmp_path / "cli"), "--cache-budget", "0.5"])
    assert (cli.cache.root, cli.cache.budget_bytes) == (tmp_path / "cli", 1 << 29)


def test_a_bad_cache_budget_is_one_readable_line(capsys):
    import main

    with pytest.raises(SystemExit) as exit_info:
        main.main(["analyze", "photo.png", "--cache-budget", "lots"])
    assert exit_info.value.code != 0
    assert "cache budget 'lots' is not a number of GB" in capsys.readouterr().err


def _filled_cache(folder: Path) -> DiskCache:
    cache = DiskCache(folder)
    for key in ("aa", "bb"):
        cache.put(key * 32, {"x": np.zeros(1000)}, namespace="analysis")
    return cache


def test_settings_shows_the_cache_size_and_clear_empties_it_off_the_ui_thread(qtbot, tmp_path, monkeypatch):
    import gui.cache_folder
    from gui.settings import Preferences
    from gui.widgets.settings_dialog import SettingsDialog

    _filled_cache(tmp_path / "cache")
    size = byte_size(cache_size(tmp_path / "cache"))
    dialog = SettingsDialog(Preferences(cache_dir=str(tmp_path / "cache"), cache_budget_gb=7), "unused")
    qtbot.addWidget(dialog)
    qtbot.waitUntil(lambda: dialog.cache_size.text() == f"{size} in 2 entries")
    assert dialog.cache_budget.value() == 7
    dialog.cache_budget.setValue(3)
    assert dialog.preferences().cache_budget_gb == 3

    release = threading.Event()
    real_clear = gui.cache_folder.clear_cache

    def slow_clear(folder):
        assert threading.current_thread() is not threading.main_thread()
        release.wait(10)
        return real_clear(folder)

    monkeypatch.setattr(gui.cache_folder, "clear_cache", slow_clear)
    dialog.cache_clear.click()  # returns at once: the window stays responsive while the disk works
    assert dialog.cache_size.text() == "Clearing the cache…" and not dialog.cache_clear.isEnabled()
    release.set()
    qtbot.waitUntil(lambda: dialog.cache_size.text() == f"Cleared {size}; now 0 B in 0 entries")
    assert cache_entries(tmp_path / "cache") == [] and dialog.cache_clear.isEnabled()


def test_clear_refuses_a_cache_folder_set_to_the_home_folder(qtbot, tmp_path, monkeypatch):
    from gui.settings import Preferences
    from gui.widgets.settings_dialog import SettingsDialog

    home = tmp_path / "home"
    _filled_cache(home)
    monkeypatch.setenv("HOME", str(home))
    dialog = SettingsDialog(Preferences(cache_dir=str(home)), "unused")
    qtbot.addWidget(dialog)
    qtbot.waitUntil(lambda: "2 entries" in dialog.cache_size.text())
    dialog.cache_clear.click()
    qtbot.waitUntil(lambda: "will not clear it" in dialog.cache_size.text())
    assert len(cache_entries(home)) == 2


def test_the_window_applies_the_cache_limit_from_settings(make_window, tmp_path):
    from gui.settings import Preferences

    window = make_window()
    window.app.apply_preferences(Preferences(cache_dir=str(tmp_path / "c"), cache_budget_gb=9))
    assert (window.controller.engine.cache.root, window.controller.engine.cache.budget_bytes) == (
        tmp_path / "c", 9 << 30)
    window.app.settings.qsettings.setValue("model/cache_budget_gb", "0")  # edited by hand: the default
    assert window.app.preferences().cache_budget_gb == Preferences.cache_budget_gb
