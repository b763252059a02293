"""`main.py run` end to end on the tiny models: files written, pins honoured, bad input -> one line, exit 2."""
from __future__ import annotations

import json

import pytest
from PIL import Image

import main


def engine_args(source, cache_dir) -> list[str]:
    return ["--model", source.sd, "--dinov2", source.dinov2, "--depth-model", source.depth, "--offline",
            "--device", "cpu", "--precision", "fp32", "--cache-dir", str(cache_dir)]


def test_run_writes_image_and_details(tiny_model_source, tiny_cache_dir, sample_images, tmp_path, capsys):
    out = tmp_path / "result.png"
    code = main.main(["run", "--content", str(sample_images["content"]), "--style", str(sample_images["ref0"]),
                      str(sample_images["ref1"]), "--pin", "1=1", "--steps", "2", "--out", str(out),
                      *engine_args(tiny_model_source, tiny_cache_dir)])
    assert code == 0
    image = Image.open(out)
    assert image.size == Image.open(sample_images["content"]).size  # the photo's own size
    assert json.loads(image.text["stylegallery"])["pins"] == [
        {"content_region": 1, "style_index": 1, "style_region": None}]
    details = json.loads(out.with_suffix(".json").read_text())["data"]
    assert details["status"] == "finished" and details["steps_done"] == 2
    assert len(details["losses"]) == 2
    pinned = [m for m in details["matches"] if m["content_region"] == 1][0]
    assert pinned["pinned"] and pinned["style_index"] == 1
    assert "finished in 2/2 steps" in capsys.readouterr().out


@pytest.mark.parametrize("pin", ["1=5", "x=1", "1=0:99"])
def test_bad_pin_or_image_gives_one_line(tiny_model_source, tiny_cache_dir, sample_images, tmp_path, capsys, pin):
    with pytest.raises(SystemExit) as exit_info:
        main.main(["run", "--content", str(sample_images["content"]), "--style", str(sample_images["ref0"]),
                   "--pin", pin, "--steps", "1", "--out", str(tmp_path / "x.png"),
                   *engine_args(tiny_model_source, tiny_cache_dir)])
    assert exit_info.value.code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line.lower()]
    assert len(errors) == 1 and "error: " in errors[0]
    assert not (tmp_path / "x.png").exists()


def test_unreadable_content(tiny_model_source, tiny_cache_dir, sample_images, tmp_path, capsys):
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    with pytest.raises(SystemExit) as exit_info:
        main.main(["run", "--content", str(text), "--style", str(sample_images["ref0"]), "--out",
                   str(tmp_path / "x.png"), *engine_args(tiny_model_source, tiny_cache_dir)])
    assert exit_info.value.code == 2
    assert "notes.png is not an image" in capsys.readouterr().err
