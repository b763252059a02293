"""The engine never imports Qt, and the CLI commands load neither Qt nor torch just to parse their options."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def modules_loaded_by(code: str) -> set[str]:
    script = f"{code}\nimport sys\nprint(' '.join(sorted(sys.modules)), file=sys.stderr)"
    run = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True)
    return set(run.stderr.splitlines()[-1].split())


def test_engine_never_imports_qt():
    engine_modules = sorted("engine." + ".".join(p.relative_to(ROOT / "engine").with_suffix("").parts)
                            for p in (ROOT / "engine").rglob("*.py") if p.name != "__init__.py")
    loaded = modules_loaded_by("\n".join(f"import {name}" for name in engine_modules))
    assert set(engine_modules) <= loaded
    assert not any(name.startswith("PySide6") for name in loaded)


def test_cli_option_parsing_is_light():
    loaded = modules_loaded_by("import main\ntry:\n    main.main(['run', '--help'])\nexcept SystemExit:\n    pass")
    assert not any(name.startswith(("PySide6", "torch")) for name in loaded)
