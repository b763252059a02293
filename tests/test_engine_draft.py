"""`Engine.draft` and `main.py draft`: the method's regions and matches when its models are here, quick regions
(labelled so) when they are not. Tiny random-weight models; the draft itself runs the real ONNX networks at 128 px."""
from __future__ import annotations

import json
import threading

import numpy as np
import pytest
from PIL import Image

import main
from engine.api import Engine
from engine.draft import DraftUnavailable, Drafter, onnx_models
from engine.errors import Cancelled, ModelMissing, StyleGalleryError
from engine.params import DraftParams, ModelSource
from engine.types import DraftRequest, ImageRef, Pin, RegionMatch
from tests.test_cli_run import WORKING_SIZE, engine_args
from tests.test_draft_engine import COOL, WARM, requires_draft, synthetic_painting, synthetic_photo

SIZE = 128
PARAMS = DraftParams(size=SIZE)


def refs(sample_images) -> tuple[ImageRef, list[ImageRef]]:
    return ImageRef(sample_images["content"]), [ImageRef(sample_images["ref0"]), ImageRef(sample_images["ref1"])]


def request(content: ImageRef, references: list[ImageRef], **fields) -> DraftRequest:
    """A draft request at the tests' small size."""
    return DraftRequest(content, references, draft=PARAMS, **fields)


@pytest.fixture
def no_models_engine(tmp_path, tiny_model_source) -> Engine:
    """An engine whose SD model is a folder that does not exist (a first start before any download)."""
    source = ModelSource(sd=str(tmp_path / "no_sd_here"), dinov2=tiny_model_source.dinov2,
                         depth=tiny_model_source.depth, offline=True)
    return Engine(source, device="cpu", precision="fp32", cache_dir=tmp_path / "cache")


@requires_draft
def test_method_draft_previews_the_full_runs_assignment(tiny_engine, sample_images):
    content, references = refs(sample_images)
    assert tiny_engine.method_available()
    result = tiny_engine.draft(request(content, references))
    assert (result.region_source, result.match_source) == ("method", "method")
    np.testing.assert_array_equal(result.labels, tiny_engine.analyze(content).labels)
    assert result.matches == tiny_engine.match(content, references).matches
    assert set(np.unique(result.full_labels)) == set(np.unique(result.labels))
    assert result.image.shape == (SIZE, SIZE, 3)
    # stage 2 matches reference regions, so the passes use those regions' own style vectors
    assert result.reference_vectors == "region"
    assert result.metadata()["matches"]["reference_vectors"] == "region"


@requires_draft
def test_pin_changes_the_draft_without_a_new_analysis(tiny_engine, sample_images, monkeypatch):
    content, references = refs(sample_images)
    before = tiny_engine.draft(request(content, references))
    region, match = next(iter(before.matches.items()))
    pin = Pin(region, 1 - match.style_index)

    def no_stage_work(*args, **kwargs):
        raise AssertionError("a pin change re-ran stage 1/2")

    expected = tiny_engine.match(content, references, pins=[pin]).matches
    monkeypatch.setattr(tiny_engine, "_match", no_stage_work)
    after = tiny_engine.draft(request(content, references, pins=[pin]))
    assert after.matches == expected and after.matches[region].pinned
    changed = np.abs(after.image.astype(int) - before.image.astype(int)).max(-1) > 0
    assert changed[after.full_labels == region].mean() > 0.5


@requires_draft
def test_bad_pin_on_method_regions_is_an_invalid_request(tiny_engine, sample_images):
    content, references = refs(sample_images)
    with pytest.raises(StyleGalleryError, match="region 99"):
        tiny_engine.draft(request(content, references, pins=[Pin(99, 0)]))


@requires_draft
def test_without_sd_auto_falls_back_to_quick_regions(no_models_engine, sample_images):
    content, references = refs(sample_images)
    assert not no_models_engine.method_available()
    result = no_models_engine.draft(request(content, references, pins=[Pin(1, 1)]))
    assert (result.region_source, result.match_source) == ("quick", "quick")
    assert result.matches[1].style_index == 1 and result.matches[1].pinned
    assert result.reference_vectors == "whole"
    with pytest.raises(ModelMissing):
        no_models_engine.draft(request(content, references, regions="method"))


