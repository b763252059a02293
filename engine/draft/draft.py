"""`Drafter`: the instant draft, a preview of the region-by-region restyle in about a second on a CPU.

One transformer pass per distinct matched reference, then a per-region composite. Everything a pin change does not
touch is cached (style vectors on disk, the passes, the snapped labels and the quick regions in memory), so changing
a pin only re-composites. Not thread-safe: one worker calls it at a time, like `Engine`.
"""
from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Hashable, Mapping, Sequence

import numpy as np
from PIL import Image

from ..cache import DiskCache, cache_key, default_cache_dir
from ..errors import Cancelled, InvalidRequest
from ..images import pixel_sha256
from ..params import DRAFT_MAX_SIZE, DRAFT_MIN_SIZE, DraftParams, QuickRegionParams
from ..stage2.pins import pin_matches
from ..types import CancelFlag, EventCallback, Pin, RegionMatch, StepEvent
from . import composite as comp
from .labels import check_labels
from .onnx_models import PACKAGE, SIZE_MULTIPLE, STYLE_INPUT_SIZE, StyleNetworks
from .quick_match import QuickMatching, quick_matches, region_crop
from .quick_regions import quick_regions

VECTOR_NAMESPACE = "draft_style_vector"
VECTOR_PREP = "centre-crop-lanczos-256"  # part of the vector key: a different crop must not reuse vectors
REGION_VECTOR_PREP = "region-box-mean-fill-{pixels}-lanczos-256"  # {pixels}: DraftParams.region_crop_pixels


@dataclass
class DraftResult:
    """A draft. `image` is uint8 (H, W, 3) at the working size (long side = size, aspect kept);
    `labels` the coarse region map it used and `full_labels` the same regions at the working size, snapped to the
    photo's edges (the seams the draft shows); `region_source`/`match_source` are "method" (stage 1/2 results
    given by the caller) or "quick" (the classical stand-ins); `matches` include pins (`pinned=True`);
    `reference_vectors` is "region" when a match to a reference region used that region's own style vector,
    "whole" when every pass used whole references; `unused_references` says, per reference no region takes, why
    (quick matching only: the method's matches are stage 2's)."""

    image: np.ndarray
    labels: np.ndarray
    full_labels: np.ndarray
    region_source: str
    match_source: str
    matches: dict[int, RegionMatch]
    strength: float
    preserve_colour: bool
    seconds: float
    timings: dict[str, float] = field(default_factory=dict)
    package_version: str = ""
    reference_vectors: str = "whole"
    unused_references: dict[int, str] = field(default_factory=dict)

    def metadata(self) -> dict[str, Any]:
        """A JSON-ready summary: what the draft shows and where its regions and matches came from."""
        height, width = self.labels.shape
        rows, cols = np.mgrid[0:height, 0:width]
        regions = {}
        for region in np.unique(self.labels):  # where each region is, so a CLI user can tell which id to pin
            mask = self.labels == region
            regions[str(int(region))] = {"fraction": round(float(mask.mean()), 4),
                                         "centre": [round(float(cols[mask].mean() + 0.5) / width, 3),
                                                    round(float(rows[mask].mean() + 0.5) / height, 3)]}
        return {
            "kind": "draft",
            "model": f"Magenta arbitrary image stylization (Ghiasi et al. 2017), from {PACKAGE} {self.package_version}",
            "size": [int(self.image.shape[1]), int(self.image.shape[0])],
            "strength": self.strength,
            "preserve_colour": self.preserve_colour,
            "regions": {"source": self.region_source, "label_shape": [height, width], "by_id": regions},
            "matches": {"source": self.match_source, "reference_vectors": self.reference_vectors,
                        "by_region": {str(r): {"reference": m.style_index, "reference_region": m.style_region,
                                               "score": None if m.score is None else round(m.score, 4),
                                               "pinned": m.pinned} for r, m in sorted(self.matches.items())},
                        "unused_references": {str(ref): why for ref, why in sorted(self.unused_references.items())}},
            "seconds": round(self.seconds, 3),
            "timings": {k: round(v, 4) for k, v in self.timings.items()},
        }


