"""pyproject.toml says what the code needs: supported Pythons, every third-party import declared, both entry points."""
from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

REPO = Path(__file__).resolve().parents[1]
FIRST_PARTY = {"engine", "gui", "cli", "tests", "main"}


def _project() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _imported_modules() -> set[str]:
    """Top-level modules imported (anywhere, lazily too) by the app's own code."""
    files = [REPO / "main.py", *(p for folder in ("engine", "gui", "cli") for p in (REPO / folder).rglob("*.py"))]
    modules = set()
    for file in files:
        for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                modules.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules.add(node.module.split(".")[0])
    return modules - FIRST_PARTY - set(sys.stdlib_module_names)


@pytest.mark.parametrize("version", ["3.11", "3.12", "3.13"])
def test_supported_pythons_are_accepted(version):
    assert SpecifierSet(_project()["requires-python"]).contains(f"{version}.0")


def test_every_imported_package_is_declared():
    project = _project()
    requirements = project["dependencies"] + [r for extra in project["optional-dependencies"].values() for r in extra]
    declared = {_normalise(Requirement(r).name) for r in requirements}
    providers = metadata.packages_distributions()
    undeclared = {module for module in _imported_modules()
                  if not {_normalise(d) for d in providers.get(module, [module])} & declared}
    assert not undeclared, f"imported but not in pyproject.toml: {sorted(undeclared)}"


def test_console_and_window_entry_points():
    project = _project()
    assert project["scripts"]["stylegallery"] == "main:main"
    assert project["gui-scripts"], "a GUI entry point, so Windows opens no console window"
    assert set(project["gui-scripts"].values()) == {"main:main"}
