"""Loading the three models the method needs: Stable Diffusion 1.5, DINOv2 and Depth Anything.

Every source is first resolved to a local folder or file (a hub id through huggingface_hub's cache, downloading
only the files the engine reads), so the loading code below is the same for every kind of source and is exercised
by the tests with tiny on-disk models; only `_hub_snapshot` can touch the network.

SD sources: a hub id, a local diffusers folder, or a single-file checkpoint (`.safetensors`; pickled `.ckpt`,
`.pt`, `.pth`, `.bin` files only with `ModelSource.allow_pickle`, since unpickling runs code). A single file
carries weights only: its configs and tokenizer come from `ModelSource.single_file_config` and its scheduler is
SD1.5's DDIM (SPEC "Models"). No safety checker is ever loaded.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal

import torch

from .errors import ModelMissing, UnsafeCheckpoint
from .memory import is_out_of_memory
from .params import ModelSource
from .types import EventCallback, StepEvent

# SPEC "Models": the DDIM configuration of SD1.5 (used when a source has no scheduler config of its own).
SD15_DDIM_CONFIG: dict[str, Any] = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "trained_betas": None,
    "clip_sample": False,
    "set_alpha_to_one": False,
    "steps_offset": 1,
    "prediction_type": "epsilon",
    "timestep_spacing": "leading",
}

SAFE_SUFFIXES = (".safetensors",)
PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")
SD_MODEL_COMPONENTS = ("unet", "vae", "text_encoder")

# Only what the engine reads: fp32 safetensors weights, configs, tokenizer (never fp16 duplicates, .bin or ONNX).
SD_HUB_FILES = ["model_index.json", "scheduler/scheduler_config.json", "tokenizer/*",
                "unet/config.json", "unet/diffusion_pytorch_model.safetensors",
                "vae/config.json", "vae/diffusion_pytorch_model.safetensors",
                "text_encoder/config.json", "text_encoder/model.safetensors"]
SD_CONFIG_HUB_FILES = ["model_index.json", "scheduler/scheduler_config.json", "tokenizer/*", "*/config.json"]
TRANSFORMERS_HUB_FILES = ["config.json", "preprocessor_config.json", "model.safetensors"]
IMAGE_PROCESSOR_BACKEND = "pil"  # never "whatever is installed": see load_transformers_folder

# Where people set a model: in the window and on the command line (both read the same messages).
MODEL_SETTING = "the model setting (Settings in the window, --model / --dinov2 / --depth-model on the command line)"
# The files of a model folder that the loader reads, so the only ones its fingerprint looks at: a folder that is
# not a model (say "/" or "/usr") is never walked.
SD_FOLDER_FILES = ["model_index.json", "scheduler/*", "tokenizer/*", *(f"{c}/*" for c in SD_MODEL_COMPONENTS)]
TRANSFORMERS_FOLDER_FILES = ["*"]

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")

SourceKind = Literal["hub", "folder", "single_file"]


@dataclass
class SDModels:
    """SD1.5's components in eval mode with gradients off (stage 3 differentiates w.r.t. the latent only)."""

    unet: Any
    vae: Any
    text_encoder: Any
    tokenizer: Any
    scheduler_config: dict
    model_id: str

    def ddim_scheduler(self):
        """A fresh DDIMScheduler (it has state: `set_timesteps`), from this model's scheduler config."""
        from diffusers import DDIMScheduler

        return DDIMScheduler.from_config(self.scheduler_config)


def source_kind(source: str) -> SourceKind:
    """What a source string names. An existing path wins over a hub id of the same spelling."""
    path = Path(source).expanduser()
    if path.is_dir():
        return "folder"
    if path.suffix.lower() in SAFE_SUFFIXES + PICKLE_SUFFIXES:
        return "single_file"
    if _HUB_ID.match(source) and not path.is_absolute() and not source.startswith((".", "~")):
        return "hub"
    return "folder"


