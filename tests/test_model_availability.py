"""`ModelBundle.available`: is a model here to load, answered from file listings alone (no download, no load)."""
from __future__ import annotations

import shutil
from pathlib import Path

import huggingface_hub
import pytest
import torch

from engine.models import ModelBundle
from engine.params import ModelSource

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def bundle(**sources) -> ModelBundle:
    return ModelBundle(ModelSource(**sources), torch.device("cpu"), torch.float32)


def fake_hub_cache(cache: Path, repo_id: str, folder: Path) -> Path:
    """The Hugging Face cache layout (refs/main -> snapshots/<commit>/files) holding a copy of `folder`."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(COMMIT)
    shutil.copytree(folder, repo / "snapshots" / COMMIT)
    return repo / "snapshots" / COMMIT


@pytest.fixture
def hub_cache(tmp_path, monkeypatch) -> Path:
    cache = tmp_path / "hf_cache"
    cache.mkdir()
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    return cache


@pytest.fixture
def no_load(monkeypatch):
    """Any attempt to load weights fails the test: `available` must answer from the listing."""
    import diffusers
    import transformers

    def refuse(*args, **kwargs):
        raise AssertionError("available() loaded a model")

    monkeypatch.setattr(diffusers.UNet2DConditionModel, "from_pretrained", refuse)
    monkeypatch.setattr(transformers.AutoModel, "from_pretrained", refuse)


def test_local_folders_and_single_file_are_available(tiny_models_dir, no_load):
    models = bundle(sd=str(tiny_models_dir / "sd15"), dinov2=str(tiny_models_dir / "dinov2"),
                    depth=str(tiny_models_dir / "depth"))
    assert [models.available(w) for w in ("sd", "dinov2", "depth")] == [True, True, True]
    single = bundle(sd=str(tiny_models_dir / "sd15.safetensors"), single_file_config=str(tiny_models_dir / "sd15"))
    assert single.available("sd")


def test_missing_or_incomplete_sources_are_not_available(tiny_models_dir, tmp_path):
    assert not bundle(sd=str(tmp_path / "absent")).available("sd")
    assert not bundle(dinov2=str(tmp_path / "absent")).available("dinov2")
    broken = tmp_path / "sd15"
    shutil.copytree(tiny_models_dir / "sd15", broken)
    (broken / "unet" / "diffusion_pytorch_model.safetensors").unlink()
    assert not bundle(sd=str(broken)).available("sd")
    no_processor = tmp_path / "depth"
    shutil.copytree(tiny_models_dir / "depth", no_processor)
    (no_processor / "preprocessor_config.json").unlink()
    assert not bundle(depth=str(no_processor)).available("depth")
    # a single file needs its config source too, and a pickled one the user's opt-in
    assert not bundle(sd=str(tiny_models_dir / "sd15.safetensors"),
                      single_file_config=str(tmp_path / "absent")).available("sd")
    pickled = tmp_path / "model.ckpt"
    pickled.write_bytes(b"not really")
    assert not bundle(sd=str(pickled), single_file_config=str(tiny_models_dir / "sd15")).available("sd")


def test_unknown_model_name_is_a_programming_error():
    with pytest.raises(ValueError, match="unknown model"):
        bundle().available("clip")


def test_hub_ids_are_looked_up_in_the_cache_only(tiny_models_dir, hub_cache, monkeypatch, no_load):
    """Online source (offline=False) and nothing cached: False, and huggingface_hub is told never to download."""
    calls = []
    real = huggingface_hub.snapshot_download

    def spy(*args, **kwargs):
        calls.append(kwargs.get("local_files_only"))
        return real(*args, **kwargs)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", spy)
    models = bundle(sd="someone/sd-tiny", dinov2="someone/dinov2-tiny", depth="someone/depth-tiny", offline=False)
    assert [models.available(w) for w in ("sd", "dinov2", "depth")] == [False, False, False]

    fake_hub_cache(hub_cache, "someone/sd-tiny", tiny_models_dir / "sd15")
    fake_hub_cache(hub_cache, "someone/dinov2-tiny", tiny_models_dir / "dinov2")
    assert [models.available(w) for w in ("sd", "dinov2", "depth")] == [True, True, False]
    assert calls and all(calls)


def test_partly_downloaded_hub_snapshot_is_not_available(tiny_models_dir, hub_cache):
    snapshot = fake_hub_cache(hub_cache, "someone/sd-tiny", tiny_models_dir / "sd15")
    (snapshot / "vae" / "diffusion_pytorch_model.safetensors").unlink()  # an interrupted download
    assert not bundle(sd="someone/sd-tiny").available("sd")
