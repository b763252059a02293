"""`python main.py gui --smoke` (the packaged app's self-test) builds the window and logs through
`engine.logs.setup_logging` into the user's log folder."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gui_smoke_writes_the_app_log(tmp_path):
    env = dict(os.environ, XDG_STATE_HOME=str(tmp_path / "state"), XDG_CONFIG_HOME=str(tmp_path / "config"),
               HOME=str(tmp_path), QT_QPA_PLATFORM="offscreen")
    done = subprocess.run([sys.executable, "main.py", "gui", "--smoke"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "smoke: window built and closed" in done.stdout
    logs = list((tmp_path / "state").rglob("stylegallery.log"))
    assert len(logs) == 1 and "StyleGallery" in logs[0].read_text(encoding="utf-8")