def is_offline(source: ModelSource) -> bool:
    """Offline when the source says so or huggingface_hub's own switch is set."""
    return source.offline or os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _download_progress(on_event: EventCallback | None, label: str):
    """A tqdm class for huggingface_hub that shows nothing itself and forwards its byte counters as "download"
    StepEvents (step = bytes so far, total = bytes expected); its file-count bar is not forwarded."""
    from tqdm.auto import tqdm

    class EventTqdm(tqdm):
        def __init__(self, *args, **kwargs):
            kwargs.pop("name", None)
            kwargs.update(file=io.StringIO(), disable=False)
            super().__init__(*args, **kwargs)

        def update(self, n=1):
            shown = super().update(n)
            if on_event is not None and self.unit == "B":
                on_event(StepEvent("download", int(self.n), int(self.total or 0),
                                   message=f"Downloading {label} ({self.desc or 'files'})"))
            return shown

    return EventTqdm


def _hub_snapshot(repo_id: str, patterns: list[str], offline: bool, on_event: EventCallback | None,
                  what: str) -> Path:
    """The local snapshot folder of `repo_id` (downloading the `patterns` files unless offline)."""
    from huggingface_hub import snapshot_download

    if on_event is not None and not offline:
        on_event(StepEvent("download", 0, 0, message=f"Checking {repo_id} ({what})"))
    try:
        return Path(snapshot_download(repo_id, allow_patterns=patterns, local_files_only=offline,
                                      tqdm_class=_download_progress(on_event, repo_id)))
    except Exception as exc:  # huggingface_hub raises many kinds (HTTP, offline, not cached): all mean "not here"
        where = "in the local Hugging Face cache" if offline else "on the Hugging Face hub or in the local cache"
        raise ModelMissing(
            f"{what} '{repo_id}' was not found {where}",
            hint=(f"Connect to the internet once so it can be downloaded, or point {MODEL_SETTING} at a local "
                  "folder or file." if offline else
                  f"Check the id and your connection, or point {MODEL_SETTING} at a local folder or file."),
        ) from exc


def _weights_file(folder: Path, component: str, allow_pickle: bool, what: str) -> dict:
    """Checks a component folder has a config and weights; returns the from_pretrained keyword for its variant."""
    if not (folder / "config.json").is_file():
        raise ModelMissing(f"{what}: '{component}' has no config.json in {folder}",
                           hint="The folder must be a complete diffusers/transformers model folder.")
    safe = sorted(p.name for p in folder.glob("*.safetensors"))
    if safe:
        fp16_only = all(".fp16." in name for name in safe)
        return {"variant": "fp16"} if fp16_only else {}
    if any(folder.glob("*.bin")):
        if not allow_pickle:
            raise UnsafeCheckpoint(f"{what}: '{component}' in {folder} has only pickled .bin weights")
        return {}
    raise ModelMissing(f"{what}: '{component}' has no weights (.safetensors) in {folder}",
                       hint="Copy the model folder again completely, or download it again.")


def _check_tokenizer(folder: Path, what: str) -> None:
    if not ((folder / "tokenizer.json").is_file() or
            ((folder / "vocab.json").is_file() and (folder / "merges.txt").is_file())):
        raise ModelMissing(f"{what}: 'tokenizer' (vocab.json + merges.txt or tokenizer.json) is missing in {folder}",
                           hint="The folder must be a complete diffusers Stable Diffusion folder.")


