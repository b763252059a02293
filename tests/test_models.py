"""Model loading: every source kind through the real loader (diffusers folder, single-file checkpoint, hub id
from the local cache, missing and unsafe sources), lazy-once loading, the tiny fixture models' architecture and
calibration, and parity of the model inputs (empty-prompt embeddings, DINOv2 pixel values) with the goldens."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from engine import models
from engine.errors import ModelMissing, UnsafeCheckpoint
from engine.models import SD15_DDIM_CONFIG, ModelBundle, source_kind
from engine.params import ModelSource
from engine.types import StepEvent
from tests.tiny_models import calibration_image, count_self_attention

CPU = torch.device("cpu")


def _bundle(**source) -> ModelBundle:
    return ModelBundle(ModelSource(offline=True, **source), CPU, torch.float32)


@pytest.fixture(scope="module")
def tiny_bundle(tiny_model_source) -> ModelBundle:
    return ModelBundle(tiny_model_source, CPU, torch.float32)


def _link_copy(src, dst, skip=()):
    """A copy of a model folder whose weight files are symlinks (cheap), minus the relative paths in `skip`."""
    for path in sorted(src.rglob("*")):
        rel = path.relative_to(src)
        if path.is_dir() or str(rel) in skip:
            continue
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        if path.suffix == ".json":
            shutil.copy(path, dst / rel)
        else:
            (dst / rel).symlink_to(path)
    return dst


# --- parity: what the models see must be exactly the authors' inputs --------------------------------------------

@pytest.mark.parity
def test_empty_prompt_embeds_match_golden(parity_root):
    tiny = parity_root / "models-tiny"
    embeds = _bundle(sd=str(tiny / "sd15")).empty_prompt_embeds()
    golden = np.load(parity_root / "golden" / "a_stage1" / "text_embeds.npy")
    assert embeds.shape == (1, 77, golden.shape[1])
    # Same code and libraries, but bits only on the same CPU kernels (parity README, section 8): on another
    # x86 CPU the CLIP encoder's matmuls round differently, by 7e-7 here on values up to about 3.
    np.testing.assert_allclose(embeds[0].numpy(), golden, rtol=0, atol=1e-5)


@pytest.mark.parity
@pytest.mark.parametrize("models_dir", ["parity", "tiny"])
def test_dinov2_processor_matches_golden(parity_root, tiny_models_dir, models_dir):
    """The default processor (PIL backend without torchvision) gives the golden input, for the parity folder and
    for our tiny builder's copy of dinov2-base's processor config."""
    root = parity_root / "models-tiny" if models_dir == "parity" else tiny_models_dir
    _, processor = _bundle(dinov2=str(root / "dinov2")).dinov2
    image = Image.open(parity_root / "golden" / "inputs" / "content_0001.png").convert("RGB")
    pixels = processor(images=image, return_tensors="pt").pixel_values
    golden = np.load(parity_root / "golden" / "b_match" / "content" / "dinov2_pixel_values.npy")
    np.testing.assert_array_equal(pixels[0].numpy(), golden)


@pytest.mark.parity
def test_tiny_builder_reproduces_parity_weights(parity_root, tiny_models_dir):
    """Same seeds, same architecture: every weight equals the parity models' except the two calibrated layers."""
    from safetensors.torch import load_file

    calibrated = {"quant_conv.weight", "quant_conv.bias", "post_quant_conv.weight", "head.conv3.weight",
                  "head.conv3.bias"}
    for rel in ["sd15/unet/diffusion_pytorch_model.safetensors", "sd15/vae/diffusion_pytorch_model.safetensors",
                "sd15/text_encoder/model.safetensors", "dinov2/model.safetensors", "depth/model.safetensors"]:
        ours, theirs = load_file(tiny_models_dir / rel), load_file(parity_root / "models-tiny" / rel)
        assert ours.keys() == theirs.keys(), rel
        differing = {k for k in ours if not torch.equal(ours[k], theirs[k])}
        assert differing <= calibrated, rel


