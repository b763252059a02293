"""Dropping a saved result onto a fresh window (new settings, no session memory, the same gallery) restores the
photo, the references, pins, region edit and every parameter: the next run submits the original TransferRequest.
A reference not in the gallery is named in the banner; a photo not found is asked for. FakeEngine, offscreen Qt."""
from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pytest
from PySide6.QtWidgets import QFileDialog

from engine.images import load_image, pixel_sha256
from engine.params import OutputParams
from gui.model.session import PinTarget, Session
from tests.test_gui_support import make_window, wait_idle, write_image  # noqa: F401 (fixture)
from tests.test_gui_window import drop_files

pytest.importorskip("pytestqt")


@pytest.fixture
def saved(make_window, qtbot, tmp_path):
    """A run made in one window with everything a recipe keeps off its defaults; the result saved beside the photo.
    Returns (original TransferRequest, result PNG, photo)."""
    window = make_window()
    window.controller.add_references([write_image(tmp_path / "in" / f"ref{i}.png", seed=i) for i in range(3)])
    controller, session, gallery = window.controller, window.session, window.gallery
    controller.stage1 = dataclasses.replace(controller.stage1, size_policy="square", max_side=640)
    controller.output = OutputParams(size="working", upscale="fast")
    photo = write_image(tmp_path / "photos" / "photo.png", size=64, seed=7)
    controller.open_content(photo)
    qtbot.waitUntil(lambda: session.match_table is not None, timeout=20000)
    ids = [r.id for r in gallery.references]
    gallery.set_enabled(ids[0], False)  # in the run by its pin only: listed after the checked ones
    override = np.zeros((64, 64), np.int64)
    override[:8, :8] = 4
    session.edit_regions(override, "Brush")
    automatic = gallery.analysis(ids[2]).labels  # and a reference's map, edited the same way
    ref_override = np.zeros(automatic.shape, np.int64)
    ref_override[-8:, -8:] = 5
    session.edit_regions(ref_override, "Brush", ids[2], automatic)
    session.pin(4, PinTarget(ids[0]))
    session.pin(1, PinTarget(ids[2], 2))
    session.fast_mode = "lcm"
    session.steps, session.lr, session.seed = 3, 0.2, 11
    with qtbot.waitSignal(controller.queue.done, timeout=20000, check_params_cb=lambda job, _: job.kind == "transfer"):
        queued = controller.run()
    original = queued.request
    assert [ref.path for ref in original.references] == [gallery.path(i) for i in (ids[1], ids[2], ids[0])]
    assert np.array_equal(original.references[1].region_edit.override, ref_override)
    out = photo.parent / "photo-stylegallery.png"
    window.save_result_to(out)
    window.close()
    shutil.rmtree(tmp_path / "data" / "sessions")  # no memory of the photo: only the gallery stays
    return original, out, photo


def fresh_window(make_window, tmp_path):
    """A new settings file on the same data folder, every reference checked (the restore must choose)."""
    window = make_window(settings_file=tmp_path / "fresh.ini")
    for ref in window.gallery.references:
        window.gallery.set_enabled(ref.id, True)
    return window


@pytest.mark.parametrize("target, suffix", [("window", ".png"), ("photo", ".json")])
def test_a_dropped_result_restores_the_exact_request(make_window, qtbot, tmp_path, saved, target, suffix):
    original, out, photo = saved
    window = fresh_window(make_window, tmp_path)
    drop_files(window if target == "window" else window.content_panel.view, [out.with_suffix(suffix)])
    assert window.session.content == photo  # found beside the result, by its pixels
    assert window.session.status.startswith("Restored")
    qtbot.waitUntil(lambda: window.session.analysis is not None, timeout=20000)
    wait_idle(qtbot, window)
    ids, request = window.controller.transfer_request()
    assert request == original
    assert request.references[1].region_edit == original.references[1].region_edit  # the reference's edit too
    assert window.session.fast_mode == "lcm" and window.generation_panel.isEnabled()
    assert window.session.messages == ()
    window.session.undo_stack.undo()  # the pins and the edits came as one undo step
    assert window.session.pins == {} and window.session.region_override is None
    assert window.session.reference_overrides == {}
    assert all(ref.region_edit is None for ref in window.controller.transfer_request()[1].references)


