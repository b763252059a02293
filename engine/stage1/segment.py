"""Stage 1 end to end: an image (and optional user mask) in, an `Analysis` out, cached on disk.

`segment` runs steps 4-10 on arrays alone (testable without models); `analyze_image` adds the models
(VAE encode, DDIM inversion, depth), progress events, cancellation and the cache; `analyze_images` does the same
for several images with their inversions batched. The cache key holds
the image's pixel hash, the model ids, every Stage1Params field, the user mask's pixel hash and the
device type and dtype (CPU and CUDA generators draw differently), never the file path.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np
import torch
from PIL import Image

from ..cache import DiskCache, cache_key, load_analysis, save_analysis
from .clustering import Clustering, cluster_features, seeded_global_rng
from .depth import predict_depth
from ..errors import Cancelled, InvalidRequest
from ..images import pixel_sha256, resize_to
from .inversion import InversionResult, ddim_invert_batch, encode_latent
from ..params import LATENT_FACTOR, STAGE1_MAX_BATCH, Stage1Params, working_size
from .regions import (apply_user_mask, depth_at_grid, depth_split, depth_grid, merge_clusters, remove_small_pieces,
                      user_mask_grid)
from ..types import Analysis, CancelFlag, EventCallback, StepEvent

CACHE_VERSION = 2  # bump when the stage-1 arithmetic changes, so old entries are not reused


@dataclass
class Segmentation:
    """Steps 4-10 of one image: the clustering and every intermediate label map (numpy, (h, w))."""

    clustering: Clustering
    labels: np.ndarray  # final, 1-based, gaps possible
    steps: dict[str, np.ndarray] = field(default_factory=dict)


def segment(fmix: torch.Tensor, latent: torch.Tensor, depth: torch.Tensor | None, params: Stage1Params,
            mask_ids: np.ndarray | None = None, cancel: CancelFlag | None = None,
            on_k: Callable[[int], None] | None = None) -> Segmentation:
    """Steps 4-10 from F_mix (C, h, w), the scaled VAE latent (4, h, w), the native-size depth (H, W) or
    None (no split, no re-merge) and an optional user-mask id grid (h, w). Runs on fmix's device.

    Label maps of steps 5-8 are 0-based like the reference's; the final map is 1-based.
    """
    channels, height, width = fmix.shape
    if tuple(latent.shape[1:]) != (height, width):
        raise InvalidRequest(f"The captured features are {height}x{width} but the latent is "
                             f"{latent.shape[1]}x{latent.shape[2]}",
                             hint="Choose a feature block whose output has the latent's resolution.")
    device = fmix.device
    shape = (height, width)

    def grid(labels: torch.Tensor) -> np.ndarray:
        return labels.reshape(shape).cpu().numpy().astype(np.int64)

    with seeded_global_rng(params.seed, device):
        clustering = cluster_features(fmix.permute(1, 2, 0).reshape(-1, channels), params, cancel, on_k)
        steps = {"step5_kmeans_per_k": np.stack([grid(v) for v in clustering.labels_per_k.values()]),
                 "step5_kmeans": grid(clustering.labels)}
        pixels_latent = latent.to(device=device, dtype=torch.float32).permute(1, 2, 0).reshape(-1, latent.shape[0])
        labels, count = merge_clusters(clustering.labels, clustering.chosen_k, pixels_latent,
                                       params.merge_threshold, params.merge_rule)
        steps["step6_merge"] = grid(labels)
        if depth is not None:
            pixels_depth = depth_grid(depth.to(device), shape, params.depth_norm_eps).reshape(-1)
            labels, count = depth_split(labels, count, pixels_depth, params)
            steps["step7_depth_split"] = grid(labels)
            labels, count = merge_clusters(labels, count, pixels_latent, params.remerge_latent_threshold,
                                           params.merge_rule, pixels_depth, params.remerge_depth_threshold)
            steps["step8_remerge"] = grid(labels)
    automatic = grid(labels)
    if mask_ids is not None:
        automatic = apply_user_mask(automatic, mask_ids)
        steps["step9_user_mask"] = automatic
    else:
        automatic = automatic + 1
    final = remove_small_pieces(automatic, params.cleanup_min_size)
    return Segmentation(clustering=clustering, labels=final, steps=steps)


def analysis_key(image_sha256: str, params: Stage1Params, sd_model_id: str, depth_model_id: str | None,
                 mask_sha256: str | None, device: torch.device, dtype: torch.dtype, size: tuple[int, int]) -> str:
    """Everything that changes a stage-1 result, hashed (`size`: the working size in pixels)."""
    return cache_key({"stage": "analysis", "version": CACHE_VERSION, "image": image_sha256, "params": params,
                      "working_size": list(size),
                      "sd": sd_model_id, "depth": depth_model_id if params.use_depth else None,
                      "user_mask": mask_sha256, "device": torch.device(device).type, "dtype": str(dtype)})


def total_steps(params: Stage1Params) -> int:
    """Progress units: encode, each inversion step, depth (if on), each k, regions."""
    return 1 + params.inversion_steps + int(params.use_depth) + (params.k_max - params.k_min + 1) + 1


def analyze_image(bundle, image: Image.Image, params: Stage1Params | None = None,
                  user_mask: Image.Image | None = None, on_event: EventCallback | None = None,
                  cancel: CancelFlag | None = None, cache: DiskCache | None = None,
                  keep_intermediates: bool = False) -> Analysis:
    """Stage 1 for one RGB image with the models of `bundle` (an engine.models.ModelBundle).

    With `cache`, a previous result for the same pixels, models and settings is returned without running
    any model. `keep_intermediates` also keeps the float intermediates (inversion latents, X_pca, the raw
    depth prediction) in `Analysis.steps`, for parity checks. Raises Cancelled when `cancel` is set.
    """
    return analyze_images(bundle, [(image, user_mask)], params, on_event, cancel, cache, keep_intermediates)[0]


@dataclass
class _Pending:
    """One image of `analyze_images` that the cache did not answer."""

    index: int
    image: Image.Image
    image_sha: str
    key: str
    size: tuple[int, int]  # working size (width, height), pixels
    mask_ids: np.ndarray | None
    latent: torch.Tensor | None = None


def analyze_images(bundle, images: list[tuple[Image.Image, Image.Image | None]], params: Stage1Params | None = None,
                   on_event: EventCallback | None = None, cancel: CancelFlag | None = None,
                   cache: DiskCache | None = None, keep_intermediates: bool = False) -> list[Analysis]:
    """Stage 1 for several (image, user mask or None) pairs, in order: `analyze_image` for each, except that
    the DDIM inversions of the images the cache does not hold run batched, one UNet call per step for up to
    `STAGE1_MAX_BATCH` images of the same latent size (the UNet's weights are read once per step, not once
    per image). Results equal the one-by-one analyses up to the batched kernels' rounding.

    Progress: one "analyze" event stream for all the images computed (a cache hit adds nothing to it).
    """
    params = params or Stage1Params()
    if cancel is not None and cancel.is_set():
        raise Cancelled("Analysis cancelled")
    results: list[Analysis | None] = [None] * len(images)
    pending: list[_Pending] = []
    for index, (image, user_mask) in enumerate(images):
        image_sha = pixel_sha256(image)
        size = working_size(*image.size, params)
        mask_ids = mask_sha = None
        if user_mask is not None:
            mask_ids = user_mask_grid(user_mask, (size, image.size),
                                      (size[1] // LATENT_FACTOR, size[0] // LATENT_FACTOR))
            mask_sha = pixel_sha256(user_mask)
        key = analysis_key(image_sha, params, bundle.model_id("sd"), bundle.model_id("depth"), mask_sha,
                           bundle.device, bundle.dtype, size)
        cached = load_analysis(cache, key) if cache is not None else None
        if cached is not None and (not keep_intermediates or "x_pca" in cached.steps):
            results[index] = cached
        else:
            pending.append(_Pending(index, image, image_sha, key, size, mask_ids))

    total = total_steps(params) * len(pending)
    done = 0

    def advance(message: str, units: int = 1) -> None:
        nonlocal done
        if cancel is not None and cancel.is_set():
            raise Cancelled("Analysis cancelled")
        done += units
        if on_event is not None:
            on_event(StepEvent("analyze", done, total, message=message))

    if not pending:  # no model is loaded for cache hits
        if on_event is not None:
            on_event(StepEvent("analyze", 1, 1, message="Loaded from cache"))
        return results
    sd = bundle.sd
    depth_model = bundle.depth if params.use_depth else None  # loaded, so checked, before the SD work
    for item in pending:
        item.latent = encode_latent(sd.vae, resize_to(item.image, item.size))
        advance("Encoded the image")
    for group in _inversion_batches(pending):
        inversions = ddim_invert_batch(
            sd.unet, torch.cat([item.latent for item in group]), bundle.empty_prompt_embeds(),
            sd.ddim_scheduler().alphas_cumprod, params, cancel,
            on_step=lambda i, n=len(group): advance(f"Inversion step {i + 1}", n))
        for item, inversion in zip(group, inversions):
            results[item.index] = _finish_analysis(bundle, item, inversion, depth_model, params, advance, cancel,
                                                   keep_intermediates)
            if cache is not None:
                save_analysis(cache, item.key, _depth_at_grid(results[item.index]))
    return results


def _depth_at_grid(analysis: Analysis) -> Analysis:
    """`analysis` with its depth at the label grid, as the cache keeps it: the method samples the depth only there,
    so a loaded analysis segments the same, and a 12-megapixel photo's native-size map (48 MB) is never written."""
    if analysis.depth is None:
        return analysis
    return replace(analysis, depth=depth_at_grid(torch.from_numpy(analysis.depth), analysis.labels.shape).numpy())


