"""The layering rules, checked: the engine never imports Qt; widgets import neither torch nor the engine's numeric
modules; no stage-1 or stage-2 module imports a stage-3 module; the CLI commands load neither Qt nor torch just to
parse their options.

The import rules are read from the source (every `import`, lazy ones inside functions included), so a rule broken
on a path no test runs is still caught. `layering_violations` is given a module tree, so the test of the test runs
it on a temporary package that breaks each rule.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
QT = ("PySide6", "PyQt5", "PyQt6", "shiboken6")
NUMERIC_ENGINE = ("engine.stage1", "engine.stage2", "engine.stage3", "engine.draft.draft", "engine.draft.composite",
                  "engine.draft.quick_regions", "engine.draft.quick_match", "engine.draft.onnx_models")


@dataclass(frozen=True)
class Rule:
    """Modules under any of `importers` may not import a module under any of `forbidden` (dotted prefixes)."""

    name: str
    importers: tuple[str, ...]
    forbidden: tuple[str, ...]


RULES = (
    Rule("the engine imports no Qt", ("engine",), QT + ("gui",)),
    Rule("widgets import neither torch nor the engine's numeric modules", ("gui.widgets",), ("torch",) + NUMERIC_ENGINE),
    Rule("stage 1 imports no stage-3 module", ("engine.stage1",), ("engine.stage3",)),
    Rule("stage 2 imports no stage-3 module", ("engine.stage2",), ("engine.stage3",)),
)


def under(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == prefix or name.startswith(prefix + ".") for prefix in prefixes)


def module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_names(path: Path, root: Path) -> set[str]:
    """Every module `path` imports, relative imports resolved; `from a import b` counts as a and a.b (b may be a
    module)."""
    name = module_name(path, root)
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[:len(package) - node.level + 1] + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def layering_violations(root: Path, packages: tuple[str, ...] = ("engine", "gui"),
                        rules: tuple[Rule, ...] = RULES) -> list[str]:
    """'module imports name (rule)' for each import in `packages` (folders under `root`) that breaks a rule."""
    problems = []
    for path in sorted(p for package in packages for p in (root / package).rglob("*.py")):
        name = module_name(path, root)
        for rule in rules:
            if under(name, rule.importers):
                problems += [f"{name} imports {imported} ({rule.name})"
                             for imported in sorted(imported_names(path, root)) if under(imported, rule.forbidden)]
    return problems


def test_the_project_keeps_its_layering_rules():
    assert layering_violations(ROOT) == []


def test_each_rule_catches_a_module_that_breaks_it(tmp_path):
    """The test of the test: one temporary module per rule, each breaking it in its own way (a lazy import, a
    relative import, a `from` import), and a clean tree that reports nothing."""
    files = {
        "engine/__init__.py": "",
        "engine/params.py": "import numpy\n",
        "engine/stage1/__init__.py": "",
        "engine/stage1/segment.py": "from ..stage3 import stylize\n",
        "engine/stage2/__init__.py": "",
        "engine/stage2/matching.py": "from engine.stage3.features import FeatureCache\n",
        "engine/stage3/__init__.py": "",
        "engine/stage3/stylize.py": "from ..params import *\n",
        "engine/stage3/features.py": "",
        "engine/preview.py": "def show():\n    from PySide6.QtGui import QImage\n",
        "gui/__init__.py": "",
        "gui/widgets/__init__.py": "",
        "gui/widgets/panel.py": "import torch\nfrom engine.params import x\n",
        "gui/widgets/other.py": "from engine.stage2 import matching\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert layering_violations(tmp_path) == [
        "engine.preview imports PySide6.QtGui (the engine imports no Qt)",
        "engine.preview imports PySide6.QtGui.QImage (the engine imports no Qt)",
        "engine.stage1.segment imports engine.stage3 (stage 1 imports no stage-3 module)",
        "engine.stage1.segment imports engine.stage3.stylize (stage 1 imports no stage-3 module)",
        "engine.stage2.matching imports engine.stage3.features (stage 2 imports no stage-3 module)",
        "engine.stage2.matching imports engine.stage3.features.FeatureCache (stage 2 imports no stage-3 module)",
        "gui.widgets.other imports engine.stage2 (widgets import neither torch nor the engine's numeric modules)",
        "gui.widgets.other imports engine.stage2.matching (widgets import neither torch nor the engine's numeric "
        "modules)",
        "gui.widgets.panel imports torch (widgets import neither torch nor the engine's numeric modules)",
    ]
    for broken in ("engine/stage1/segment.py", "engine/stage2/matching.py", "engine/preview.py",
                   "gui/widgets/panel.py", "gui/widgets/other.py"):
        (tmp_path / broken).write_text("from engine.params import x\n")
    assert layering_violations(tmp_path) == []


def modules_loaded_by(code: str) -> set[str]:
    script = f"{code}\nimport sys\nprint(' '.join(sorted(sys.modules)), file=sys.stderr)"
    run = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True)
    return set(run.stderr.splitlines()[-1].split())


def test_engine_never_imports_qt():
    """At run time too: importing every engine module loads no Qt."""
    engine_modules = sorted("engine." + ".".join(p.relative_to(ROOT / "engine").with_suffix("").parts)
                            for p in (ROOT / "engine").rglob("*.py") if p.name != "__init__.py")
    loaded = modules_loaded_by("\n".join(f"import {name}" for name in engine_modules))
    assert set(engine_modules) <= loaded
    assert not any(name.startswith("PySide6") for name in loaded)


def test_cli_option_parsing_is_light():
    loaded = modules_loaded_by("import main\ntry:\n    main.main(['run', '--help'])\nexcept SystemExit:\n    pass")
    assert not any(name.startswith(("PySide6", "torch")) for name in loaded)
