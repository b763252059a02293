"""Any photo, its own shape and size: the size policy, every stage on H x W grids, the result at the photo's size.

Non-square photos (320x512 portrait, 512x320 landscape) made here go through analyze, match, transfer and draft
on the tiny models at a small working size (image_size 128: 128x192 / 192x128, latent grids 24x16 / 16x24).
"""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from PIL import Image

from engine.params import (DraftParams, MatchParams, OutputParams, Stage1Params, Stage3Params, output_size,
                           working_size)
from engine.resample import guided_resample
from engine.stage2.matching import circle_iou, position_iou, region_geometry, token_grid_of
from engine.types import DraftRequest, ImageRef, TransferRequest

SMALL = Stage1Params(image_size=128, inversion_steps=3, k_max=4, kmeans_restarts=2, pca_components=8)
SHORT = Stage3Params(steps=2, preview_every=1)
SHAPES = {"portrait": (320, 512), "landscape": (512, 320)}


def painted(path, size: tuple[int, int], seed: int):
    """A seeded picture of `size` (w, h): a left and a right half of different colour and noise."""
    rng = np.random.default_rng(seed)
    width, height = size
    image = np.empty((height, width, 3))
    image[:, : width // 2] = rng.uniform(40, 215, 3)
    image[:, width // 2:] = rng.uniform(40, 215, 3)
    image += rng.normal(0, 12, image.shape)
    Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(path)
    return path


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("aspect")
    made = {name: painted(folder / f"{name}.png", size, seed) for seed, (name, size) in enumerate(SHAPES.items())}
    made["reference"] = painted(folder / "reference.png", (384, 256), 7)
    return made


# -- the size policy ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("size", [(320, 512), (512, 320), (4000, 3000), (1080, 1920), (6000, 1500), (96, 96)])
def test_aspect_policy_keeps_the_shape_at_the_pixel_budget(size):
    params = Stage1Params()
    width, height = working_size(*size, params)
    assert width % 64 == 0 and height % 64 == 0 and max(width, height) <= params.max_side
    assert (width >= height) == (size[0] >= size[1])
    if max(size) / min(size) < 2:  # not capped by max_side: about 512 x 512 of area, the aspect within rounding
        assert 0.75 < width * height / 512 ** 2 < 1.3
        assert abs(width / height - size[0] / size[1]) <= 64 / min(width, height)


def test_square_policy_is_the_authors_resize_and_a_square_photo_is_the_same_either_way():
    square = Stage1Params(size_policy="square")
    assert working_size(320, 512, square) == working_size(4000, 3000, square) == (512, 512)
    assert working_size(512, 512, Stage1Params()) == (512, 512)


def test_output_size_is_the_photos_capped_never_enlarged():
    working = (384, 640)
    assert output_size((320, 512), working, OutputParams()) == (320, 512)
    assert output_size((3000, 4000), working, OutputParams()) == (1536, 2048)
    assert output_size((3000, 4000), working, OutputParams(size=1000)) == (750, 1000)
    assert output_size((300, 400), working, OutputParams(size=1000)) == (300, 400)
    assert output_size((3000, 4000), working, OutputParams(size="working")) == working


# -- stage 2 geometry on hand-made non-square maps ---------------------------------------------------------------

def wide_map() -> np.ndarray:
    """A 16 x 32 map: region 2 a 4 x 8 block in the top-left corner (rows 0-3, cols 0-7), region 1 the rest."""
    labels = np.ones((16, 32), np.int64)
    labels[0:4, 0:8] = 2
    return labels


def test_geometry_of_a_wide_map_has_known_answers():
    geometry = region_geometry(wide_map(), 2, grid=(4, 8))
    assert geometry.pixels == 32 and geometry.centre == (1.5, 3.5)
    assert geometry.radius == pytest.approx(np.hypot(1.5, 3.5))
    assert geometry.unit_centre == (2 / 16, 4 / 32)
    assert geometry.unit_radius == pytest.approx(np.hypot(1.5 / 16, 3.5 / 32))
    # at 8 px per cell the block is 32 x 64 px: exactly token blocks (0, 0) and (0, 1) of the 4 x 8 grid (32 px)
    assert geometry.kept_tokens.tolist() == [0, 1]


def test_a_wide_map_and_its_transpose_give_transposed_answers():
    wide, tall = wide_map(), wide_map().T
    for region in (1, 2):
        a = region_geometry(wide, region, grid=token_grid_of(32, wide.shape))
        b = region_geometry(tall, region, grid=token_grid_of(32, tall.shape))
        assert b.centre == a.centre[::-1] and b.radius == a.radius
        assert b.unit_centre == a.unit_centre[::-1] and b.unit_radius == a.unit_radius
        rows, cols = token_grid_of(32, wide.shape)
        transposed = sorted(int(c * rows + r) for r, c in (divmod(int(t), cols) for t in a.kept_tokens))
        assert b.kept_tokens.tolist() == transposed


def test_unit_coordinates_let_a_tall_and_a_wide_picture_match_by_position():
    tall = np.ones((32, 16), np.int64)
    tall[0:8, 0:4] = 2  # the top and left quarter of each side, as in the wide map
    wide = np.ones((16, 32), np.int64)
    wide[0:4, 0:8] = 2
    a, b = region_geometry(tall, 2, grid=(8, 4)), region_geometry(wide, 2, grid=(4, 8))
    assert position_iou(a, b) == pytest.approx(1.0)
    assert circle_iou(a.centre, a.radius, b.centre, b.radius) < 0.9  # in cells they would not


def test_token_grid_follows_the_label_maps_aspect():
    assert token_grid_of(256, (64, 64)) == (16, 16)
    assert token_grid_of(16 * 24, (96, 64)) == (24, 16)
    with pytest.raises(Exception, match="aspect"):
        token_grid_of(256, (96, 64))  # the reference's square centre crop on a tall picture


# -- the method end to end on non-square photos --------------------------------------------------------------------

@pytest.mark.parametrize("shape", list(SHAPES))
def test_non_square_photo_through_analyze_match_transfer(tiny_engine, photos, shape, tmp_path):
    from engine.results import save_result

    size = SHAPES[shape]
    width, height = working_size(*size, SMALL)
    grid = (height // 8, width // 8)
    assert grid != grid[::-1]
    analysis = tiny_engine.analyze(ImageRef(photos[shape]), SMALL)
    assert analysis.labels.shape == grid and analysis.working_size == (width, height)
    assert analysis.fmix.shape[1:] == analysis.c15.shape[1:] == analysis.vae_latent.shape[1:] == grid
    references = [ImageRef(photos["reference"])]
    table = tiny_engine.match(ImageRef(photos[shape]), references, stage1=SMALL)
    assert sorted(table.matches) == analysis.region_ids

    request = TransferRequest(content=ImageRef(photos[shape]), references=references, stage1=SMALL, stage3=SHORT,
                              output=OutputParams(upscale="fast"))
    result = tiny_engine.transfer(request)
    assert result.latent.shape == (4, *grid) and result.working_size == (width, height)
    assert result.output_size == size and result.image.shape == (size[1], size[0], 3)
    assert result.upscale == "fast"
    out = save_result(tmp_path / "result.png", request, result, model="tiny")
    with Image.open(out) as saved:
        assert saved.size == size
        meta = json.loads(saved.text["stylegallery"])
    assert (meta["working_size"], meta["output_size"], meta["upscale"]) == ([width, height], list(size), "fast")


def test_requested_output_size_and_aspect(tiny_engine, photos):
    request = TransferRequest(content=ImageRef(photos["portrait"]), references=[ImageRef(photos["reference"])],
                              stage1=SMALL, stage3=SHORT, output=OutputParams(size=300, upscale="fast"))
    result = tiny_engine.transfer(request)
    height, width = result.image.shape[:2]
    assert max(width, height) == 300
    assert abs(width - height * 320 / 512) <= 1


def test_draft_of_a_non_square_photo_uses_the_methods_regions(tiny_engine, photos):
    from engine.draft import DraftUnavailable

    request = DraftRequest(ImageRef(photos["landscape"]), [ImageRef(photos["reference"])], regions="method",
                           stage1=SMALL, draft=DraftParams(size=128))
    try:
        draft = tiny_engine.draft(request)
    except DraftUnavailable:
        pytest.skip("the draft extra is not installed")
    assert draft.region_source == "method"
    width, height = working_size(512, 320, SMALL)
    assert draft.labels.shape == (height // 8, width // 8)
    assert abs(draft.image.shape[1] / draft.image.shape[0] - 512 / 320) < 0.05


# -- the result at the photo's size --------------------------------------------------------------------------------

def test_fast_resample_reaches_the_size_and_keeps_the_small_result():
    rng = np.random.default_rng(0)
    photo = Image.fromarray(rng.integers(0, 255, (300, 200, 3), dtype=np.uint8))
    small = rng.integers(0, 255, (96, 64, 3), dtype=np.uint8)
    large = guided_resample(small, photo, (200, 300))
    assert large.shape == (300, 200, 3) and large.dtype == np.uint8
    # the texture is not smeared: shrunk back, the result is (nearly) the small one
    back = np.asarray(Image.fromarray(large).resize((64, 96), Image.BOX), dtype=np.float64)
    bicubic = np.asarray(Image.fromarray(small).resize((200, 300), Image.BICUBIC).resize((64, 96), Image.BOX),
                         dtype=np.float64)
    assert np.abs(back - small).mean() <= np.abs(bicubic - small).mean() + 2.0
    assert guided_resample(small, photo, (40, 60)).shape == (60, 40, 3)


def test_refine_reaches_the_size_and_its_steps_lower_the_loss(tiny_engine, photos):
    from engine.stage3.refine import Refiner, refine_size
    from engine.stage3.stylize import StyleInputs

    params = OutputParams(upscale="refine", refine_steps=2, refine_lr=0.05)
    stage3 = dataclasses.replace(SHORT, steps=3)
    request = TransferRequest(content=ImageRef(photos["portrait"]), references=[ImageRef(photos["reference"])],
                              stage1=SMALL, stage3=stage3, output=params)
    result = tiny_engine.transfer(request)
    assert result.upscale == "refine" and result.image.shape == (512, 320, 3)
    assert result.steps_done == result.steps_total == stage3.steps + params.refine_steps

    table = result.matches
    content = tiny_engine.analyze(ImageRef(photos["portrait"]), SMALL)
    reference = tiny_engine.analyze(ImageRef(photos["reference"]), SMALL)
    larger = refine_size(content.working_size, (320, 512), params)
    assert larger is not None and larger[0] * larger[1] > content.working_size[0] * content.working_size[1]
    photo = Image.open(photos["portrait"]).convert("RGB")
    inputs = StyleInputs(content.vae_latent, content.labels, content.c15)
    refs = [StyleInputs(reference.vae_latent, reference.labels)]
    sd = tiny_engine.models.sd
    embeds = tiny_engine.models.empty_prompt_embeds()
    refiner = Refiner(sd, embeds, photo, larger, inputs, refs, table.matches, stage3, params)
    z = refiner.start(result.latent)
    assert tuple(z.shape[-2:]) == (larger[1] // 8, larger[0] // 8)
    last = refiner.timesteps[-1]
    before = refiner.loss(z, last).total.item()
    outcome = refiner.run(z)
    after = refiner.loss(torch.from_numpy(outcome.latent)[None], last).total.item()
    assert after < before
    assert outcome.image.shape == (larger[1], larger[0], 3)


def test_square_policy_still_feeds_dinov2_the_centre_crop():
    from engine.stage2.dinov2_tokens import resolved_alignment

    assert resolved_alignment(MatchParams().sem_alignment, "square") == "center_crop"
    assert resolved_alignment(MatchParams().sem_alignment, "aspect") == "aligned"
    assert dataclasses.replace(MatchParams(), sem_alignment="center_crop").sem_alignment == "center_crop"


def test_position_iou_on_square_maps_is_the_iou_in_cells_bit_for_bit():
    rng = np.random.default_rng(3)
    labels = rng.integers(1, 5, (64, 64))
    geometries = [region_geometry(labels, region) for region in range(1, 5)]
    for a in geometries:
        for b in geometries:
            assert position_iou(a, b) == circle_iou(a.centre, a.radius, b.centre, b.radius)


def test_feature_cache_keys_hold_the_working_size(tiny_engine):
    """A 16x24 and a 24x16 latent of the same bytes (and token count) must not share cached features."""
    from engine.stage3.features import FeatureCache, ReferenceFeatures
    from engine.stage3.stylize import prepare_embeds

    sd = tiny_engine.models.sd
    embeds = prepare_embeds(tiny_engine.models.empty_prompt_embeds(), sd.unet.device)
    cache = FeatureCache()
    queries = []
    for shape in ((16, 24), (24, 16)):
        zeros = torch.zeros(1, 4, *shape)
        provider = ReferenceFeatures(sd.unet, embeds, zeros, {0: zeros}, (10, 15), "fp32", "tiny", cache)
        queries.append(provider.at(500.0).content_query[15])
    assert (cache.hits, cache.misses) == (0, 4)
    assert queries[0].shape == queries[1].shape  # same token count: only the key tells the two apart
