"""Every number of the method as a named, frozen parameter, with the defaults of ../shared/SPEC.md.

Where the authors' reference code has a quirk, the default reproduces it and a cleaner variant is a
documented option. `settings_key()` gives a stable dict for cache keys.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

DEFAULT_SD_SOURCE = "stable-diffusion-v1-5/stable-diffusion-v1-5"
DEFAULT_DINOV2_SOURCE = "facebook/dinov2-base"
DEPTH_SOURCES = {
    "large": "depth-anything/Depth-Anything-V2-Large-hf",
    "small": "depth-anything/Depth-Anything-V2-Small-hf",
}
LCM_LORA_SOURCE = "latent-consistency/lcm-lora-sdv1-5"
HYPER_SD_SOURCE = "ByteDance/Hyper-SD"
HYPER_SD_WEIGHT_NAME = "Hyper-SD15-4steps-lora.safetensors"
VAE_SCALING_FACTOR = 0.18215
STAGE1_MAX_BATCH = 4  # images per batched DDIM-inversion call (memory bound: activations grow with the batch)
LATENT_FACTOR = 8  # pixels per latent cell (SD1.5's VAE downsamples by 8)

SizePolicy = Literal["square", "aspect"]
MAX_SIDE_RANGE = (512, 1024)  # the working size's long side a user may choose (aspect policy)

# Region edits (engine/stage1/edits.py): a label PNG holds one grey value per region, 0 = keep the automatic map,
# so a region id is at most 255; the window's brush covers 1..64 cells across, 3 by default.
EDIT_MAX_REGION_ID = 255
EDIT_COLOUR_REGION_BASE = 127  # a colour mask's n-th colour becomes region BASE + n, clear of the automatic ids
BRUSH_MIN_CELLS = 1
BRUSH_MAX_CELLS = 64
BRUSH_DEFAULT_CELLS = 3


@dataclass(frozen=True)
class ModelSource:
    """Where the models come from. `sd` is a hub id, a local diffusers folder or a single-file checkpoint."""

    sd: str = DEFAULT_SD_SOURCE
    dinov2: str = DEFAULT_DINOV2_SOURCE
    depth: str = DEPTH_SOURCES["large"]
    offline: bool = False  # never touch the network; only local files and the HF cache
    allow_pickle: bool = False  # .ckpt/.pt checkpoints run arbitrary code when loaded: opt-in only
    # A single-file checkpoint holds weights only: configs and tokenizer come from this hub id or diffusers folder.
    single_file_config: str = DEFAULT_SD_SOURCE


@dataclass(frozen=True)
class Stage1Params:
    """Stage 1: semantic region segmentation (SPEC "Preprocessing" and "Stage 1")."""

    # The working size (the latent branch's bicubic resize), see `working_size`. "square": image_size x image_size,
    # aspect not kept (the authors'); "aspect": the photo's aspect ratio at about image_size^2 pixels of area, each
    # side a multiple of size_multiple (the UNet's down/up path stays exact), the long side at most max_side.
    size_policy: SizePolicy = "aspect"
    image_size: int = 512
    max_side: int = 768
    size_multiple: int = 64
    inversion_steps: int = 15  # DDIM inversion steps, t_i = 1 + stride * i
    inversion_stride: int = 66
    feature_block: int = 2  # capture the output of unet.up_blocks[feature_block] (after its upsampler)
    time_weight_sharpness: float = 5.0  # w_i = 1 / (1 + exp(sharpness * (i / steps - centre)))
    time_weight_centre: float = 0.7
    seed: int = 42  # PCA and k-means seed
    pca_components: int = 60
    pca_method: Literal["lowrank", "exact"] = "lowrank"  # "lowrank" = the reference's torch.pca_lowrank call
    k_min: int = 2
    k_max: int = 10
    kmeans_restarts: int = 10
    kmeans_max_iters: int = 64
    kmeans_tol: float = 1e-4
    silhouette_sample_size: int = 5000  # score a random subset above this many pixels (64x64 = 4096: all)
    merge_threshold: float = 0.85  # latent-mean distance under which clusters merge (step 6)
    merge_rule: Literal["reference", "union_find"] = "reference"  # "reference": attach to highest i < j
    use_depth: bool = True
    depth_split_threshold: float = 0.75  # 5-95 % depth span that triggers a split (step 7)
    depth_split_min_pixels: int = 20
    depth_split_low_quantile: float = 0.05
    depth_split_high_quantile: float = 0.95
    depth_norm_eps: float = 1e-6
    remerge_latent_threshold: float = 0.35  # step 8, both strict
    remerge_depth_threshold: float = 0.3
    cleanup_min_size: int = 20  # 4-connected pieces under this many cells are absorbed (step 10)


@dataclass(frozen=True)
class MatchParams:
    """Stage 2: clustered region matching."""

    stat_weight: float = 0.25
    sem_weight: float = 1.0
    pos_weight: float = 0.125
    seed: int = 42  # torch.manual_seed before building the untrained S_stat transformer
    stat_layers: int = 8
    stat_heads: int = 4
    stat_mlp_ratio: int = 4
    token_keep_threshold: int = 10  # keep a DINOv2 token when its 32x32 block holds more region pixels
    # "center_crop": the reference's (DINOv2's processor crops the middle square while the regions cover the whole
    # picture); "aligned": the working-size picture, whole, at a token grid of its aspect (one token per
    # token_block x token_block pixels), so tokens and regions see the same pixels; "auto": center_crop under
    # the square size policy, aligned under the aspect policy.
    sem_alignment: Literal["auto", "center_crop", "aligned"] = "auto"
    token_block: int = 32  # working-image pixels per DINOv2 token side in the aligned mode (512 / 16)


@dataclass(frozen=True)
class QuickRegionParams:
    """The draft's quick regions (engine/draft/quick_regions.py): a classical stand-in for stage 1, not SPEC's."""

    grid: int = 128  # the label map's side; the composite snaps it to the photo's edges at full size
    superpixels: int = 196
    compactness: float = 10.0  # SLIC's m: Lab units per grid step of spatial distance
    slic_iters: int = 8
    texture_window: int = 5  # side of the box over which local contrast (texture) is measured
    k_min: int = 2
    k_max: int = 8
    kmeans_restarts: int = 3
    kmeans_iters: int = 30
    colour_scale: float = 20.0  # Lab units counted as one feature unit (a clearly visible difference)
    position_weight: float = 0.5  # feature units across the whole image
    texture_weight: float = 1.0
    min_piece: float = 0.015  # connected pieces under this fraction of the image join a neighbour
    seed: int = 0


@dataclass(frozen=True)
class QuickMatchParams:
    """The draft's quick matching (engine/draft/quick_match.py): a stand-in for stage 2 without the models."""

    style_weight: float = 0.5  # of the style vectors' cosine, mapped to [0, 1]
    colour_weight: float = 0.5  # of the a*b* histograms' Bhattacharyya coefficient
    hist_bins: int = 12  # per a* and b* axis; coarse on purpose: palettes, not exact hues
    hist_pixels: int = 128 * 128  # colour statistics are taken on at most about this many pixels
    reference_pixels: int = 128  # long side of the reference copies the colour statistics are taken on
    # Spreading the checked references: a region may give up its best-scoring reference for another one scoring
    # at most this much lower (scores lie in 0..1), when that lets the draft use more of the checked references.
    spread_max_loss: float = 0.05


