"""Shared fixtures: tiny random-weight models built on disk in the real formats, the parity folder, offscreen Qt."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no test touches the network
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

PARITY_ROOT = Path(__file__).resolve().parents[2] / "shared" / "parity"


@pytest.fixture(scope="session")
def parity_root() -> Path:
    """../shared/parity (the authors' outputs); tests that need it skip with a reason where it is absent."""
    if not (PARITY_ROOT / "golden").is_dir():
        pytest.skip(f"parity fixture not found at {PARITY_ROOT} (it ships with CI's ../shared, not with a user's clone)")
    return PARITY_ROOT


@pytest.fixture(scope="session")
def tiny_models_dir(tmp_path_factory) -> Path:
    """Tiny SD1.5-shaped models (+ DINOv2, depth) with random, calibrated weights, saved once per session."""
    from tests.tiny_models import build_tiny_models

    return build_tiny_models(tmp_path_factory.mktemp("tiny_models"))


@pytest.fixture(scope="session")
def tiny_model_source(tiny_models_dir):
    """A ModelSource pointing at the tiny models, offline."""
    from engine.params import ModelSource

    return ModelSource(sd=str(tiny_models_dir / "sd15"), dinov2=str(tiny_models_dir / "dinov2"),
                       depth=str(tiny_models_dir / "depth"), offline=True)
