"""The Engine facade end to end on the tiny models: a short run, pins, cancel, bad input."""
from __future__ import annotations

import dataclasses
import threading

import numpy as np
import pytest

from engine.errors import ImageUnreadable, InvalidRequest
from engine.params import Stage3Params
from engine.types import ImageRef, Pin, StepEvent, TransferRequest

SHORT = Stage3Params(steps=2, preview_every=1)


def request(images, pins=(), steps: int = 2) -> TransferRequest:
    return TransferRequest(content=ImageRef(images["content"]),
                           references=[ImageRef(images["ref0"]), ImageRef(images["ref1"])], pins=list(pins),
                           stage3=dataclasses.replace(SHORT, steps=steps))


def test_transfer_runs_all_stages(tiny_engine, sample_images):
    events: list[StepEvent] = []
    result = tiny_engine.transfer(request(sample_images), on_event=events.append)
    # the 96 x 96 photo: stage 3 at 512 x 512, the result at the photo's own size (never enlarged past it)
    assert result.image.shape == (96, 96, 3) and result.image.dtype == np.uint8
    assert result.latent.shape == (4, 64, 64) and result.working_size == (512, 512)
    assert result.output_size == (96, 96) and result.upscale == "none"
    assert not result.cancelled and result.steps_done == result.steps_total == 2
    assert [loss.step for loss in result.losses] == [0, 1]
    content = tiny_engine.analyze(ImageRef(sample_images["content"]))
    assert sorted(result.matches.matches) == content.region_ids
    stages = {event.stage for event in events}
    assert {"analyze", "transfer"} <= stages
    previews = [event.preview for event in events if event.stage == "transfer" and event.preview is not None]
    assert previews and previews[0].dtype == np.uint8 and previews[0].shape[-1] == 3


def test_pin_overrides_automatic_match(tiny_engine, sample_images):
    references = [ImageRef(sample_images["ref0"]), ImageRef(sample_images["ref1"])]
    auto = tiny_engine.match(ImageRef(sample_images["content"]), references)
    region = min(auto.matches)
    other = 1 - auto.matches[region].style_index
    pinned = tiny_engine.match(ImageRef(sample_images["content"]), references, pins=[Pin(region, other)])
    assert pinned.matches[region].style_index == other
    assert pinned.matches[region].style_region is None and pinned.matches[region].pinned
    untouched = [r for r in auto.matches if r != region]
    assert all(pinned.matches[r] == auto.matches[r] for r in untouched)


def test_cancel_returns_partial_result(tiny_engine, sample_images):
    cancel = threading.Event()

    def on_event(event: StepEvent) -> None:
        if event.stage == "transfer" and event.step >= 1:
            cancel.set()

    result = tiny_engine.transfer(request(sample_images, steps=5), on_event=on_event, cancel=cancel)
    assert result.cancelled
    assert 1 <= result.steps_done < 5 and result.steps_total == 5
    assert result.image.shape == (96, 96, 3)


def test_no_reference_is_a_clear_error(tiny_engine, sample_images):
    with pytest.raises(InvalidRequest, match="reference"):
        tiny_engine.transfer(TransferRequest(content=ImageRef(sample_images["content"]), references=[]))


def test_unreadable_content_is_a_clear_error(tiny_engine, sample_images, tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(ImageUnreadable, match="broken.png"):
        tiny_engine.transfer(TransferRequest(content=ImageRef(broken), references=[ImageRef(sample_images["ref0"])]))


def test_rerun_after_a_pin_change_reuses_stage3_features(tiny_engine, sample_images):
    cache = tiny_engine.feature_cache
    cache.clear()  # start cold: earlier tests ran the same images
    misses_before = cache.misses
    first = tiny_engine.transfer(request(sample_images))
    first_misses = cache.misses - misses_before
    hits, misses = cache.hits, cache.misses
    region = min(first.matches.matches)
    other = 1 - first.matches.matches[region].style_index
    tiny_engine.transfer(request(sample_images, pins=[Pin(region, other)]))
    assert first_misses > 0
    assert cache.hits > hits  # the content's queries (and any unchanged reference) come back
    assert cache.misses - misses < first_misses  # only what the new pin needs is computed


@pytest.mark.parametrize("broken", ["dinov2", "depth"])
def test_every_model_is_checked_before_the_work(tiny_model_source, sample_images, tmp_path, monkeypatch, broken):
    """A missing or damaged DINOv2 or depth model must stop a run before the SD work, not after it."""
    from engine.api import Engine
    from engine.errors import ModelMissing
    from engine.stage1 import segment

    source = dataclasses.replace(tiny_model_source, **{broken: str(tmp_path / "missing")})
    engine = Engine(source, device="cpu", precision="fp32", cache_dir=tmp_path / "cache")
    encoded = []
    monkeypatch.setattr(segment, "encode_latent", lambda *args: encoded.append(1))
    with pytest.raises(ModelMissing):
        engine.transfer(request(sample_images))
    assert encoded == []