def _frozen(module: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    module.requires_grad_(False)
    return module.to(device).eval()


def _scheduler_config(folder: Path | None) -> dict:
    """The folder's scheduler config where it has one (any class: DDIM reads the shared keys), else SD1.5's DDIM.
    A damaged one (not JSON, not an object) is a ModelMissing that names the file."""
    path = folder / "scheduler" / "scheduler_config.json" if folder is not None else None
    if path is None or not path.is_file():
        return dict(SD15_DDIM_CONFIG)
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelMissing(f"The scheduler config {path} cannot be read ({exc})", hint=DAMAGED_FOLDER_HINT) from exc
    if not isinstance(loaded, dict):
        raise ModelMissing(f"The scheduler config {path} is damaged: it holds a {type(loaded).__name__}, not the "
                           "settings object", hint=DAMAGED_FOLDER_HINT)
    config = {k: v for k, v in loaded.items() if not k.startswith("_")}
    return {**SD15_DDIM_CONFIG, **{k: v for k, v in config.items() if k in SD15_DDIM_CONFIG}}


def _check_config_folder(folder: Path, what: str) -> None:
    """A single file's config source must hold each component's config.json and the tokenizer."""
    if not folder.is_dir():
        raise ModelMissing(f"{what} does not exist", hint="Point the single-file config setting (--model-config) at a diffusers "
                                                          "Stable Diffusion 1.5 folder or hub id.")
    for component in SD_MODEL_COMPONENTS:
        if not (folder / component / "config.json").is_file():
            raise ModelMissing(f"{what}: '{component}' has no config.json in {folder / component}",
                               hint="Point the single-file config setting (--model-config) at a complete "
                                    "diffusers SD1.5 folder.")
    _check_tokenizer(folder / "tokenizer", what)


def _damaged_file_errors() -> tuple[type[BaseException], ...]:
    """What the libraries raise on truncated, corrupt or mistyped weight and config files."""
    from safetensors import SafetensorError

    return (OSError, ValueError, TypeError, KeyError, SafetensorError)


DAMAGED_FILE_ERRORS = _damaged_file_errors()
DAMAGED_FOLDER_HINT = "The folder is incomplete or damaged: copy or download it again."


def check_sd_folder(folder: Path, allow_pickle: bool, what: str) -> dict[str, dict]:
    """Checks (from the file listing alone) that a diffusers folder has every component the loader reads;
    returns each component's from_pretrained keywords. A folder with none of them is not a model at all."""
    if not folder.is_dir():
        raise ModelMissing(f"{what} does not exist", hint="Pick an existing diffusers folder, a .safetensors "
                                                          f"file or a hub id in {MODEL_SETTING}.")
    parts = ("model_index.json", "tokenizer", *SD_MODEL_COMPONENTS)
    if not any((folder / part).exists() for part in parts):
        raise ModelMissing(f"{what}: {folder} is not a diffusers Stable Diffusion folder (it has none of "
                           f"{', '.join(parts)})", hint=f"Pick the model's own folder in {MODEL_SETTING}.")
    kwargs = {c: _weights_file(folder / c, c, allow_pickle, what) for c in SD_MODEL_COMPONENTS}
    _check_tokenizer(folder / "tokenizer", what)
    return kwargs


def load_sd_folder(folder: Path, device: torch.device, dtype: torch.dtype, allow_pickle: bool,
                   model_id: str) -> SDModels:
    """SD1.5 from a diffusers folder, component by component (no pipeline, so no safety checker)."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    what = f"Stable Diffusion folder {folder}"
    kwargs = check_sd_folder(folder, allow_pickle, what)
    safe = None if allow_pickle else True
    try:
        unet = UNet2DConditionModel.from_pretrained(folder, subfolder="unet", torch_dtype=dtype,
                                                    use_safetensors=safe, **kwargs["unet"])
        vae = AutoencoderKL.from_pretrained(folder, subfolder="vae", torch_dtype=dtype, use_safetensors=safe,
                                            **kwargs["vae"])
        text_encoder = CLIPTextModel.from_pretrained(folder, subfolder="text_encoder", dtype=dtype,
                                                     use_safetensors=safe, **kwargs["text_encoder"])
        tokenizer = CLIPTokenizer.from_pretrained(folder, subfolder="tokenizer")
    except torch.OutOfMemoryError:
        raise
    except (*DAMAGED_FILE_ERRORS, RuntimeError) as exc:
        if is_out_of_memory(exc):
            raise
        raise ModelMissing(f"{what} could not be loaded: {_first_line(exc)}", hint=DAMAGED_FOLDER_HINT) from exc
    for component, module in (("unet", unet), ("vae", vae), ("text_encoder", text_encoder)):
        _check_complete(module, folder / component, what)
    return _sd_models(unet, vae, text_encoder, tokenizer, _scheduler_config(folder), model_id, device)


def _check_complete(module: torch.nn.Module, folder: Path, what: str) -> None:
    """A weight file missing tensors loads "successfully" with those left on the meta device (no data), which
    fails later with "Cannot copy out of meta tensor": name the file and the first missing tensor instead."""
    missing = [name for name, tensor in (*module.named_parameters(), *module.named_buffers()) if tensor.is_meta]
    if missing:
        raise ModelMissing(f"{what}: the weights in {folder} lack {len(missing)} tensor(s), e.g. '{missing[0]}'",
                           hint=DAMAGED_FOLDER_HINT)


def _first_line(exc: BaseException) -> str:
    """A library's load error in one readable line (transformers' size-mismatch texts run over dozens of lines
    and point at a report printed elsewhere)."""
    text = str(exc).strip()
    if "mismatch" in text.lower():
        return "a weight has the wrong shape (the file is damaged, or belongs to another model)"
    return text.splitlines()[0] if text else type(exc).__name__


def check_single_file(path: Path, allow_pickle: bool) -> None:
    """Refuse pickled checkpoints unless allowed (unpickling runs code), and missing files."""
    if path.suffix.lower() in PICKLE_SUFFIXES and not allow_pickle:
        raise UnsafeCheckpoint(f"{path.name} is a pickled checkpoint ({path.suffix}), which can run code when "
                               "loaded")
    if not path.is_file():
        raise ModelMissing(f"Stable Diffusion checkpoint {path} does not exist",
                           hint="Pick an existing .safetensors file, a diffusers folder or a hub id.")


def load_sd_single_file(path: Path, config_folder: Path, device: torch.device, dtype: torch.dtype,
                        model_id: str) -> SDModels:
    """SD1.5 from one original-layout checkpoint; configs and tokenizer from `config_folder`, scheduler SD1.5 DDIM.

    diffusers converts the LDM key layout; `config=` a local folder keeps it from going to the hub for configs.
    """
    from diffusers import DDIMScheduler, StableDiffusionPipeline
    from diffusers.loaders.single_file_utils import SingleFileComponentError

    _check_config_folder(config_folder, f"Configs for {path.name} ({config_folder})")
    try:
        pipe = StableDiffusionPipeline.from_single_file(
            str(path), config=str(config_folder), local_files_only=True, torch_dtype=dtype,
            scheduler=DDIMScheduler.from_config(SD15_DDIM_CONFIG), safety_checker=None, feature_extractor=None,
            image_encoder=None, requires_safety_checker=False)
    except torch.OutOfMemoryError:
        raise
    except (*DAMAGED_FILE_ERRORS, RuntimeError, SingleFileComponentError) as exc:
        raise ModelMissing(f"{path.name} could not be read as a Stable Diffusion 1.5 checkpoint: {exc}",
                           hint="Use an SD1.5 checkpoint (SDXL, SD2 and others are not supported), or its "
                                "diffusers folder.") from exc
    return _sd_models(pipe.unet, pipe.vae, pipe.text_encoder, pipe.tokenizer, dict(SD15_DDIM_CONFIG), model_id,
                      device)


def _sd_models(unet, vae, text_encoder, tokenizer, scheduler_config: dict, model_id: str,
               device: torch.device) -> SDModels:
    return SDModels(_frozen(unet, device), _frozen(vae, device), _frozen(text_encoder, device), tokenizer,
                    scheduler_config, model_id)


def check_transformers_folder(folder: Path, what: str) -> None:
    """Checks (from the file listing alone) that a transformers folder has config, weights and preprocessor."""
    _weights_file(folder, what, False, f"{what} folder")
    if not (folder / "preprocessor_config.json").is_file():
        raise ModelMissing(f"{what}: preprocessor_config.json is missing in {folder}",
                           hint="The folder must be a complete transformers model folder.")


def load_transformers_folder(folder: Path, auto_model: Callable, device: torch.device, what: str):
    """(model, image processor) from a transformers folder; fp32 (run once per image, thresholds act on it).

    The image processor is always transformers' PIL backend, the one the parity goldens were made with: left to
    itself transformers picks its torchvision backend whenever torchvision is importable, which would change
    DINOv2's and the depth model's inputs (so the matches and the depth split) with what else is installed.
    """
    from transformers import AutoImageProcessor

    check_transformers_folder(folder, what)
    try:
        model = auto_model.from_pretrained(folder, dtype=torch.float32, use_safetensors=True)
        processor = AutoImageProcessor.from_pretrained(folder, backend=IMAGE_PROCESSOR_BACKEND)
    except torch.OutOfMemoryError:
        raise
    except (*DAMAGED_FILE_ERRORS, RuntimeError) as exc:  # RuntimeError: a weight of the wrong shape
        if is_out_of_memory(exc):
            raise
        raise ModelMissing(f"{what} in {folder} could not be loaded: {_first_line(exc)}",
                           hint=DAMAGED_FOLDER_HINT) from exc
    _check_complete(model, folder, what)
    return _frozen(model, device), processor


def random_weights(source: ModelSource) -> bool:
    """True for the random-weight test models (tests/tiny_models.py writes a manifest.json beside them saying so);
    everything they make must be labelled as such."""
    sd = Path(source.sd).expanduser()
    for folder in (sd, sd.parent):
        manifest = folder / "manifest.json"
        if manifest.is_file():
            try:
                data = json.loads(manifest.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                return False
            # the parity set's manifest has a seed instead
            return isinstance(data, dict) and (bool(data.get("random_weights")) or "seed" in data)
    return False


def fingerprint(path: Path, patterns: list[str]) -> str:
    """A cheap content fingerprint of the files a model uses (`patterns`, relative to a folder; a file stands for
    itself): configs by content, weight files by size and modification time. Nothing else is visited."""
    digest = hashlib.sha256()
    files = sorted({p for pattern in patterns for p in path.glob(pattern) if p.is_file()}) if path.is_dir() \
        else [path]
    for file in files:
        stat = file.stat()
        digest.update(str(file.relative_to(path) if path.is_dir() else file.name).encode())
        if file.suffix == ".json" and stat.st_size < 1_000_000:
            digest.update(file.read_bytes())
        else:
            digest.update(f"{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


def _quiet_library_progress() -> None:
    """Silence the libraries' own "Loading weights" bars: progress reaches people through our events, and a
    windowed build has no stderr to draw them on."""
    import diffusers.utils.logging
    import transformers.utils.logging

    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.disable_progress_bar()


class ModelBundle:
    """The models of one `ModelSource`, each loaded on first use and then kept (thread-safe, loads once)."""

    def __init__(self, source: ModelSource, device: torch.device, dtype: torch.dtype,
                 on_event: EventCallback | None = None):
        self.source = source
        self.device = torch.device(device)
        self.dtype = dtype
        self.on_event = on_event
        self._lock = threading.RLock()
        self._loaded: dict[str, Any] = {}

    def _once(self, name: str, load: Callable[[], Any]) -> Any:
        with self._lock:
            if name not in self._loaded:
                _quiet_library_progress()
                self._loaded[name] = load()
            return self._loaded[name]

    def _source_string(self, which: str) -> str:
        if which not in ("sd", "dinov2", "depth"):
            raise ValueError(f"unknown model '{which}' (sd, dinov2 or depth)")
        return getattr(self.source, which)

    def _local(self, which: str, hub_files: list[str], what: str, cache_only: bool = False) -> Path:
        """The source of `which` as a local path (hub ids resolved through the cache; `cache_only`: never the
        network, whatever the source's offline setting)."""
        return self._local_path(self._source_string(which), hub_files, what, cache_only)

    def _local_path(self, source: str, hub_files: list[str], what: str, cache_only: bool = False) -> Path:
        if source_kind(source) == "hub":
            offline = cache_only or is_offline(self.source)
            return _hub_snapshot(source, hub_files, offline, None if cache_only else self.on_event, what)
        path = Path(source).expanduser()
        if not path.exists():
            raise ModelMissing(f"{what} not found: {path} does not exist",
                               hint=f"Pick an existing folder or file, or a hub id, in {MODEL_SETTING}.")
        return path

    def _path_id(self, source: str, patterns: list[str]) -> str:
        if source_kind(source) == "hub":
            return source
        path = Path(source).expanduser().resolve()
        return f"{path}#{fingerprint(path, patterns)}" if path.exists() else str(path)

    def model_id(self, which: str) -> str:
        """A stable id for cache keys: the hub id, or the resolved path plus a content fingerprint
        (a single file's id includes its config source, which supplies the tokenizer)."""
        source = self._source_string(which)
        model_id = self._path_id(source, SD_FOLDER_FILES if which == "sd" else TRANSFORMERS_FOLDER_FILES)
        if which == "sd" and source_kind(source) == "single_file":
            model_id += f"+config:{self._path_id(self.source.single_file_config, SD_FOLDER_FILES)}"
        return model_id

    def available(self, which: str) -> bool:
        """Whether model `which` ("sd", "dinov2", "depth") is here to load: a folder or file with every file the
        loader reads, or a hub id whose files are in the Hugging Face cache. Reads file listings only: never
        downloads, never loads weights, so the app can choose what to offer (e.g. the draft's regions) at once."""
        try:
            if which == "sd" and source_kind(self.source.sd) == "single_file":
                path = Path(self.source.sd).expanduser()
                check_single_file(path, self.source.allow_pickle)
                what = f"Configs and tokenizer for {path.name}"
                _check_config_folder(self._local_path(self.source.single_file_config, SD_CONFIG_HUB_FILES, what,
                                                      cache_only=True), what)
            elif which == "sd":
                check_sd_folder(self._local("sd", SD_HUB_FILES, "Stable Diffusion model", cache_only=True),
                                self.source.allow_pickle, "Stable Diffusion model")
            else:
                what = f"{which} model"
                check_transformers_folder(self._local(which, TRANSFORMERS_HUB_FILES, what, cache_only=True), what)
        except (ModelMissing, UnsafeCheckpoint):
            return False
        return True

    @property
    def sd(self) -> SDModels:
        return self._once("sd", self._load_sd)

    def _load_sd(self) -> SDModels:
        if source_kind(self.source.sd) == "single_file":
            path = Path(self.source.sd).expanduser()
            check_single_file(path, self.source.allow_pickle)
            config = self._local_path(self.source.single_file_config, SD_CONFIG_HUB_FILES,
                                      f"Configs and tokenizer for {path.name}")
            return load_sd_single_file(path, config, self.device, self.dtype, self.model_id("sd"))
        folder = self._local("sd", SD_HUB_FILES, "Stable Diffusion model")
        return load_sd_folder(folder, self.device, self.dtype, self.source.allow_pickle, self.model_id("sd"))

    @property
    def dinov2(self) -> tuple[Any, Any]:
        """(Dinov2Model, its image processor)."""
        from transformers import AutoModel

        return self._once("dinov2", lambda: load_transformers_folder(
            self._local("dinov2", TRANSFORMERS_HUB_FILES, "DINOv2 model"), AutoModel, self.device, "DINOv2 model"))

    @property
    def depth(self) -> tuple[Any, Any]:
        """(Depth Anything model, its image processor); the raw float prediction is relative inverse depth."""
        from transformers import AutoModelForDepthEstimation

        return self._once("depth", lambda: load_transformers_folder(
            self._local("depth", TRANSFORMERS_HUB_FILES, "depth model"), AutoModelForDepthEstimation,
            self.device, "depth model"))

    def empty_prompt_embeds(self) -> torch.Tensor:
        """(1, 77, C) CLIP last hidden state of the empty prompt padded to max length (SPEC: used everywhere)."""
        def encode() -> torch.Tensor:
            sd = self.sd
            ids = sd.tokenizer("", padding="max_length", max_length=sd.tokenizer.model_max_length,
                               truncation=True, return_tensors="pt").input_ids
            with torch.no_grad():
                return sd.text_encoder(ids.to(self.device))[0]

        return self._once("empty_prompt_embeds", encode)