DRAFT_MIN_SIZE = 64  # the draft's long side, pixels: smaller shows nothing, larger is no longer instant
DRAFT_MAX_SIZE = 1024


@dataclass(frozen=True)
class DraftParams:
    """The instant draft (engine/draft): Magenta's arbitrary stylisation per region, a preview, not the method."""

    size: int = 512  # long side of the draft, pixels (DRAFT_MIN_SIZE..DRAFT_MAX_SIZE, a multiple of 4)
    strength: float = 1.0  # 0..1: moves each reference's style vector toward the photo's own
    preserve_colour: bool = False  # keep the photo's chroma, take the style's brightness
    feather_px_at_512: float = 6.0  # total width of the blend across a seam in flat areas, at a 512 working size
    feather_eps: float = 1e-4  # guided-filter eps: smaller keeps the feather sharp across a real edge
    region_crop_pixels: int = 512  # long side of the reference copy that reference-region crops are cut from
    quick_regions: QuickRegionParams = QuickRegionParams()
    quick_match: QuickMatchParams = QuickMatchParams()


FastMode = Literal["none", "lcm", "hyper"]


@dataclass(frozen=True)
class Stage3Params:
    """Stage 3: energy-guided style transfer optimisation of the latent."""

    steps: int = 150  # DDIM set_timesteps(steps)
    lr: float = 0.05
    content_weight: float = 0.26
    iters_per_step: int = 1
    layers: tuple[int, ...] = (10, 11, 12, 13, 14, 15)  # self-attention layers in execution order
    query_scale: float = 1.5
    adam_betas: tuple[float, float] = (0.9, 0.999)
    adam_eps: float = 1e-8
    init_std_eps: float = 1e-8  # z0 = (C15 - mean_c) / (std_c + eps)
    precision: Literal["fp32", "fp16", "bf16"] = "fp32"
    loss_scale_init: float = 2.0**16  # dynamic loss scaler for fp16 only
    fast_mode: FastMode = "none"
    lora_source: str | None = None  # a local folder or .safetensors file in place of the fast mode's hub LoRA
    preview_every: int = 1  # emit a latent->RGB preview every N steps (0 = never)
    seed: int = 42
    # Memory: images per no-grad reference-feature pass (content + references; 0 = all in one batch). A smaller
    # batch lowers the peak GPU memory with many references at a small cost in speed (same results up to rounding).
    feature_batch: int = 0