# --- the tiny fixture models -------------------------------------------------------------------------------------

def test_tiny_sd_folder_loads_frozen_with_sd15_structure(tiny_bundle):
    sd = tiny_bundle.sd
    assert count_self_attention(sd.unet) == 16
    for module in (sd.unet, sd.vae, sd.text_encoder):
        assert not module.training
        assert not any(p.requires_grad for p in module.parameters())
    ids = sd.tokenizer("", padding="max_length", max_length=77, truncation=True).input_ids
    assert ids == [49406] + [49407] * 76
    scheduler = sd.ddim_scheduler()
    scheduler.set_timesteps(5)
    assert scheduler.timesteps.tolist() == [801, 601, 401, 201, 1]
    assert scheduler.alphas_cumprod[0].item() == pytest.approx(0.99915, abs=1e-6)
    assert sd.ddim_scheduler() is not scheduler  # fresh each time: set_timesteps mutates it


@torch.no_grad()
def test_tiny_calibration_gives_sd15_like_ranges(tiny_bundle, tiny_models_dir):
    """Scaled latents have std 1 and depth sits around 2 on the calibration image; decoding is compensated."""
    pixels = torch.from_numpy(np.asarray(calibration_image(), dtype=np.float32) / 255).permute(2, 0, 1)[None] * 2 - 1
    vae = tiny_bundle.sd.vae
    latent = vae.encode(pixels).latent_dist.mean * vae.config.scaling_factor
    assert latent.std().item() == pytest.approx(1.0, abs=1e-3)
    model, processor = tiny_bundle.depth
    depth = model(**processor(images=calibration_image(), return_tensors="pt")).predicted_depth
    assert 1.5 < depth.mean().item() < 3.0 and depth.std().item() > 0.5
    assert (tiny_models_dir / "manifest.json").is_file()


def test_empty_prompt_embeds_shape_and_cached(tiny_bundle):
    embeds = tiny_bundle.empty_prompt_embeds()
    assert embeds.shape == (1, 77, tiny_bundle.sd.text_encoder.config.hidden_size)
    assert tiny_bundle.empty_prompt_embeds() is embeds


def test_dinov2_and_depth_load(tiny_bundle):
    dinov2, processor = tiny_bundle.dinov2
    assert type(dinov2).__name__ == "Dinov2Model" and type(processor).__name__.endswith("Pil")
    depth, depth_processor = tiny_bundle.depth
    assert type(depth).__name__ == "DepthAnythingForDepthEstimation" and type(depth_processor).__name__.endswith("Pil")
    assert tiny_bundle.dinov2[0] is dinov2


# --- every source kind through the real loader -------------------------------------------------------------------

def test_single_file_gives_the_folder_weights_and_sd15_ddim(tiny_models_dir, tiny_bundle):
    bundle = _bundle(sd=str(tiny_models_dir / "sd15.safetensors"), single_file_config=str(tiny_models_dir / "sd15"))
    single, folder = bundle.sd, tiny_bundle.sd
    for name in ("unet", "vae", "text_encoder"):
        ours, ref = getattr(single, name).state_dict(), getattr(folder, name).state_dict()
        assert ours.keys() == ref.keys()
        assert all(torch.equal(ours[k], ref[k]) for k in ref), name
    assert single.scheduler_config == SD15_DDIM_CONFIG
    assert not any(p.requires_grad for p in single.unet.parameters())
    torch.testing.assert_close(bundle.empty_prompt_embeds(), tiny_bundle.empty_prompt_embeds(), rtol=0, atol=0)