def _inversion_batches(pending: list[_Pending]) -> list[list[_Pending]]:
    """Images grouped by latent size (only equal sizes share a UNet call), at most STAGE1_MAX_BATCH a group."""
    by_size: dict[tuple[int, ...], list[_Pending]] = {}
    for item in pending:
        by_size.setdefault(tuple(item.latent.shape), []).append(item)
    return [group[start:start + STAGE1_MAX_BATCH] for group in by_size.values()
            for start in range(0, len(group), STAGE1_MAX_BATCH)]


def _finish_analysis(bundle, item: _Pending, inversion: InversionResult, depth_model: tuple | None,
                     params: Stage1Params, advance: Callable[..., None], cancel: CancelFlag | None,
                     keep_intermediates: bool) -> Analysis:
    """Depth (with `depth_model`, the bundle's (model, processor), or none), steps 4-10 and the `Analysis` of one
    image whose inversion is done."""
    depth = None
    if depth_model is not None:
        depth = predict_depth(*depth_model, item.image)
        advance("Estimated depth")
    latent = item.latent
    result = segment(inversion.fmix, latent[0], None if depth is None else depth.depth, params, item.mask_ids,
                     cancel, on_k=lambda k: advance(f"Clustering with k = {k}"))
    steps = dict(result.steps)
    if keep_intermediates:
        steps["inversion_latents"] = inversion.latents.cpu().numpy()
        steps["x_pca"] = result.clustering.x_pca.cpu().numpy()
        if depth is not None:
            steps["depth_model_output"] = depth.raw.cpu().numpy()
    analysis = Analysis(
        image_sha256=item.image_sha, labels=result.labels, fmix=inversion.fmix.cpu().numpy(),
        depth=None if depth is None else depth.depth.cpu().numpy(), c15=inversion.c15.cpu().numpy(),
        vae_latent=latent[0].cpu().numpy(), params=params, model_id=bundle.sd.model_id,
        silhouette=dict(result.clustering.silhouettes), chosen_k=result.clustering.chosen_k, steps=steps)
    advance("Regions ready")
    return analysis
