"""The gallery's unused references are analysed in the background (tiny models): the photo's own references go
first, the pass can be stopped, and the next start resumes where it stopped; a draft runs beside an analysis."""
from __future__ import annotations

import dataclasses
import threading

import pytest

from engine.draft import draft_available
from engine.params import Stage1Params

from tests.test_gui_support import write_image

pytest.importorskip("pytestqt")

CHEAP = dataclasses.replace(Stage1Params(), image_size=128, inversion_steps=3, pca_components=8, k_max=3,
                            kmeans_restarts=1, use_depth=False)


@pytest.fixture
def engine(tiny_model_source, tmp_path):
    from engine.api import Engine

    return Engine(tiny_model_source, device="cpu", precision="fp32", cache_dir=tmp_path / "cache")


def make_controller(engine, data, stage1=CHEAP):
    """A controller on the data folder `data` (its gallery and sessions), as the window builds it at start."""
    from gui.controller import Controller
    from gui.model.gallery import Gallery
    from gui.model.session import Session

    controller = Controller(Session(data / "sessions"), Gallery(data / "gallery"), engine, "tiny", True)
    controller.stage1 = stage1
    return controller


def count_unet_calls(engine) -> list[int]:
    calls: list[int] = []
    engine.models.sd.unet.register_forward_hook(lambda *_: calls.append(1))
    return calls


def test_background_analysis_stops_and_resumes_at_next_start(qtbot, engine, tmp_path):
    data = tmp_path / "data"
    first = make_controller(engine, data)
    ids, _ = first.gallery.add_paths([write_image(tmp_path / f"ref{i}.png", size=64, seed=i) for i in range(3)])
    for ref_id in ids[1:]:
        first.gallery.set_enabled(ref_id, False)  # only the first takes part: the others are background work
    calls = count_unet_calls(engine)
    progress = []
    first.gallery.background_progress_changed.connect(progress.append)

    first.start()
    qtbot.waitUntil(lambda: first.gallery.background_progress == (1, 2), timeout=300_000)
    first.stop_gallery_analysis()
    qtbot.waitUntil(lambda: not first.queue.is_busy(), timeout=300_000)
    assert first.gallery.background_progress is None and progress[-1] is None
    assert first.gallery.analysis(ids[0]) is not None  # the photo's reference, in the foreground
    analysed = [i for i in ids[1:] if first.gallery.analysis(i) is not None]
    assert len(analysed) == 1 and first.gallery_analysis.pending == []
    assert len(calls) < 3 * CHEAP.inversion_steps  # the third reference was never (fully) inverted
    first.shutdown()

    calls.clear()
    again = make_controller(engine, data)  # the next start, on the same gallery and cache
    again.start()
    qtbot.waitUntil(lambda: all(again.gallery.analysis(i) is not None for i in ids), timeout=300_000)
    qtbot.waitUntil(lambda: again.gallery.background_progress is None, timeout=60_000)
    assert len(calls) == CHEAP.inversion_steps  # only the reference not done before; the others from the cache
    again.shutdown()


def test_a_reference_that_joins_the_run_goes_first(qtbot, engine, tmp_path):
    controller = make_controller(engine, tmp_path / "data")
    ids, _ = controller.gallery.add_paths([write_image(tmp_path / f"ref{i}.png", size=64, seed=i) for i in range(3)])
    for ref_id in ids:
        controller.gallery.set_enabled(ref_id, False)
    order = []
    controller.queue.submitted.connect(lambda job: order.append(job.key) if job.kind == "analyze_gallery" else None)
    controller.start()
    qtbot.waitUntil(lambda: bool(order), timeout=120_000)
    controller.gallery.set_enabled(ids[2], True)  # checked while the first background analysis runs
    qtbot.waitUntil(lambda: controller.gallery.background_progress is None, timeout=300_000)
    assert order == [ids[0], ids[2], ids[1]]
    controller.shutdown()


@pytest.mark.skipif(not draft_available()[0], reason="draft extra not installed")
def test_a_draft_finishes_while_an_analysis_runs(qtbot, engine, tmp_path):
    controller = make_controller(engine, tmp_path / "data")
    gate, inside = threading.Event(), threading.Event()

    def held(*_):  # the analysis stays inside its first UNet call until the draft is done
        inside.set()
        assert gate.wait(120)

    controller.add_references([write_image(tmp_path / "ref.png", size=64, seed=1)])
    handle = engine.models.sd.unet.register_forward_hook(held)
    try:
        controller.open_content(write_image(tmp_path / "photo.png", size=64, seed=2))
        qtbot.waitUntil(inside.is_set, timeout=120_000)
        assert controller.drafts.draft_now() is not None
        qtbot.waitUntil(lambda: controller.session.draft is not None, timeout=120_000)
        assert controller.queue.is_busy()  # the analysis is still inside its UNet call
    finally:
        gate.set()
        handle.remove()
        controller.shutdown()  # even when an assertion failed: a running QThread at exit aborts the process