class _Lru:
    """A small bounded memory cache: a long session must not keep every pass it ever made."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self._items: OrderedDict[Hashable, Any] = OrderedDict()

    def get(self, key: Hashable) -> Any:
        if key in self._items:
            self._items.move_to_end(key)
            return self._items[key]
        return None

    def put(self, key: Hashable, value: Any) -> Any:
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.capacity:
            self._items.popitem(last=False)
        return value


def working_size(width: int, height: int, size: int) -> tuple[int, int]:
    """(w, h) with the long side = size and the short side rounded to a multiple of 4 (aspect kept)."""
    scale = size / max(width, height)
    short = max(SIZE_MULTIPLE, int(round(min(width, height) * scale / SIZE_MULTIPLE)) * SIZE_MULTIPLE)
    return (size, short) if width >= height else (short, size)


def predictor_input(image: Image.Image | np.ndarray, centre_crop: bool) -> np.ndarray:
    """uint8 image -> float32 (256, 256, 3) in [0, 1]; references are centre-cropped square first (as the
    network was used by its authors), region crops are resized whole so no part of the region is lost."""
    img = _rgb(image) if isinstance(image, Image.Image) else Image.fromarray(image)
    if centre_crop:
        side = min(img.size)
        left, top = (img.width - side) // 2, (img.height - side) // 2
        img = img.crop((left, top, left + side, top + side))
    img = img.resize((STYLE_INPUT_SIZE, STYLE_INPUT_SIZE), Image.LANCZOS)
    return np.asarray(img, dtype=np.float32) / 255.0


def _array_key(array: np.ndarray) -> str:
    return hashlib.sha256(f"{array.shape}{array.dtype}".encode() + np.ascontiguousarray(array).tobytes()).hexdigest()


class Drafter:
    """Makes drafts; keeps the networks, style vectors (memory + disk), passes and region maps between calls."""

    def __init__(self, cache_dir: Path | None = None, providers: list[str] | None = None, threads: int | None = None,
                 keep_passes: int = 16, networks: StyleNetworks | None = None, use_cache: bool = True,
                 disk_cache: DiskCache | None = None):
        """`networks` lets several drafters share one pair of loaded sessions (else loaded on first use);
        `use_cache=False` keeps style vectors in memory only (nothing written to disk); `disk_cache`: the Engine's
        (its folder and budget) in place of one at `cache_dir`."""
        if not use_cache:
            self._disk = None
        elif disk_cache is not None:
            self._disk = disk_cache
        else:
            self._disk = DiskCache(cache_dir if cache_dir is not None else default_cache_dir())
        self._providers = providers
        self._threads = threads
        self._networks = networks
        self._vectors = _Lru(256)
        self._references = _Lru(64)  # ref key -> small uint8 copy for colour statistics
        self._region_sources = _Lru(16)  # ref key -> uint8 copy that reference-region crops are cut from
        self._working = _Lru(4)
        self._quick = _Lru(8)
        self._snapped = _Lru(8)
        self._quick_matches = _Lru(16)
        self._passes = _Lru(keep_passes)

    @property
    def networks(self) -> StyleNetworks:
        """The two ONNX sessions, loaded on first use; raises DraftUnavailable without the draft extra."""
        if self._networks is None:
            self._networks = StyleNetworks(self._providers, self._threads)
        return self._networks

    def style_vector(self, image: Image.Image, image_key: str | None = None) -> np.ndarray:
        """The 100-d style vector of a whole image, computed once per pixel hash and kept on disk."""
        image_key = image_key or pixel_sha256(image)
        return self._cached_vector((image_key,), image_key, (VECTOR_PREP,),
                                   lambda: predictor_input(image, centre_crop=True))

    def region_vector(self, reference: Image.Image, ref_key: str, labels: np.ndarray, region: int,
                      crop_pixels: int = DraftParams.region_crop_pixels) -> np.ndarray:
        """The style vector of one stage-1 region of a reference (`labels` cover the whole image, any grid): its
        bounding-box crop with outside pixels filled with the region's mean colour, as quick matching encodes
        content regions. Lets a match to a reference region draft with that region's style, not the whole
        picture's. The crop is cut from a copy of the reference with its long side at `crop_pixels`. Kept in
        memory and on disk like whole-image vectors."""
        labels_key = _array_key(labels)

        def crop() -> np.ndarray:
            source = self._region_source(reference, ref_key, crop_pixels)
            height, width = source.shape[:2]
            rows, cols = np.arange(height) * labels.shape[0] // height, np.arange(width) * labels.shape[1] // width
            mask = labels[np.ix_(rows, cols)] == region
            if not mask.any():
                raise InvalidRequest(f"Region {region} is not a region of that reference "
                                     f"(regions: {[int(r) for r in np.unique(labels)]})")
            return predictor_input(region_crop(source, mask), centre_crop=False)

        prep = REGION_VECTOR_PREP.format(pixels=crop_pixels)
        return self._cached_vector((ref_key, labels_key, region, crop_pixels), ref_key,
                                   (prep, labels_key, int(region)), crop)

    def _cached_vector(self, memo_key: tuple, image_key: str, prep: tuple,
                       predictor_in: Callable[[], np.ndarray]) -> np.ndarray:
        """A style vector from memory, else disk, else the predictor (on `predictor_in()`), then kept in both."""
        vector = self._vectors.get(memo_key)
        if vector is not None:
            return vector
        key = cache_key(image_key, self.networks.predictor_id, *prep)
        entry = self._disk.get(key, namespace=VECTOR_NAMESPACE) if self._disk is not None else None
        if entry is not None:
            vector = entry[0]["vector"]
        else:
            vector = self.networks.predict(predictor_in())
            if self._disk is not None:
                self._disk.put(key, {"vector": vector}, {"image_sha256": image_key}, namespace=VECTOR_NAMESPACE)
        return self._vectors.put(memo_key, vector)

    def quick_regions(self, content: Image.Image, content_key: str | None = None,
                      params: QuickRegionParams = QuickRegionParams()) -> np.ndarray:
        """The classical regions of the content (cached per image and params, the same at every working size)."""
        content_key = content_key or pixel_sha256(content)
        labels = self._quick.get((content_key, params))
        if labels is None:
            labels = self._quick.put((content_key, params), quick_regions(np.asarray(_rgb(content)), params))
        return labels

    def draft(self, content: Image.Image, references: Sequence[Image.Image], params: DraftParams = DraftParams(),
              labels: np.ndarray | None = None, assignment: Mapping[int, int | RegionMatch] | None = None,
              pins: Sequence[Pin] = (), reference_labels: Sequence[np.ndarray | None] | None = None,
              on_event: EventCallback | None = None, cancel: CancelFlag | None = None) -> DraftResult:
        """Draft `content` after `references` with `params` (size, strength, colour, quick regions and matching).

        labels: a region map (any HxW, e.g. stage 1's 64x64) or None for quick regions; assignment: region ->
        reference index (or stage 2's RegionMatch) for every region, or None for quick matching; pins override
        both. reference_labels: the references' stage-1 maps (one per reference, None where absent); with them a
        match or pin to a reference region drafts with that region's style vector, without them with the whole
        reference's. Raises InvalidRequest on bad arguments, DraftUnavailable without it, Cancelled when
        `cancel` is set (checked before each pass: a newer draft is wanted, this one is not).
        """
        size, strength = params.size, params.strength
        start = time.perf_counter()
        timings: dict[str, float] = {}

        def lap(name: str, since: float) -> float:
            now = time.perf_counter()
            timings[name] = timings.get(name, 0.0) + now - since
            return now

        def check() -> None:
            if cancel is not None and cancel.is_set():
                raise Cancelled("The draft was cancelled")

        def emit(step: int, total: int, message: str) -> None:
            if step < total:  # a finished draft is delivered even if a newer one is already wanted
                check()
            if on_event is not None:
                on_event(StepEvent("draft", step, total, message=message))

        _check_arguments(references, labels, assignment, strength, size)
        if reference_labels is not None and len(reference_labels) != len(references):
            raise InvalidRequest(f"{len(reference_labels)} reference label maps for {len(references)} references")
        content, references = _rgb(content), [_rgb(ref) for ref in references]
        networks = self.networks  # first, so a missing extra fails before any progress is shown
        emit(0, 4, "start")
        t = time.perf_counter()
        content_key = pixel_sha256(content)
        ref_keys = [pixel_sha256(ref) for ref in references]
        work, guide = self._working_image(content, content_key, size)
        t = lap("prepare", t)

        region_source = "quick" if labels is None else "method"
        labels = (self.quick_regions(content, content_key, params.quick_regions) if labels is None
                  else np.asarray(labels, np.int64))
        labels_key = _array_key(labels)
        full = self._snapped.get((content_key, size, labels_key))
        if full is None:
            full = self._snapped.put((content_key, size, labels_key), comp.snap_labels(labels, work))
        t = lap("regions", t)
        emit(1, 4, "regions")

        ref_vectors = [self.style_vector(ref, key) for ref, key in zip(references, ref_keys)]
        t = lap("vectors", t)
        unused: dict[int, str] = {}  # quick matching's reasons, for the references no region takes after pins
        if assignment is None:
            match_source = "quick"
            quick = self._quick_match(work, full, content_key, size, labels_key, references, ref_keys, ref_vectors,
                                      params)
            matches, unused = quick.matches, quick.unused
        else:
            match_source = "method"
            matches = _given_matches(labels, assignment, len(references))
        regions_of = [None if ref_labels is None else np.unique(ref_labels).tolist()
                      for ref_labels in reference_labels or [None] * len(references)]
        matches = pin_matches(matches, pins, regions_of)  # the method's rule, checks and messages
        used = {m.style_index for m in matches.values()}
        unused = {ref: unused.get(ref, "the regions quick matching gave it are pinned to other references")
                  for ref in range(len(references)) if ref not in used and match_source == "quick"}
        t = lap("match", t)
        emit(2, 4, "matches")

        def style_of(match: RegionMatch) -> tuple[int, int | None]:  # what one pass stylises with
            by_region = (match.style_region is not None and reference_labels is not None
                         and reference_labels[match.style_index] is not None)
            return match.style_index, match.style_region if by_region else None

        styles = sorted({style_of(m) for m in matches.values()}, key=lambda s: (s[0], -1 if s[1] is None else s[1]))
        own = self.style_vector(content, content_key) if strength < 1.0 else None
        passes = {}
        for index, (ref, region) in enumerate(styles):
            check()
            if region is None:
                pass_key, vector = ref_keys[ref], ref_vectors[ref]
            else:
                vector = self.region_vector(references[ref], ref_keys[ref], reference_labels[ref], region,
                                            params.region_crop_pixels)
                pass_key = f"{ref_keys[ref]}#{_array_key(reference_labels[ref])}:{region}"
            passes[index] = self._pass(work, content_key, size, pass_key, vector, own, strength)
        t = lap("passes", t)
        emit(3, 4, "passes")

        weights = comp.reference_weights(full, {r: styles.index(style_of(m)) for r, m in matches.items()}, guide,
                                         params)
        image = comp.composite(passes, weights)
        if params.preserve_colour:
            image = comp.preserve_colour(image, work)
        lap("composite", t)
        emit(4, 4, "composite")
        return DraftResult(image=image, labels=labels, full_labels=full, region_source=region_source,
                           match_source=match_source, matches=matches, strength=float(strength),
                           preserve_colour=params.preserve_colour, seconds=time.perf_counter() - start,
                           timings=timings,
                           package_version=networks.package_version,
                           reference_vectors="region" if any(region is not None for _, region in styles) else "whole",
                           unused_references=unused)

    def _working_image(self, content: Image.Image, content_key: str, size: int) -> tuple[np.ndarray, np.ndarray]:
        cached = self._working.get((content_key, size))
        if cached is None:
            resized = np.asarray(content.resize(working_size(*content.size, size), Image.BICUBIC))
            cached = self._working.put((content_key, size), (resized, comp.gray_guide(resized)))
        return cached

    def _quick_match(self, work, full, content_key, size, labels_key, references, ref_keys, ref_vectors,
                     params: DraftParams) -> QuickMatching:
        quick = params.quick_match
        key = (content_key, size, labels_key, tuple(ref_keys), quick)
        matching = self._quick_matches.get(key)
        if matching is None:
            smalls = [_thumbnail(self._references, ref, ref_key, quick.reference_pixels)
                      for ref, ref_key in zip(references, ref_keys)]
            matching = self._quick_matches.put(key, quick_matches(
                work, full, smalls, ref_vectors,
                lambda crop: self.networks.predict(predictor_input(crop, centre_crop=False)), quick))
        return matching

    def _region_source(self, reference: Image.Image, ref_key: str, pixels: int) -> np.ndarray:
        return _thumbnail(self._region_sources, reference, ref_key, pixels)

    def _pass(self, work, content_key, size, ref_key, ref_vector, own_vector, strength) -> np.ndarray:
        key = (content_key, size, ref_key, round(float(strength), 4))
        stylised = self._passes.get(key)
        if stylised is None:
            vector = ref_vector if own_vector is None else strength * ref_vector + (1.0 - strength) * own_vector
            stylised = self._passes.put(key, self.networks.transform(work.astype(np.float32) / 255.0, vector))
        return stylised


def _thumbnail(cache: _Lru, image: Image.Image, image_key: str, side: int) -> np.ndarray:
    """A uint8 copy of `image` with its long side at most `side`, kept in `cache`."""
    small = cache.get((image_key, side))
    if small is None:
        copy = image.copy()
        copy.thumbnail((side, side), Image.BILINEAR)
        small = cache.put((image_key, side), np.asarray(copy))
    return small


def _rgb(image: Image.Image) -> Image.Image:
    return image if image.mode == "RGB" else image.convert("RGB")


def _check_arguments(references, labels, assignment, strength: float, size: int) -> None:
    if not references:
        raise InvalidRequest("A draft needs at least one reference image")
    if not 0.0 <= strength <= 1.0:
        raise InvalidRequest(f"Strength must be between 0 and 1, got {strength}")
    if not (DRAFT_MIN_SIZE <= size <= DRAFT_MAX_SIZE and size % SIZE_MULTIPLE == 0):
        raise InvalidRequest(f"Draft size must be a multiple of {SIZE_MULTIPLE} from {DRAFT_MIN_SIZE} to "
                             f"{DRAFT_MAX_SIZE}, got {size}")
    if labels is not None:
        check_labels(labels)
    if assignment is not None and labels is None:
        raise InvalidRequest("A region assignment needs the region labels it refers to")


def _given_matches(labels: np.ndarray, assignment: Mapping[int, int | RegionMatch],
                   n_refs: int) -> dict[int, RegionMatch]:
    """The caller's (stage 2) matches for every region of `labels`."""
    regions = [int(r) for r in np.unique(labels)]
    missing = [r for r in regions if r not in assignment]
    if missing:
        raise InvalidRequest(f"The region assignment lacks regions {missing}")
    matches = {}
    for region in regions:
        given = assignment[region]
        match = given if isinstance(given, RegionMatch) else RegionMatch(region, int(given), None, None)
        _check_reference(match.style_index, n_refs)
        matches[region] = match
    return matches


def _check_reference(index: int, n_refs: int) -> None:
    if not 0 <= index < n_refs:
        raise InvalidRequest(f"Reference {index} does not exist (references count from 0; there are {n_refs})")
