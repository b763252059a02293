"""Diagnostics text (versions, devices, redacted settings) and the log file set-up, windowed builds included."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from engine.diagnostics import collect_diagnostics, looks_like_path, redact

REPO = Path(__file__).resolve().parents[1]


def _run(code: str, tmp_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), str(tmp_path)], cwd=REPO,
                          capture_output=True, text=True, timeout=120)


def test_report_has_versions_devices_and_settings():
    text = collect_diagnostics({"device": "auto", "steps": 50, "attention_slicing": True})
    assert f"torch {torch.__version__}" in text
    for package in ("diffusers", "transformers"):
        assert f"{package} " in text
    # Qt under the distribution name that is really installed (pyproject.toml asks for PySide6-Essentials),
    # never a distribution that is not (the PySide6 module alone does not make a "PySide6" install)
    from importlib import metadata

    for qt in ("PySide6-Essentials", "PySide6"):
        try:
            assert f"{qt} {metadata.version(qt)}" in text
        except metadata.PackageNotFoundError:
            assert f" {qt} " not in text.replace(",", " ")
    assert "PySide6" in text
    assert "Devices:" in text and ("GPU" in text or "cuda:" in text)
    assert "  device: auto" in text and "  steps: 50" in text and "  attention_slicing: True" in text


def test_private_paths_are_redacted(tmp_path):
    model = tmp_path / "alice_private" / "my_model.safetensors"
    model.parent.mkdir()
    model.write_bytes(b"x")
    settings = {
        "model": str(model),
        "hub_model": "stable-diffusion-v1-5/stable-diffusion-v1-5",
        "cache_dir": str(tmp_path),
        "recent_files": [str(tmp_path / "holiday.jpg"), "C:\\Users\\bob\\Pictures\\cat.png", "~/x/dog.webp"],
        "gallery": {"last_folder": "relative/gallery/folder", "count": 3},
        "hf_token": "hf_secret",
        "geometry": b"\x01\x02\x03",
        "last_error": f"cannot open {Path.home()}/secret.png",
    }
    text = collect_diagnostics(settings, log_file=Path.home() / ".local" / "state" / "StyleGallery" / "x.log")
    for private in ("alice_private", "my_model", "holiday", "bob", "cat.png", "dog", "relative/gallery",
                    "hf_secret", str(tmp_path), str(Path.home())):
        assert private not in text, private
    assert "model: <local file .safetensors>" in text
    assert "hub_model: stable-diffusion-v1-5/stable-diffusion-v1-5" in text  # a hub id is not private
    assert "cache_dir: <local folder>" in text
    assert "<local path .png>" in text and "'count': 3" in text
    assert "hf_token: <hidden>" in text and "geometry: <3 bytes>" in text
    assert "Log file: ~" in text


@pytest.mark.parametrize("value, is_path", [
    ("/abs/file.png", True), ("C:\\models\\sd.ckpt", True), ("\\\\server\\share", True), ("~/m", True),
    ("./m", True), ("a/b/c", True), ("models\\sd15", True),
    ("stable-diffusion-v1-5/stable-diffusion-v1-5", False), ("auto", False), ("fp16", False),
])
def test_looks_like_path(value, is_path):
    assert looks_like_path(value) is is_path


def test_redact_keeps_plain_values():
    assert redact("steps", 50) == 50 and redact("enabled", False) is False and redact("hf_token", "") == ""


def test_cuda_devices_are_listed(monkeypatch):
    class Props:
        name, major, minor = "NVIDIA Test GPU", 8, 9

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda index: Props())
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda index: (6 * 1024 ** 3, 24 * 1024 ** 3))
    assert "cuda:0: NVIDIA Test GPU, compute 8.9, 6.0 of 24.0 GiB free" in collect_diagnostics({})


def test_diagnostics_never_import_qt(tmp_path):
    result = _run("""
        import sys
        from engine.diagnostics import collect_diagnostics
        text = collect_diagnostics({"device": "auto"})
        assert "PySide6" in text, text  # the Qt version from package metadata
        assert not any(name.startswith("PySide6") for name in sys.modules), "Qt imported"
    """, tmp_path)
    assert result.returncode == 0, result.stderr


def test_log_file_rotates_and_console_gets_warnings(tmp_path):
    result = _run("""
        import logging, sys
        from engine import logs
        logs.MAX_BYTES = 2000
        path = logs.setup_logging(log_dir=sys.argv[1])
        logs.setup_logging(log_dir=sys.argv[1])  # twice: handlers are replaced, not doubled
        for i in range(200):
            logging.getLogger("engine.test").info("line %d %s", i, "x" * 40)
        logging.getLogger("engine.test").warning("visible on the console")
        print(path)
    """, tmp_path)
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()) == tmp_path / "stylegallery.log"
    assert result.stderr.count("visible on the console") == 1
    rotated = sorted(tmp_path.glob("stylegallery.log.*"))
    assert 1 <= len(rotated) <= 5
    assert "line 199" in (tmp_path / "stylegallery.log").read_text("utf-8")
    assert all(p.stat().st_size <= 2200 for p in [tmp_path / "stylegallery.log", *rotated])


def test_windowed_build_without_stdout_logs_prints_and_tracebacks(tmp_path):
    """console=False builds: stdout/stderr are None; prints, tqdm and uncaught errors must not crash."""
    result = _run("""
        import sys, threading
        sys.stdout = None
        sys.stderr = None
        from engine.logs import setup_logging
        setup_logging(log_dir=sys.argv[1])
        print("hello from print")
        from tqdm import tqdm
        for _ in tqdm(range(3)):
            pass
        sys.stdout.flush()
        worker = threading.Thread(target=lambda: 1 / 0, name="worker")
        worker.start(); worker.join()
        raise RuntimeError("boom at top level")
    """, tmp_path)
    assert result.returncode == 1  # the uncaught error still ends the process as usual
    text = (tmp_path / "stylegallery.log").read_text("utf-8")
    assert "INFO    stdout [MainThread] hello from print" in text
    assert "uncaught exception in thread worker" in text and "ZeroDivisionError" in text
    assert "uncaught exception" in text and "RuntimeError: boom at top level" in text
    assert text.count("RuntimeError: boom at top level") == 1  # logged once, not again via the stderr stream


def test_native_crash_leaves_a_stack_in_crash_log(tmp_path):
    result = _run("""
        import sys, faulthandler
        from engine.logs import setup_logging
        setup_logging(log_dir=sys.argv[1], console=False)
        faulthandler._sigsegv()
    """, tmp_path)
    assert result.returncode != 0
    assert "Fatal Python error" in (tmp_path / "crash.log").read_text("utf-8")
