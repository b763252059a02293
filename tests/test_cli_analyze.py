"""`main.py analyze`: outputs on the tiny random-weight models, and readable errors for bad inputs."""
from __future__ import annotations

import json
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from main import main


def png_header_only(path, width: int, height: int) -> None:
    """A PNG whose header claims width x height (a decompression bomb's header); no real pixel data."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))


def make_bad(tmp_path, kind: str):
    path = tmp_path / f"{kind}.png"
    if kind == "text":
        path.write_text("not an image")
    elif kind == "tiny":
        Image.new("RGB", (1, 1)).save(path)
    elif kind == "bomb":
        png_header_only(path, 20000, 20000)
    return path  # "missing": never written


@pytest.mark.parametrize("kind, words", [("missing", "No image file"), ("text", "text.png is not"),
                                         ("tiny", "1x1"), ("bomb", "too large")])
def test_bad_inputs_exit_with_one_readable_line(tmp_path, capsys, kind, words):
    path = make_bad(tmp_path, kind)
    with pytest.raises(SystemExit) as exit_info:
        main(["analyze", str(path), "--out", str(tmp_path / "out"), "--offline"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("stylegallery: error:") and words in err[-1]
    assert "Traceback" not in "\n".join(err)
    assert not (tmp_path / "out").exists()


def test_analyze_writes_overlay_labels_and_summary(tmp_path, tiny_models_dir, capsys):
    rng = np.random.default_rng(1)
    pixels = np.zeros((80, 100, 3), dtype=np.uint8)
    pixels[:, 50:] = (240, 200, 20)
    pixels[20:60, 10:40] = (20, 40, 200)
    Image.fromarray(np.clip(pixels + rng.integers(0, 30, pixels.shape), 0, 255).astype(np.uint8)).save(
        tmp_path / "photo.png")
    out = tmp_path / "out"
    args = ["analyze", str(tmp_path / "photo.png"), "--out", str(out), "--model", str(tiny_models_dir / "sd15"),
            "--depth-model", str(tiny_models_dir / "depth"), "--dinov2", str(tiny_models_dir / "dinov2"),
            "--offline", "--device", "cpu", "--inversion-steps", "2", "--max-regions", "3",
            "--cache-dir", str(tmp_path / "cache")]
    assert main(args) == 0
    labels = np.load(out / "photo_labels.npy")
    summary = json.loads((out / "photo_regions.json").read_text())
    overlay = Image.open(out / "photo_regions.png")
    # a 100 x 80 photo: the working size keeps its aspect at about 512 x 512 of area (576 x 448, grid 56 x 72)
    assert labels.shape == (56, 72) and overlay.size == (576, 448) and overlay.mode == "RGB"
    assert {r["id"]: r["pixels"] for r in summary["regions"]} == \
        {int(i): int(c) for i, c in zip(*np.unique(labels, return_counts=True))}
    assert sum(r["pixels"] for r in summary["regions"]) == 56 * 72
    assert summary["depth"] is True and summary["chosen_k"] in (2, 3)
    assert "analyze" in capsys.readouterr().err  # the progress bar

    bad_mask = tmp_path / "mask.png"
    Image.new("RGB", (100, 100), (255, 0, 0)).save(bad_mask)
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--mask", str(bad_mask)])
    assert exit_info.value.code == 2
    assert "576x448 or 100x80" in capsys.readouterr().err


@pytest.mark.parametrize("problem", ["out is a file", "cache is a file"])
def test_unwritable_outputs_are_refused_before_any_model_loads(tmp_path, capsys, problem):
    image = tmp_path / "photo.png"
    Image.new("RGB", (64, 64), (120, 30, 200)).save(image)
    out, cache = tmp_path / "out", tmp_path / "cache"
    (out if problem == "out is a file" else cache).write_text("a file")
    with pytest.raises(SystemExit) as exit_info:
        main(["analyze", str(image), "--out", str(out), "--cache-dir", str(cache), "--offline",
              "--model", str(tmp_path / "no-model")])  # a model error would mean the check came too late
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is a file, not a folder" in err[0]
