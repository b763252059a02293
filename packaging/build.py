"""Builds the one-folder app with PyInstaller, then smoke-tests it.

    python packaging/build.py                       # with the current Python environment
    python packaging/build.py --variant cpu         # in a fresh venv with CPU-only torch
    python packaging/build.py --variant cuda        # in a fresh venv with CUDA torch

A variant build makes `build/venv-<variant>` from scratch, so a CPU build never ships CUDA libraries left
over from an earlier install (stemdeckapp/stemdeck#225). The result is `dist/<variant>/StyleGallery/`;
the script prints the build time and folder size. See packaging/README.md.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "packaging" / "stylegallery.spec"
TORCH_INDEXES = {  # PyTorch's own wheel indexes; PyPI's Linux wheel is a CUDA build, its Windows wheel CPU-only
    "cpu": "https://download.pytorch.org/whl/cpu",
    "cuda": "https://download.pytorch.org/whl/cu128",
}


def run(command: list[str], **kwargs) -> None:
    print("+", " ".join(command), flush=True)
    subprocess.run(command, check=True, **kwargs)


def variant_python(variant: str, torch_spec: str, torch_index: str | None) -> Path:
    """A fresh venv for `variant` with torch from its index, then the app's dependencies and PyInstaller."""
    env_dir = ROOT / "build" / f"venv-{variant}"
    if env_dir.exists():
        shutil.rmtree(env_dir)
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")
    run([str(python), "-m", "pip", "install", "--upgrade", "pip"])
    index = torch_index or TORCH_INDEXES[variant]
    run([str(python), "-m", "pip", "install", torch_spec, "--index-url", index])
    run([str(python), "-m", "pip", "install", f"{ROOT}[package]"])  # keeps the torch above (it satisfies >=2.4)
    return python


def folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", choices=["current", "cpu", "cuda"], default="current",
                        help="current: this Python environment as it is; cpu/cuda: a fresh venv with that torch")
    parser.add_argument("--torch", default="torch==2.13.0", help="torch requirement for a variant venv")
    parser.add_argument("--torch-index", default=None, help="wheel index for torch (default: PyTorch's for the variant)")
    parser.add_argument("--skip-smoke", action="store_true", help="build only")
    parser.add_argument("--models", type=Path, default=None,
                        help="tiny models folder for the smoke test's stage-1 run (e.g. ../shared/parity/models-tiny)")
    args = parser.parse_args(argv)

    python = Path(sys.executable) if args.variant == "current" else variant_python(args.variant, args.torch,
                                                                                   args.torch_index)
    dist = ROOT / "dist" / args.variant
    start = time.perf_counter()
    run([str(python), "-m", "PyInstaller", str(SPEC), "--noconfirm", "--distpath", str(dist),
         "--workpath", str(ROOT / "build" / f"pyinstaller-{args.variant}")], cwd=ROOT,
        env=dict(os.environ, PYTHONHASHSEED="0"))  # reproducible bytecode order between builds
    app = dist / "StyleGallery"
    print(f"built {app} in {time.perf_counter() - start:.0f} s, {folder_size(app) / 2**30:.2f} GiB")
    if args.skip_smoke:
        return 0
    command = [str(python), str(ROOT / "packaging" / "smoke_test.py"), str(app)]
    if args.models is not None:
        command += ["--models", str(args.models)]
    return subprocess.run(command).returncode


if __name__ == "__main__":
    sys.exit(main())
