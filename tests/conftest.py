"""Shared fixtures: tiny random-weight models built on disk in the real formats, the parity folder, offscreen Qt."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no test touches the network
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

PARITY_ROOT = Path(__file__).resolve().parents[2] / "shared" / "parity"


@pytest.fixture(scope="session", autouse=True)
def torch_threads_as_found():
    """CLI tests call `main.main()` in this process, and main applies the app's thread policy (once per process:
    on 2 cores, 1 torch thread). Pin that policy first to torch's own thread count, so every test, the parity tests
    above all (made with torch's default 2 threads), sees the same arithmetic whatever order the tests run in."""
    import dataclasses

    import torch

    from engine.threads import apply_thread_policy, physical_cores, plan_threads

    apply_thread_policy(dataclasses.replace(plan_threads(physical_cores()), torch_threads=torch.get_num_threads()))


@pytest.fixture(scope="session", autouse=True)
def default_cache_in_a_temp_folder(tmp_path_factory):
    """Engines made without a cache folder (the window's, the command line's) use $STYLEGALLERY_CACHE: a temp folder
    here (subprocesses inherit it), never the user's own cache."""
    from engine.cache import CACHE_ENV

    os.environ[CACHE_ENV] = str(tmp_path_factory.mktemp("default_cache"))
    yield
    os.environ.pop(CACHE_ENV, None)


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


def synthetic_image(path: Path, seed: int, size: int = 96) -> Path:
    """A small, seeded test picture: two halves of different colour and texture (regions to find)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    base = rng.uniform(40, 215, size=(2, 3))
    image = np.empty((size, size, 3))
    image[:, : size // 2] = base[0]
    image[:, size // 2:] = base[1]
    image += rng.normal(0, 12 + 10 * seed % 3, size=image.shape)
    Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(path)
    return path


@pytest.fixture(scope="session")
def sample_images(tmp_path_factory) -> dict[str, Path]:
    """A content picture and two references, made here (tests never read ../shared/benchmark)."""
    folder = tmp_path_factory.mktemp("images")
    return {name: synthetic_image(folder / f"{name}.png", seed) for seed, name in enumerate(["content", "ref0", "ref1"])}


@pytest.fixture(scope="session")
def tiny_cache_dir(tmp_path_factory) -> Path:
    """One stage cache for the session, so tests that analyse the same sample images share the work."""
    return tmp_path_factory.mktemp("stage_cache")


@pytest.fixture(scope="session")
def tiny_engine(tiny_model_source, tiny_cache_dir):
    """An Engine on the tiny models (CPU, fp32) with the session's shared cache."""
    from engine.api import Engine

    return Engine(tiny_model_source, device="cpu", precision="fp32", cache_dir=tiny_cache_dir)
