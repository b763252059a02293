"""Stage 2: clustered region matching (SPEC "Stage 2").

Each content region is scored against every region of every reference with
`S = w_stat * S_stat + w_sem * S_sem + w_pos * S_pos` and takes the best pair; the artist's pins override.
Every pair's scores are kept in the MatchTable so the GUI can show the runner-ups.

- S_stat: cosine of descriptors from an untrained, seeded transformer over the region's raw F_mix vectors.
- S_sem: cosine of the mean DINOv2 patch token over the 32x32 blocks the region covers.
- S_pos: IoU of the two regions' enclosing circles, each in its picture's unit square (any aspect).
"""
from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from functools import lru_cache
from typing import Iterable, Sequence

import numpy as np
import torch
from torch import nn

from ..errors import InvalidRequest
from ..params import LATENT_FACTOR, MatchParams
from ..types import Analysis, MatchTable, PairScore, Pin, RegionMatch
from .pins import apply_pins


class _ResidualBlock(nn.Module):
    """A pre-LayerNorm transformer block. Attribute order = the reference's, so seeded weights are identical."""

    def __init__(self, width: int, heads: int, mlp_ratio: int):
        super().__init__()
        self.ln_1 = nn.LayerNorm(width)
        self.attn = nn.MultiheadAttention(width, heads)
        self.ln_2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(OrderedDict([
            ("c_fc", nn.Linear(width, width * mlp_ratio)),
            ("gelu", nn.GELU()),
            ("c_proj", nn.Linear(width * mlp_ratio, width)),
        ]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.ln_1(x)
        x = x + self.attn(y, y, y, need_weights=False)[0]
        return x + self.mlp(self.ln_2(x))


class StatTransformer(nn.Module):
    """The untrained S_stat encoder: `layers` blocks over one sequence of tokens (L, 1, width), no positions.

    State-dict names (`resblocks.<i>.ln_1...`) are the reference's, so its weights file loads as is.
    """

    def __init__(self, width: int, layers: int, heads: int, mlp_ratio: int):
        super().__init__()
        self.resblocks = nn.Sequential(*[_ResidualBlock(width, heads, mlp_ratio) for _ in range(layers)])

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """(n, width) region tokens -> (n, width) outputs."""
        return self.resblocks(tokens[:, None, :])[:, 0, :]


@lru_cache(maxsize=4)
def _build_stat_transformer(seed: int, width: int, layers: int, heads: int, mlp_ratio: int) -> StatTransformer:
    # fork_rng: the seed must give the reference's weights without disturbing the caller's global generator.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = StatTransformer(width, layers, heads, mlp_ratio)
    return model.float().eval().requires_grad_(False)


def stat_transformer(width: int, params: MatchParams = MatchParams()) -> StatTransformer:
    """The seeded, untrained transformer for F_mix features of `width` channels (fp32, CPU, cached per process).

    Built right after `torch.manual_seed(params.seed)` with PyTorch's default initialisation, as the reference does;
    one instance serves the content and all references, so their descriptors live in the same random space.
    """
    return _build_stat_transformer(params.seed, width, params.stat_layers, params.stat_heads, params.stat_mlp_ratio)


@dataclass(frozen=True)
class RegionGeometry:
    """Where a region lies: its cell count, enclosing circle, and the DINOv2 tokens it keeps.

    centre is the mean (row, col) of its cells and radius the largest distance from it, in cells (the reference's
    numbers). unit_radius is the radius in the picture's unit square (rows / h, cols / w, each axis 0..1), where
    `unit_centre` lies, so a tall and a wide picture compare fairly (`position_iou`). kept_tokens are row-major token
    indices whose image block holds more than the threshold of region pixels.
    """

    region: int
    pixels: int
    centre: tuple[float, float]
    radius: float
    unit_radius: float
    grid: tuple[int, int]  # (h, w) of the label map
    kept_tokens: np.ndarray

    @property
    def unit_centre(self) -> tuple[float, float]:
        """The centre in the unit square (a cell's centre at (row + 0.5) / h, (col + 0.5) / w)."""
        return tuple((c + 0.5) / side for c, side in zip(self.centre, self.grid))


def enclosing_circle(rows: np.ndarray, cols: np.ndarray) -> tuple[tuple[float, float], float]:
    """The mean point of (rows, cols) and the largest distance from it."""
    centre = (float(rows.mean()), float(cols.mean()))
    return centre, float(np.sqrt((rows - centre[0]) ** 2 + (cols - centre[1]) ** 2).max())


def region_geometry(labels: np.ndarray, region: int, grid: tuple[int, int] = (16, 16),
                    keep_threshold: int = 10) -> RegionGeometry:
    """Geometry of `region` in a (h, w) label map; the mask is nearest-upsampled to the working size in pixels
    (LATENT_FACTOR per cell) and cut into `grid` = (rows, cols) token blocks, as the reference compares it with
    DINOv2's patch grid."""
    mask = labels == region
    rows, cols = np.nonzero(mask)
    if rows.size == 0:
        raise InvalidRequest(f"Region {region} does not occur in the label map")
    height, width = mask.shape
    centre, radius = enclosing_circle(rows, cols)
    _, unit_radius = enclosing_circle(rows / height, cols / width)
    return RegionGeometry(int(region), int(rows.size), centre, radius, unit_radius, (height, width),
                          kept_token_indices(mask, grid, keep_threshold))


def kept_token_indices(mask: np.ndarray, grid: tuple[int, int], keep_threshold: int) -> np.ndarray:
    """Row-major indices of the `grid` = (rows, cols) image blocks with more than `keep_threshold` region pixels, the
    (h, w) mask taken at the working size in pixels (LATENT_FACTOR per cell)."""
    height, width = mask.shape
    rows, cols = grid
    if (height * LATENT_FACTOR) % rows or (width * LATENT_FACTOR) % cols:
        raise InvalidRequest(f"A {height}x{width} label map at {LATENT_FACTOR} px per cell cannot be cut into "
                             f"{rows}x{cols} token blocks")
    up = np.repeat(np.repeat(mask, LATENT_FACTOR, axis=0), LATENT_FACTOR, axis=1)
    block_h, block_w = height * LATENT_FACTOR // rows, width * LATENT_FACTOR // cols
    counts = up.reshape(rows, block_h, cols, block_w).sum(axis=(1, 3))
    return np.flatnonzero(counts.reshape(-1) > keep_threshold)


def token_grid_of(n_tokens: int, shape: tuple[int, int]) -> tuple[int, int]:
    """The (rows, cols) grid of `n_tokens` patch tokens covering a picture with the label map's `shape` (h, w).

    The tokens cover the same picture as the regions (whole, or the reference's centre crop of a square picture),
    so the grid has the label map's aspect: rows : cols = h : w and rows * cols = n_tokens.
    """
    height, width = shape
    divisor = math.gcd(height, width)
    tall, wide = height // divisor, width // divisor
    scale = math.isqrt(n_tokens // (tall * wide)) if n_tokens % (tall * wide) == 0 else 0
    if scale == 0 or scale * scale * tall * wide != n_tokens:
        raise InvalidRequest(f"{n_tokens} DINOv2 patch tokens do not form a grid with the {height}x{width} label "
                             f"map's aspect", hint="Use the 'aligned' DINOv2 alignment for pictures that are not square.")
    return tall * scale, wide * scale


def circle_iou(centre_a: tuple[float, float], radius_a: float, centre_b: tuple[float, float],
               radius_b: float) -> float:
    """Exact intersection-over-union of two discs (lens area for partial overlap)."""
    d = math.dist(centre_a, centre_b)
    ra, rb = radius_a, radius_b
    area_a, area_b = math.pi * ra * ra, math.pi * rb * rb
    if d >= ra + rb:
        inter = 0.0
    elif d <= abs(ra - rb):
        inter = math.pi * min(ra, rb) ** 2
    else:
        cos_a = max(-1.0, min(1.0, (d * d + ra * ra - rb * rb) / (2 * d * ra)))
        cos_b = max(-1.0, min(1.0, (d * d + rb * rb - ra * ra) / (2 * d * rb)))
        kite = 0.5 * math.sqrt(max(0.0, (-d + ra + rb) * (d + ra - rb) * (d - ra + rb) * (d + ra + rb)))
        inter = ra * ra * math.acos(cos_a) + rb * rb * math.acos(cos_b) - kite
    union = area_a + area_b - inter
    return inter / union if union > 0 else 0.0


def position_iou(a: RegionGeometry, b: RegionGeometry) -> float:
    """S_pos: the IoU of two regions' enclosing circles, each in its picture's unit square.

    The centres' offset is taken per axis in cells scaled by the side when both maps share that side (exact, so on
    the reference's 64 x 64 maps S_pos is bit for bit the IoU in cells), else between the unit-square centres.
    """
    offset = tuple((ca - cb) / sa if sa == sb else (ca + 0.5) / sa - (cb + 0.5) / sb
                   for ca, cb, sa, sb in zip(a.centre, b.centre, a.grid, b.grid))
    return circle_iou(offset, a.unit_radius, (0.0, 0.0), b.unit_radius)


def cosine(a: np.ndarray, b: np.ndarray, eps: float = 1e-8) -> float:
    """Cosine similarity in float64; 0 (not NaN) when either vector is zero."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    norm = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float(a @ b) / max(norm, eps)


def stat_descriptor(model: StatTransformer, fmix: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """[mean of outputs over the region || per-channel unbiased variance over ALL grid positions of the output
    map with zeros outside the region, / n] (the reference's quirk, kept as the default). fmix: (C, H, W)."""
    channels = fmix.shape[0]
    flat = torch.from_numpy(np.ascontiguousarray(fmix, dtype=np.float32).reshape(channels, -1).T)
    keep = torch.from_numpy(mask.reshape(-1))
    n = int(keep.sum())
    with torch.inference_mode():
        out = model(flat[keep])
        full = torch.zeros_like(flat)
        full[keep] = out
        desc = torch.cat([out.mean(dim=0), full.var(dim=0, correction=1) / n])
    return desc.numpy()


def sem_descriptor(tokens: np.ndarray, kept: np.ndarray) -> np.ndarray | None:
    """Mean of the kept DINOv2 tokens, or None when the region keeps none."""
    if kept.size == 0:
        return None
    return torch.from_numpy(np.ascontiguousarray(tokens[kept], dtype=np.float32)).mean(dim=0).numpy()


@dataclass(frozen=True)
class RegionDescriptor:
    """Everything stage 2 needs to know about one region (also what the parity test compares)."""

    geometry: RegionGeometry
    stat: np.ndarray
    sem: np.ndarray | None


def describe_regions(analysis: Analysis, tokens: np.ndarray, params: MatchParams,
                     model: StatTransformer | None = None) -> dict[int, RegionDescriptor]:
    """Descriptors of every region of one image, ascending id. tokens: (T, D) DINOv2 patch tokens, no CLS, row-major
    over a grid with the label map's aspect (`token_grid_of`)."""
    grid = token_grid_of(tokens.shape[0], analysis.labels.shape)
    if model is None:
        model = stat_transformer(analysis.fmix.shape[0], params)
    result = {}
    for region in analysis.region_ids:
        geometry = region_geometry(analysis.labels, region, grid, params.token_keep_threshold)
        result[region] = RegionDescriptor(geometry, stat_descriptor(model, analysis.fmix, analysis.labels == region),
                                          sem_descriptor(tokens, geometry.kept_tokens))
    return result


def score_pair(content: RegionDescriptor, style: RegionDescriptor, params: MatchParams) -> tuple[float, ...]:
    """(S_stat, S_sem, S_pos, S) of one candidate pair."""
    s_stat = cosine(content.stat, style.stat)
    s_sem = 0.0 if content.sem is None or style.sem is None else cosine(content.sem, style.sem)
    s_pos = position_iou(content.geometry, style.geometry)
    score = params.stat_weight * s_stat + params.sem_weight * s_sem + params.pos_weight * s_pos
    return s_stat, s_sem, s_pos, score


def match_regions(content: Analysis, content_tokens: np.ndarray, references: Sequence[Analysis],
                  reference_tokens: Sequence[np.ndarray], params: MatchParams = MatchParams(),
                  pins: Iterable[Pin] = ()) -> MatchTable:
    """Score every (content region, reference, reference region) pair and pick each content region's best.

    Candidates are visited in reference order, then ascending region id; a later pair replaces the best only
    when strictly greater, so the first best wins ties. Many content regions may share one reference region.
    """
    if not references:
        raise InvalidRequest("Matching needs at least one reference image")
    if len(references) != len(reference_tokens):
        raise InvalidRequest(f"{len(references)} references but {len(reference_tokens)} DINOv2 token arrays")
    widths = {a.fmix.shape[0] for a in (content, *references)}
    if len(widths) != 1:
        raise InvalidRequest(f"F_mix widths differ between images ({sorted(widths)}): analyse them with one model")
    token_shapes = {np.shape(t)[1:] for t in (content_tokens, *reference_tokens)}
    if len(token_shapes) != 1:
        raise InvalidRequest(f"DINOv2 token widths differ between images ({sorted(token_shapes)}): use one model")
    model = stat_transformer(widths.pop(), params)
    content_desc = describe_regions(content, content_tokens, params, model)
    style_descs = [describe_regions(ref, tok, params, model) for ref, tok in zip(references, reference_tokens)]
    pairs: list[PairScore] = []
    matches: dict[int, RegionMatch] = {}
    for c_id, c_desc in content_desc.items():
        best: PairScore | None = None
        for style_index, descs in enumerate(style_descs):
            for s_id, s_desc in descs.items():
                pair = PairScore(c_id, style_index, s_id, *score_pair(c_desc, s_desc, params))
                pairs.append(pair)
                if best is None or pair.score > best.score:
                    best = pair
        matches[c_id] = RegionMatch(c_id, best.style_index, best.style_region, best.score)
    return apply_pins(MatchTable(pairs, matches, params), pins)
