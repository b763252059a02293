"""The engine's one entry point for the GUI and the CLI: `Engine`.

Plain calls, a job in and a result out, a callback for progress and previews, a cancel flag.
Models load lazily and once; every stage caches on disk under `cache_dir`, keyed by pixel hashes,
model ids and settings, so a second run does only what changed.
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from PIL import Image

from .cache import DEFAULT_BUDGET_BYTES, DiskCache, default_cache_dir
from .device import device_summary, pick_device, pick_dtype
from .errors import InvalidRequest
from .images import load_image, pixel_sha256
from .stage2.matching import match_regions
from .stage2.pins import apply_pins
from .memory import out_of_memory_guard
from .models import ModelBundle
from .params import MatchParams, ModelSource, OutputParams, Stage1Params, Stage3Params, output_size, working_size
from .stage1.edits import RegionEdit, apply_edit
from .stage1.segment import analyze_images
from .stage3.features import FeatureCache
from .stage2.dinov2_tokens import cached_dinov2_tokens, resolved_alignment
from .types import (Analysis, CancelFlag, DraftRequest, EventCallback, ImageRef, MatchTable, Pin,
                    TransferRequest, TransferResult)

if TYPE_CHECKING:
    from .draft import DraftResult, Drafter


Loaded = tuple[Image.Image, "Image.Image | None", RegionEdit | None]  # a picture, its user mask, its region edit
FEATURE_CACHE_BYTES = 3 << 30  # host memory kept for stage-3 features between runs


class Engine:
    """Owns the models (lazy), the device choice and the disk cache.

    device: "auto" | "cuda" | "cpu" (or any torch device string); precision: "auto" | "fp32" | "fp16" | "bf16"
    ("auto" = fp16 on CUDA, fp32 elsewhere) sets the dtype the models are held in. Not thread-safe: one worker
    thread calls analyze/match/transfer at a time. `draft` may run on a second thread beside them only when its
    analyses are already cached (quick regions, or the method's regions found in the cache, as the GUI ensures):
    otherwise it would run the UNet while a transfer has swapped its attention processors.
    `use_cache=False` recomputes everything and writes no cache; `cache_budget`: the disk cache's size in bytes.
    """

    def __init__(self, models: ModelSource | None = None, device: str = "auto", precision: str = "auto",
                 cache_dir: Path | None = None, on_event: EventCallback | None = None, use_cache: bool = True,
                 cache_budget: int = DEFAULT_BUDGET_BYTES):
        self.source = models or ModelSource()
        self.device = pick_device(device)
        self.dtype = pick_dtype(self.device, precision)
        self.cache = DiskCache(Path(cache_dir) if cache_dir else default_cache_dir(),
                               cache_budget) if use_cache else None
        self.models = ModelBundle(self.source, self.device, self.dtype, on_event=on_event)
        # Stage 3's content/reference features per timestep (independent of z): a re-run after a pin or weight
        # change reuses them. Memory only: a 150-step run's features take gigabytes, too much to write each run.
        self.feature_cache = FeatureCache(max_bytes=FEATURE_CACHE_BYTES)
        self._drafter: Drafter | None = None
        self._draft_match: tuple[tuple, tuple[MatchTable, Analysis, list[Analysis]]] | None = None

    def device_summary(self) -> str:
        """'NVIDIA GeForce RTX 4090, 21.3 GiB free' or 'CPU: slow'."""
        return device_summary(self.device)

    def analyze(self, image: ImageRef, params: Stage1Params | None = None, on_event: EventCallback | None = None,
                cancel: CancelFlag | None = None) -> Analysis:
        """Stage 1 for one image (cached), without its `region_edit`: the automatic map an edit is made on. Raises
        `Cancelled` if cancelled."""
        return self._analyze([_load(image)], params or Stage1Params(), on_event, cancel)[0]

    def analyze_all(self, images: list[ImageRef], params: Stage1Params | None = None,
                    on_event: EventCallback | None = None, cancel: CancelFlag | None = None) -> list[Analysis]:
        """Stage 1 for several images (cached), in order; the inversions of those not cached run batched, one
        UNet call per step for images of the same size. Raises `Cancelled` if cancelled (the analyses finished
        before that are in the cache)."""
        return self._analyze([_load(image) for image in images], params or Stage1Params(), on_event, cancel)

    def _analyze(self, loaded: list[Loaded], params: Stage1Params, on_event: EventCallback | None,
                 cancel: CancelFlag | None) -> list[Analysis]:
        with out_of_memory_guard("the analysis"), torch.no_grad():
            return analyze_images(self.models, [(picture, mask) for picture, mask, _ in loaded], params,
                                  on_event=on_event, cancel=cancel, cache=self.cache)

    def match(self, content: ImageRef, references: list[ImageRef], pins: list[Pin] | None = None,
              stage1: Stage1Params | None = None, params: MatchParams | None = None,
              on_event: EventCallback | None = None, cancel: CancelFlag | None = None) -> MatchTable:
        """Stage 2 (analysing each image first, cached, then applying its region edit): scores of every candidate and
        the chosen matches."""
        table, _, _ = self._match(_load_all(content, references), pins or [], stage1 or Stage1Params(),
                                  params or MatchParams(), on_event, cancel)
        return table

    def _match(self, loaded: list[Loaded], pins: list[Pin], stage1: Stage1Params, params: MatchParams,
               on_event: EventCallback | None, cancel: CancelFlag | None
               ) -> tuple[MatchTable, Analysis, list[Analysis]]:
        """Stage 2 on images already opened (content first), so each file is decoded once per call."""
        model, processor = self.models.dinov2  # loaded, so checked, before the analyses
        analyses = [apply_edit(analysis, item[2])
                    for analysis, item in zip(self._analyze(loaded, stage1, on_event, cancel), loaded)]
        alignment = resolved_alignment(params.sem_alignment, stage1.size_policy)
        with out_of_memory_guard("the matching"), torch.no_grad():
            tokens = [cached_dinov2_tokens(self.cache, self.models.model_id("dinov2"), model, processor, picture,
                                           alignment, working_size(*picture.size, stage1), params.token_block)
                      for picture, _, _ in loaded]
        table = match_regions(analyses[0], tokens[0], analyses[1:], tokens[1:], params, pins)
        return table, analyses[0], analyses[1:]

    def method_available(self, stage1: Stage1Params | None = None) -> bool:
        """Whether the method's models are here without a download: SD, DINOv2, and depth when stage 1 uses it."""
        needed = ["sd", "dinov2"] + (["depth"] if (stage1 or Stage1Params()).use_depth else [])
        return all(self.models.available(which) for which in needed)

    @property
    def drafter(self) -> Drafter:
        """The instant-draft maker, made on first use and kept: its caches make a pin change a re-composite."""
        if self._drafter is None:
            from .draft import Drafter

            self._drafter = Drafter(disk_cache=self.cache, use_cache=self.cache is not None)
        return self._drafter

    def draft(self, request: DraftRequest, on_event: EventCallback | None = None,
              cancel: CancelFlag | None = None) -> DraftResult:
        """The instant draft (engine/draft): a seconds-fast preview, not the method's stage 3.

        `request.regions` "method": stage 1's regions and stage 2's matches with the pins applied, i.e. the
        assignment `transfer` will use (analyses cached; the unpinned table is kept, so a pin change only
        re-composites); "quick": classical regions and quick matching, no SD model needed; "auto": "method" when
        its models are here without a download (`method_available`), else "quick". `result.region_source` says
        which was used. Raises DraftUnavailable without the draft extra, InvalidRequest on bad arguments,
        Cancelled on `cancel`.
        """
        from .draft import require_draft

        regions, stage1 = request.regions, request.stage1
        if regions not in ("auto", "method", "quick"):
            raise InvalidRequest(f"Draft regions must be auto, method or quick, got {regions!r}")
        _require_references(request.references, "draft")
        require_draft()  # before any analysis, whose only use here would be the draft
        drafter = self.drafter
        loaded = _load_all(request.content, request.references)
        images = [picture for picture, _, _ in loaded]
        if regions == "quick" or (regions == "auto" and not self.method_available(stage1)):
            return drafter.draft(images[0], images[1:], request.draft, pins=request.pins, on_event=on_event,
                                 cancel=cancel)
        key = (tuple(pixel_sha256(image) for image in images),
               tuple(None if mask is None else pixel_sha256(mask) for _, mask, _ in loaded),
               tuple(edit for _, _, edit in loaded), stage1, request.match)
        if self._draft_match is None or self._draft_match[0] != key:
            self._draft_match = key, self._match(loaded, [], stage1, request.match, on_event, cancel)
        table, analysis, ref_analyses = self._draft_match[1]
        return drafter.draft(images[0], images[1:], request.draft, labels=analysis.labels,
                             assignment=apply_pins(table, request.pins).matches,
                             reference_labels=[ref.labels for ref in ref_analyses], on_event=on_event, cancel=cancel)

    def transfer(self, request: TransferRequest, on_event: EventCallback | None = None,
                 cancel: CancelFlag | None = None) -> TransferResult:
        """Stages 1-3 end to end, the result at `request.output`'s size (the photo's, by default). On cancel returns
        the partial result with `cancelled=True` (resampled, never refined)."""
        from .resample import guided_resample
        from .stage3.refine import Refiner, refine_size
        from .stage3.stylize import StyleInputs, stylize

        started = time.perf_counter()
        loaded = _load_all(request.content, request.references)
        self.models.sd  # stage 3's model: loaded, so checked, before any work
        table, content, references = self._match(loaded, request.pins, request.stage1, request.match, on_event,
                                                 cancel)
        photo, stage3 = loaded[0][0], self._stage3_params(request.stage3)
        content_inputs = StyleInputs(content.vae_latent, content.labels, content.c15)
        reference_inputs = [StyleInputs(ref.vae_latent, ref.labels) for ref in references]
        way = self._upscale(request.output)
        target = output_size(photo.size, content.working_size, request.output)
        larger = refine_size(content.working_size, target, request.output) if way == "refine" else None
        with out_of_memory_guard("the style transfer"):
            outcome = stylize(self.models.sd, self.models.empty_prompt_embeds(), content_inputs, reference_inputs,
                              table.matches, stage3, on_event=on_event, cancel=cancel,
                              feature_cache=self.feature_cache)
            image, losses, cancelled = outcome.image, outcome.losses, outcome.cancelled
            steps_total = outcome.steps_total
            if larger is not None and not cancelled:
                refiner = Refiner(self.models.sd, self.models.empty_prompt_embeds(), photo, larger, content_inputs,
                                  reference_inputs, table.matches, stage3, request.output, self.feature_cache)
                steps_total += refiner.steps
                refined = refiner.run(refiner.start(outcome.latent), on_event, cancel, len(losses), steps_total)
                image, losses, cancelled = refined.image, losses + refined.run.losses, refined.run.cancelled
        enlarged = target[0] * target[1] > image.shape[0] * image.shape[1]
        final = guided_resample(image, photo, target, request.output)
        used = "refine" if larger is not None and not outcome.cancelled else ("fast" if enlarged else "none")
        return TransferResult(image=final, latent=outcome.latent, matches=table, losses=losses,
                              steps_done=len(losses), steps_total=steps_total, cancelled=cancelled,
                              seconds=time.perf_counter() - started, working_size=content.working_size,
                              output_size=target, upscale=used)

    def _upscale(self, params: OutputParams) -> str:
        """The way to the output size: "auto" is refine on CUDA (it needs a GPU's speed), fast elsewhere."""
        if params.upscale == "auto":
            return "refine" if self.device.type == "cuda" else "fast"
        if params.upscale not in ("refine", "fast"):
            raise InvalidRequest(f"Output upscale must be auto, refine or fast, got {params.upscale!r}")
        return params.upscale

    def _stage3_params(self, params: Stage3Params) -> Stage3Params:
        """Models held in half precision run stage 3 under that precision (the reference's fp16 autocast)."""
        if self.dtype == torch.float16 and params.precision == "fp32":
            return dataclasses.replace(params, precision="fp16")
        if self.dtype == torch.bfloat16 and params.precision == "fp32":
            return dataclasses.replace(params, precision="bf16")
        return params


def _load(image: ImageRef) -> Loaded:
    mask = None if image.user_mask is None else load_image(image.user_mask, colour_managed=False)  # ids, not colours
    return load_image(image.path), mask, image.region_edit


def _load_all(content: ImageRef, references: list[ImageRef]) -> list[Loaded]:
    """The content and references opened (content first); a request without references is refused first."""
    _require_references(references, "run")
    return [_load(ref) for ref in [content, *references]]


def _require_references(references: list[ImageRef], what: str) -> None:
    if not references:
        raise InvalidRequest(f"Add at least one style reference to the {what}.")