def test_a_reference_edit_on_another_grid_is_left_out(make_window, qtbot, tmp_path, saved):
    original, out, photo = saved
    envelope = json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))
    edited = next(ref for ref in envelope["data"]["references"] if ref["region_edit"])
    edited["region_edit"] = {"rows": 2, "cols": 2, "cells": [5, 0, 0, 0]}  # not the reference's 64x64 grid
    out.with_suffix(".json").write_text(json.dumps(envelope), encoding="utf-8")
    window = fresh_window(make_window, tmp_path)
    drop_files(window, [out.with_suffix(".json")])
    qtbot.waitUntil(lambda: window.session.analysis is not None, timeout=20000)
    wait_idle(qtbot, window)
    assert window.session.error.kind == "region_edit_dropped" and "region edit" in window.banner.text()
    _, request = window.controller.transfer_request()
    assert all(ref.region_edit is None for ref in request.references)  # never applied on the wrong cells
    assert request.content == original.content and request.pins == original.pins  # the rest was restored
    drop_files(window, [out.with_suffix(".json")])  # again, the reference analysed now: checked at once
    wait_idle(qtbot, window)
    assert window.session.error.kind == "region_edit_dropped" and "ref2" in window.session.error.message
    assert all(ref.region_edit is None for ref in window.controller.transfer_request()[1].references)
    assert window.session.pins and window.session.region_override is not None


def test_a_missing_reference_is_named_in_the_banner(make_window, qtbot, tmp_path, saved, monkeypatch):
    original, out, photo = saved
    window = fresh_window(make_window, tmp_path)
    gone = window.gallery.references[0]  # "ref0", the pinned one
    window.controller.remove_reference(gone.id)
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *args, **kwargs: (str(out), ""))
    file_menu = window.menuBar().actions()[0].menu()
    next(a for a in file_menu.actions() if a.text().startswith("Open &result")).trigger()
    wait_idle(qtbot, window)
    assert window.session.error.kind == "references_missing" and "ref0" in window.session.error.message
    assert "ref0" in window.banner.text()
    _, request = window.controller.transfer_request()
    assert request.references == original.references[:2]
    assert request.pins == [pin for pin in original.pins if pin.style_index != 2]
    assert request.stage3 == original.stage3 and request.stage1 == original.stage1


def test_a_photo_not_found_is_asked_for(make_window, qtbot, tmp_path, saved):
    original, out, photo = saved
    elsewhere = tmp_path / "elsewhere" / out.name
    elsewhere.parent.mkdir()
    shutil.move(out, elsewhere)
    window = fresh_window(make_window, tmp_path)
    asked = []
    window.restorer.locate_photo = lambda name, folder: asked.append(name)  # the artist cancels the dialog
    drop_files(window, [elsewhere])
    assert asked == ["photo.png"] and window.session.content is None
    assert window.session.error.kind == "photo_missing" and "photo.png" in window.session.error.message
    notes, stage1 = tmp_path / "notes.txt", window.controller.stage1
    notes.write_text("not a photo")
    window.restorer.locate_photo = lambda name, folder: notes  # a wrong file: said, and nothing changed
    drop_files(window, [elsewhere])
    assert window.session.content is None and window.controller.stage1 == stage1
    assert "notes.txt" in window.session.error.message
    window.restorer.locate_photo = lambda name, folder: photo
    drop_files(window, [elsewhere])
    wait_idle(qtbot, window)
    assert window.session.content == photo and window.session.messages == ()  # the earlier problems withdrawn
    assert window.controller.transfer_request()[1] == original



def test_a_photo_opened_before_is_known_where_it_was(qtbot, tmp_path):
    photo = write_image(tmp_path / "photos" / "photo.png", size=64)
    sha = pixel_sha256(load_image(photo))
    first = Session(tmp_path / "sessions")
    first.open(photo, sha)
    assert first.save()
    again = Session(tmp_path / "sessions")
    assert again.known_photo(sha) == photo
    assert again.known_photo("../" + sha) is None  # only a hash names a session folder
    photo.unlink()
    assert again.known_photo(sha) is None  # moved or deleted since: not known any more
