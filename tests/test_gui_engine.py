"""The window on the real Engine with the tiny random-weight models: the draft moves to the method's regions
(labelled as random weights) and follows a pin; a run previews, completes and shows its result (labelled as random
weights); a cancelled run stops within a step and leaves the window responsive."""
from __future__ import annotations

import dataclasses

import pytest

from engine.draft import draft_available
from engine.params import Stage1Params
from gui.model.session import PinTarget

from tests.test_gui_support import make_window, wait_idle, write_image  # noqa: F401 (fixture)

pytest.importorskip("pytestqt")


@pytest.mark.slow
def test_real_engine_run_previews_completes_and_cancels(make_window, qtbot, tiny_model_source, tmp_path):
    from engine.api import Engine

    engine = Engine(tiny_model_source, device="cpu", precision="fp32", cache_dir=tmp_path / "cache")
    window = make_window(engine)
    # Cheaper clustering than SPEC's (mechanics only: the same params reach analyses, matching and the run).
    window.controller.stage1 = dataclasses.replace(Stage1Params(), pca_components=8, k_max=4, kmeans_restarts=2,
                                                   inversion_steps=4)
    window.controller.session.random_weights = True  # as the App sets it from the manifest for these models
    window.controller.add_references([write_image(tmp_path / "ref.png", size=64, seed=1)])
    window.controller.open_content(write_image(tmp_path / "photo.png", size=64, seed=2))
    qtbot.waitUntil(lambda: window.session.match_table is not None or window.session.error is not None,
                    timeout=300_000)
    assert window.session.error is None, window.session.error
    assert window.content_panel.view.labels is not None

    if hasattr(engine, "draft") and draft_available()[0]:  # the draft on the method's regions, then a pin
        qtbot.waitUntil(lambda: window.session.draft is not None and window.session.draft.region_source == "method"
                        and not window.session.drafting, timeout=60_000)
        assert "RANDOM-WEIGHT" in window.draft_panel.view.note
        region = window.session.analysis.region_ids[0]
        window.session.pin(region, PinTarget(window.gallery.references[0].id))
        qtbot.waitUntil(lambda: window.session.draft.matches[region].pinned, timeout=60_000)

    queue = window.controller.queue
    previews = []
    window.session.preview_changed.connect(lambda p: previews.append(p))
    window.session.steps = 3
    with qtbot.waitSignal(queue.done, timeout=300_000, check_params_cb=lambda job, _: job.kind == "transfer"):
        window.controller.run()
    assert len([p for p in previews if p is not None]) >= 2
    record = window.session.result
    assert record is not None and not record.cancelled and record.steps_done == 3
    assert window.result_panel.compare.after is not None
    assert "RANDOM-WEIGHT" in window.result_panel.compare.note

    window.session.steps = 60
    window.controller.run()
    qtbot.waitUntil(lambda: window.session.progress[0] >= 1 and window.session.running, timeout=120_000)
    with qtbot.waitSignal(queue.cancelled, timeout=120_000), qtbot.assertNotEmitted(queue.done):
        window.cancel_action.trigger()
    assert not window.session.running and window.session.error is None
    assert window.session.result.cancelled and window.session.result.steps_done < 60
    window.session.opacity = 31
    assert window.content_panel.opacity_slider.value() == 31
    wait_idle(qtbot, window)