def test_hub_id_resolves_from_the_local_cache_offline(tiny_models_dir, tmp_path, monkeypatch):
    """A hub id goes through huggingface_hub's cache (here a hand-made one), never the network when offline."""
    import huggingface_hub.constants

    commit = "0" * 40
    repo = tmp_path / "models--someone--tiny-sd15"
    _link_copy(tiny_models_dir / "sd15", repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    events: list[StepEvent] = []
    bundle = ModelBundle(ModelSource(sd="someone/tiny-sd15", offline=True), CPU, torch.float32, events.append)
    assert count_self_attention(bundle.sd.unet) == 16
    assert bundle.model_id("sd") == "someone/tiny-sd15"
    assert all(e.stage == "download" for e in events)


def test_hub_id_missing_offline(tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(ModelMissing, match="nobody/no-such-model.*local Hugging Face cache") as info:
        _ = _bundle(sd="nobody/no-such-model").sd
    assert "download" in info.value.hint.lower()


def test_offline_switches(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    assert not models.is_offline(ModelSource())
    assert models.is_offline(ModelSource(offline=True))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert models.is_offline(ModelSource())


def test_pickled_checkpoint_refused_unless_allowed(tiny_models_dir, tmp_path):
    from safetensors.torch import load_file

    ckpt = tmp_path / "model.ckpt"
    torch.save({"state_dict": load_file(tiny_models_dir / "sd15.safetensors")}, ckpt)
    with pytest.raises(UnsafeCheckpoint, match="model.ckpt"):
        _ = _bundle(sd=str(ckpt)).sd
    allowed = _bundle(sd=str(ckpt), allow_pickle=True, single_file_config=str(tiny_models_dir / "sd15"))
    assert count_self_attention(allowed.sd.unet) == 16


def test_folder_with_only_pickled_weights_is_refused(tiny_models_dir, tmp_path):
    folder = _link_copy(tiny_models_dir / "sd15", tmp_path / "sd15",
                        skip={"unet/diffusion_pytorch_model.safetensors"})
    (folder / "unet" / "diffusion_pytorch_model.bin").write_bytes(b"not really")
    with pytest.raises(UnsafeCheckpoint, match="unet"):
        _ = _bundle(sd=str(folder)).sd


@pytest.mark.parametrize("removed, message", [
    ("unet/diffusion_pytorch_model.safetensors", "'unet' has no weights"),
    ("vae/config.json", "'vae' has no config.json"),
    ("tokenizer/vocab.json", "'tokenizer'"),
])
def test_missing_component_is_named(tiny_models_dir, tmp_path, removed, message):
    folder = _link_copy(tiny_models_dir / "sd15", tmp_path / "sd15", skip={removed})
    with pytest.raises(ModelMissing, match=message) as info:
        _ = _bundle(sd=str(folder)).sd
    assert str(folder) in str(info.value) and info.value.hint


def test_missing_folder(tmp_path):
    with pytest.raises(ModelMissing, match="does not exist"):
        _ = _bundle(sd=str(tmp_path / "nowhere")).sd


def test_single_file_missing_file_or_configs(tiny_models_dir, tmp_path):
    with pytest.raises(ModelMissing, match="does not exist"):
        _ = _bundle(sd=str(tmp_path / "gone.safetensors")).sd
    with pytest.raises(ModelMissing, match="sd15.safetensors"):
        _ = _bundle(sd=str(tiny_models_dir / "sd15.safetensors"), single_file_config=str(tmp_path / "none")).sd
    not_sd = tmp_path / "not_sd.safetensors"
    from safetensors.torch import save_file
    save_file({"weight": torch.zeros(2)}, not_sd)
    with pytest.raises(ModelMissing, match="Stable Diffusion 1.5"):
        _ = _bundle(sd=str(not_sd), single_file_config=str(tiny_models_dir / "sd15")).sd


def test_transformers_folder_missing_parts(tiny_models_dir, tmp_path):
    folder = _link_copy(tiny_models_dir / "dinov2", tmp_path / "dinov2", skip={"preprocessor_config.json"})
    with pytest.raises(ModelMissing, match="preprocessor_config.json"):
        _ = _bundle(dinov2=str(folder)).dinov2
    with pytest.raises(ModelMissing, match="depth model"):
        _ = _bundle(depth=str(tmp_path / "no-depth")).depth


# --- lazy, once; ids; source kinds; progress ---------------------------------------------------------------------

def test_loads_lazily_and_once(tiny_model_source, monkeypatch):
    calls = []
    real = models.load_sd_folder
    monkeypatch.setattr(models, "load_sd_folder", lambda *a, **k: calls.append(1) or real(*a, **k))
    bundle = ModelBundle(tiny_model_source, CPU, torch.float32)
    assert calls == []
    first = bundle.sd
    assert bundle.sd is first and calls == [1]
    assert bundle.empty_prompt_embeds() is bundle.empty_prompt_embeds() and calls == [1]


def test_constructing_a_bundle_touches_nothing(tmp_path):
    bundle = _bundle(sd=str(tmp_path / "missing"), dinov2=str(tmp_path / "x"), depth=str(tmp_path / "y"))
    assert bundle.model_id("sd").endswith("missing")


def test_model_id_is_stable_and_follows_content(tiny_models_dir, tmp_path):
    folder = _link_copy(tiny_models_dir / "sd15", tmp_path / "sd15")
    first = _bundle(sd=str(folder)).model_id("sd")
    assert first.startswith(str(folder.resolve()) + "#")
    assert _bundle(sd=str(folder)).model_id("sd") == first
    config = folder / "unet" / "config.json"
    config.write_text(config.read_text().replace('"norm_eps": 1e-05', '"norm_eps": 1e-06'))
    assert _bundle(sd=str(folder)).model_id("sd") != first
    assert _bundle().model_id("dinov2") == "facebook/dinov2-base"
    single = _bundle(sd=str(tiny_models_dir / "sd15.safetensors")).model_id("sd")
    assert "+config:stable-diffusion-v1-5/stable-diffusion-v1-5" in single
    with pytest.raises(ValueError):
        _bundle().model_id("vae")


@pytest.mark.parametrize("source, kind", [
    ("stable-diffusion-v1-5/stable-diffusion-v1-5", "hub"), ("model.safetensors", "single_file"),
    ("/models/dreamy.ckpt", "single_file"), ("./my/folder", "folder"), ("/abs/folder", "folder"),
    ("~/models/sd", "folder"),
])
def test_source_kind(source, kind):
    assert source_kind(source) == kind


def test_download_progress_becomes_events(capsys):
    events: list[StepEvent] = []
    bar_class = models._download_progress(events.append, "org/model")
    byte_bar = bar_class(total=10, unit="B", desc="Downloading bytes")
    byte_bar.update(4)
    byte_bar.update(6)
    byte_bar.close()
    files_bar = bar_class(total=3, desc="Fetching 3 files")
    files_bar.update(3)
    files_bar.close()
    assert [(e.stage, e.step, e.total) for e in events] == [("download", 4, 10), ("download", 10, 10)]
    assert "org/model" in events[0].message
    assert capsys.readouterr().err == ""


def test_hub_scheduler_config_of_another_class_gives_sd15_ddim(tmp_path):
    """SD1.5's hub folder ships a PNDM config: DDIM takes its shared values, SPEC's DDIM defaults fill the rest."""
    (tmp_path / "scheduler").mkdir()
    (tmp_path / "scheduler" / "scheduler_config.json").write_text(
        '{"_class_name": "PNDMScheduler", "beta_end": 0.012, "beta_schedule": "scaled_linear", "beta_start": 0.00085,'
        ' "clip_sample": false, "num_train_timesteps": 1000, "set_alpha_to_one": false, "skip_prk_steps": true,'
        ' "steps_offset": 1, "trained_betas": null}')
    assert models._scheduler_config(tmp_path) == SD15_DDIM_CONFIG
    assert models._scheduler_config(None) == SD15_DDIM_CONFIG


@pytest.mark.parametrize("which", ["dinov2", "depth"])
def test_image_processor_does_not_follow_torchvision(tiny_model_source, monkeypatch, which):
    """transformers picks its torchvision backend whenever torchvision is importable; the engine must not, or the
    models' inputs (so matches and depth splits) would change with what else is installed. torchvision is never
    installed here, so its availability check and its backend's class are simulated."""
    from transformers.models.auto import image_processing_auto

    without = type(getattr(ModelBundle(tiny_model_source, CPU, torch.float32), which)[1])
    real_load = image_processing_auto._load_class_with_fallback

    def load_with_torchvision(mapping, backend):
        processor_class = real_load(mapping, "pil" if backend == "torchvision" else backend)
        if backend == "torchvision" and "torchvision" in mapping:
            return type(processor_class.__name__ + "Torchvision", (processor_class,), {})
        return processor_class

    monkeypatch.setattr(image_processing_auto, "is_torchvision_available", lambda: True)
    monkeypatch.setattr(image_processing_auto, "_load_class_with_fallback", load_with_torchvision)
    with_torchvision = type(getattr(ModelBundle(tiny_model_source, CPU, torch.float32), which)[1])
    assert with_torchvision is without


# --- damaged and wrong folders: a ModelMissing naming the file, before any work ----------------------------------

@pytest.mark.parametrize("text", ["{not json", "[1, 2, 3]"])
def test_damaged_scheduler_config_names_the_file(tmp_path, text):
    (tmp_path / "scheduler").mkdir()
    (tmp_path / "scheduler" / "scheduler_config.json").write_text(text)
    with pytest.raises(ModelMissing, match="scheduler_config.json") as info:
        models._scheduler_config(tmp_path)
    assert info.value.hint


def test_weights_missing_a_tensor_name_the_folder(tiny_models_dir, tmp_path):
    from safetensors.torch import load_file, save_file

    weights = "vae/diffusion_pytorch_model.safetensors"
    folder = _link_copy(tiny_models_dir / "sd15", tmp_path / "sd15", skip={weights})
    tensors = load_file(tiny_models_dir / "sd15" / weights)
    del tensors[sorted(tensors)[0]]
    save_file(tensors, folder / weights)
    with pytest.raises(ModelMissing, match="lack 1 tensor") as info:
        _ = _bundle(sd=str(folder)).sd
    assert str(folder / "vae") in str(info.value)


def test_weight_of_the_wrong_shape_names_the_folder(tiny_models_dir, tmp_path):
    from safetensors.torch import load_file, save_file

    folder = _link_copy(tiny_models_dir / "depth", tmp_path / "depth", skip={"model.safetensors"})
    tensors = load_file(tiny_models_dir / "depth" / "model.safetensors")
    name = next(k for k in sorted(tensors) if tensors[k].ndim == 2)
    tensors[name] = torch.zeros(tensors[name].shape[0] + 1, tensors[name].shape[1])
    save_file(tensors, folder / "model.safetensors")
    with pytest.raises(ModelMissing, match="wrong shape") as info:
        _ = _bundle(depth=str(folder)).depth
    assert str(folder) in str(info.value) and "\n" not in str(info.value)


def test_a_folder_that_is_no_model_is_refused_without_walking_it(tmp_path, monkeypatch):
    """`--model /` or `/usr`: the fingerprint looks only at the files a model uses, the load names the problem."""
    (tmp_path / "photos" / "2024").mkdir(parents=True)
    notes = tmp_path / "photos" / "2024" / "notes.json"
    notes.write_text("{}")
    first = _bundle(sd=str(tmp_path)).model_id("sd")
    notes.write_text('{"changed": true}')
    assert _bundle(sd=str(tmp_path)).model_id("sd") == first  # files no model reads are not looked at
    with pytest.raises(ModelMissing, match="not a diffusers Stable Diffusion folder"):
        _ = _bundle(sd=str(tmp_path)).sd


def test_model_messages_name_the_command_line_option(tmp_path):
    with pytest.raises(ModelMissing) as info:
        _ = _bundle(sd=str(tmp_path / "nowhere")).sd
    assert "--model" in info.value.hint
    with pytest.raises(ModelMissing) as info:
        models._hub_snapshot("org/none", ["config.json"], True, None, "DINOv2 model")
    assert "Error" not in str(info.value) and "--model" in info.value.hint