@dataclass(frozen=True)
class FastModeSpec:
    """A fast mode's LoRA and schedule (SPEC "Fast modes")."""

    lora: str
    weight_name: str | None
    scheduler: Literal["lcm", "euler_trailing"]
    steps: int
    iters_per_step: int
    lr: float
    content_weight: float


FAST_MODES: dict[str, FastModeSpec] = {
    "lcm": FastModeSpec(LCM_LORA_SOURCE, None, "lcm", 28, 3, 0.25, 0.33),
    "hyper": FastModeSpec(HYPER_SD_SOURCE, HYPER_SD_WEIGHT_NAME, "euler_trailing", 28, 3, 0.15, 0.38),
}


def stage3_for_fast_mode(mode: FastMode, base: Stage3Params | None = None) -> Stage3Params:
    """The Stage3Params a fast mode implies (steps, iterations, lr and content weight from SPEC)."""
    base = base or Stage3Params()
    if mode == "none":
        return dataclasses.replace(base, fast_mode="none")
    spec = FAST_MODES[mode]
    return dataclasses.replace(base, fast_mode=mode, steps=spec.steps, iters_per_step=spec.iters_per_step,
                               lr=spec.lr, content_weight=spec.content_weight)


OutputUpscale = Literal["auto", "refine", "fast"]


@dataclass(frozen=True)
class OutputParams:
    """The result at the photo's own resolution, made from stage 3's working-size latent.

    size: "photo" (the photo's own size, long side capped at max_side), "working" (stage 3's working size, no
    resampling) or a long side in pixels (never more than the photo's). upscale: "refine" continues stage 3 on a
    latent grid refine_factor times larger (then decodes and resamples the rest of the way), "fast" resamples the
    working-size result with a guided filter led by the full-resolution photo; "auto" = refine on CUDA, fast elsewhere.
    """

    size: Literal["photo", "working"] | int = "photo"
    max_side: int = 2048
    upscale: OutputUpscale = "auto"
    refine_factor: float = 2.0  # refine grid side / working grid side, capped by the output size
    refine_steps: int = 8  # stage-3 steps at the larger grid: the last timesteps of the stage-3 schedule
    refine_lr: float = 0.02
    vae_tiling_pixels: int = 1024 * 1024  # decode with the VAE's tiling above this many output pixels
    guide_radius: int = 2  # guided-filter window radius, in working-size pixels
    guide_eps: float = 1e-3  # guided-filter regularisation (on [0, 1] intensities): larger = smoother


def working_size(width: int, height: int, params: Stage1Params) -> tuple[int, int]:
    """The (width, height) in pixels at which the method sees a width x height picture, under params.size_policy."""
    if params.size_policy == "square":
        return params.image_size, params.image_size
    if params.size_policy != "aspect":
        raise ValueError(f"unknown size policy {params.size_policy!r} (use 'square' or 'aspect')")
    step = params.size_multiple
    scale = min(params.image_size / (width * height) ** 0.5, params.max_side / max(width, height))
    most = max(1, params.max_side // step)
    return tuple(step * min(most, max(1, round(side * scale / step))) for side in (width, height))


def output_size(photo: tuple[int, int], working: tuple[int, int], params: OutputParams) -> tuple[int, int]:
    """The (width, height) of the saved result: the photo's aspect ratio, never larger than the photo."""
    if params.size == "working":
        return working
    width, height = photo
    long_side = min(max(width, height), params.max_side)
    if params.size != "photo":
        long_side = min(long_side, int(params.size))
    scale = long_side / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def settings_key(obj: object) -> dict:
    """A JSON-able dict of a params dataclass, for cache keys and saved metadata."""
    return {f.name: _jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}


def _jsonable(value):
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    return value


@dataclass(frozen=True)
class LabelMapLimits:
    """What a region map handed to the draft from outside (`draft --labels`, a caller's array) may be."""

    min_side: int = 8  # cells per side; the method's own maps have at least 8 (a 64 px size multiple / 8)
    max_regions: int = 64  # distinct ids; each costs a style-vector pass in quick matching (stage 1 makes ~2-20)
    max_id: int = 2**31 - 1  # ids are stored as int64 and written to JSON; larger ones are no region ids