@requires_draft
def test_quick_regions_on_request_even_with_the_models(tiny_engine, sample_images):
    content, references = refs(sample_images)
    result = tiny_engine.draft(request(content, references, regions="quick"))
    assert result.region_source == "quick"


def test_missing_extra_fails_before_any_analysis(tiny_model_source, sample_images, tmp_path, monkeypatch):
    def absent(name):
        raise onnx_models.metadata.PackageNotFoundError(name)

    engine = Engine(tiny_model_source, device="cpu", cache_dir=tmp_path)
    monkeypatch.setattr(onnx_models.metadata, "distribution", absent)
    monkeypatch.setattr(engine, "_match", lambda *a, **k: pytest.fail("analysed for a draft that cannot be made"))
    with pytest.raises(DraftUnavailable) as info:
        engine.draft(request(*refs(sample_images)))
    assert isinstance(info.value, StyleGalleryError)


@requires_draft
def test_reference_region_pin_drafts_with_that_regions_style(tmp_path):
    """A reference whose left half is warm stripes and right half cool: pinning its left region must draft
    warm, its right region cool (whole-reference vectors would give both the same mixture)."""
    warm, cool = np.asarray(synthetic_painting(WARM)), np.asarray(synthetic_painting(COOL, period=12, seed=1))
    split = np.concatenate([warm[:, :64], cool[:, 64:]], axis=1)
    halves = np.ones((64, 64), np.int64)
    halves[:, 32:] = 2
    drafter = Drafter(cache_dir=tmp_path)
    photo, reference = synthetic_photo(), Image.fromarray(split)
    whole = np.ones((8, 8), np.int64)

    def draft_by(region: int) -> np.ndarray:
        result = drafter.draft(photo, [reference], PARAMS, labels=whole,
                               assignment={1: RegionMatch(1, 0, region, None)}, reference_labels=[halves])
        assert result.reference_vectors == "region"
        return result.image.reshape(-1, 3).mean(0)

    left, right = draft_by(1), draft_by(2)
    # warm: red over blue; cool: blue over red
    assert left[0] - left[2] > right[0] - right[2] + 20


def draft_cli(sample_images, out, *extra: str) -> int:
    return main.main(["draft", "--content", str(sample_images["content"]), "--style", str(sample_images["ref0"]),
                      str(sample_images["ref1"]), "--size", str(SIZE), "--out", str(out), *extra])


@requires_draft
def test_cli_drafts_on_method_regions_with_the_models(tiny_model_source, tiny_cache_dir, sample_images, tmp_path,
                                                      capsys):
    out = tmp_path / "method.png"
    assert draft_cli(sample_images, out, "--pin", "1=0", *engine_args(tiny_model_source, tiny_cache_dir)) == 0
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["regions"]["source"] == "method" and meta["matches"]["source"] == "method"
    assert meta["regions"]["label_shape"] == [WORKING_SIZE // 8] * 2  # a square photo at the working size
    assert meta["matches"]["by_region"]["1"]["pinned"] and meta["matches"]["by_region"]["1"]["reference"] == 0
    assert capsys.readouterr().out.startswith("region source: method;")


@requires_draft
def test_cli_falls_back_to_quick_regions_and_says_so(tiny_model_source, tiny_cache_dir, sample_images, tmp_path,
                                                     capsys):
    out = tmp_path / "quick.png"
    args = engine_args(tiny_model_source, tiny_cache_dir)
    args[args.index("--model") + 1] = str(tmp_path / "no_sd_here")
    assert draft_cli(sample_images, out, *args) == 0
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["regions"]["source"] == "quick" and meta["matches"]["source"] == "quick"
    printed = capsys.readouterr()
    assert printed.out.startswith("region source: quick;") and "quick regions" in printed.out
    assert "--regions method" in printed.err


def test_cli_refuses_labels_with_regions(sample_images, tmp_path, capsys):
    np.save(tmp_path / "labels.npy", np.ones((64, 64), np.int64))
    with pytest.raises(SystemExit) as exit_info:
        draft_cli(sample_images, tmp_path / "x.png", "--labels", str(tmp_path / "labels.npy"), "--regions", "quick")
    assert exit_info.value.code == 2 and "--labels" in capsys.readouterr().err


@requires_draft
def test_cancelled_draft_raises_cancelled(no_models_engine, sample_images):
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        no_models_engine.draft(request(*refs(sample_images)), cancel=cancel)
