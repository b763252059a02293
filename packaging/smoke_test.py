"""Checks a built one-folder app: it starts, builds its window offscreen and exits 0; optionally it runs stage 1
on tiny models, which loads torch, diffusers and transformers from the bundle.

    python packaging/smoke_test.py dist/StyleGallery [--models ../shared/parity/models-tiny]

Exit status 0 when every check passed; each check prints one line with its time.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GUI_NAME = "StyleGallery"
CLI_NAME = "stylegallery-cli"
TIMEOUT_S = 600  # a cold start from a slow disk can take a minute; tiny-model stage 1 a few more on 2 cores


def executable(folder: Path, name: str) -> Path:
    return folder / (f"{name}.exe" if sys.platform == "win32" else name)


def check(label: str, command: list[str], env: dict[str, str], expect: str | None = None) -> bool:
    """Run one command; pass = exit 0 (and `expect` in its output, where given)."""
    start = time.perf_counter()
    try:
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        print(f"FAIL {label}: no exit within {TIMEOUT_S} s")
        return False
    elapsed = time.perf_counter() - start
    output = result.stdout + result.stderr
    passed = result.returncode == 0 and (expect is None or expect in output)
    print(f"{'ok  ' if passed else 'FAIL'} {label}: exit {result.returncode} in {elapsed:.1f} s")
    if not passed:
        print(output[-4000:])
    return passed


def smoke_env(home: Path) -> dict[str, str]:
    """Offscreen Qt, no network, and a throwaway home so no user settings, logs or caches are touched."""
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    for var in ("HOME", "USERPROFILE", "APPDATA", "LOCALAPPDATA", "XDG_CONFIG_HOME", "XDG_DATA_HOME",
                "XDG_STATE_HOME", "XDG_CACHE_HOME"):
        env[var] = str(home / var.lower())
    return env


def run_checks(app_folder: Path, models: Path | None) -> bool:
    gui, cli = executable(app_folder, GUI_NAME), executable(app_folder, CLI_NAME)
    missing = [str(p) for p in (gui, cli) if not p.is_file()]
    if missing:
        print(f"FAIL: not built: {', '.join(missing)}")
        return False
    with tempfile.TemporaryDirectory(prefix="stylegallery-smoke-") as tmp:
        tmp_path = Path(tmp)
        env = smoke_env(tmp_path)
        results = [
            check("windowed launcher --smoke", [str(gui), "--smoke"], env),
            check("cli launcher gui --smoke", [str(cli), "gui", "--smoke"], env, expect="smoke:"),
            check("cli --help", [str(cli), "--help"], env, expect="analyze"),
        ]
        if models is not None:
            results.append(check("cli analyze on tiny models", analyze_command(cli, models, tmp_path), env,
                                 expect="regions"))
    return all(results)


def analyze_command(cli: Path, models: Path, tmp: Path) -> list[str]:
    """Stage 1 on a small synthetic photo with the tiny random-weight models (2 inversion steps)."""
    from PIL import Image

    photo = tmp / "photo.png"
    Image.radial_gradient("L").resize((128, 96)).convert("RGB").save(photo)
    return [str(cli), "analyze", str(photo), "--out", str(tmp / "out"), "--model", str(models / "sd15"),
            "--dinov2", str(models / "dinov2"), "--depth-model", str(models / "depth"), "--offline",
            "--inversion-steps", "2", "--max-regions", "3", "--cache-dir", str(tmp / "cache")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("app_folder", type=Path, help="the built one-folder app (dist/StyleGallery)")
    parser.add_argument("--models", type=Path, default=None,
                        help="tiny models folder (sd15/, dinov2/, depth/) to also run stage 1 in the built app")
    args = parser.parse_args(argv)
    return 0 if run_checks(args.app_folder, args.models) else 1


if __name__ == "__main__":
    sys.exit(main())
