"""`run --mask` and `draft --mask`: a label PNG painted outside the app edits the content's regions; a wrong size or
too many labels is one readable line and exit 2, before any model loads."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

import main
from tests.test_cli_run import WORKING_SIZE, engine_args, one_error_line, run_args


def halves_mask(path, size: int = WORKING_SIZE):
    """Left half grey 7, right half grey 9: two regions, 7 and 9, replacing every automatic one."""
    grey = np.full((size, size), 9, dtype=np.uint8)
    grey[:, : size // 2] = 7
    Image.fromarray(grey).save(path)
    return path


def test_run_mask_is_the_map_used(tiny_model_source, tiny_cache_dir, sample_images, tmp_path):
    out = tmp_path / "result.png"
    mask = halves_mask(tmp_path / "mask.png")
    code = main.main([*run_args(sample_images, out, "--mask", str(mask)),
                      *engine_args(tiny_model_source, tiny_cache_dir)])
    assert code == 0
    details = json.loads(out.with_suffix(".json").read_text())["data"]
    assert sorted(m["content_region"] for m in details["matches"]) == [7, 9]


@pytest.mark.parametrize("command", ["run", "draft"])
def test_wrong_size_mask_is_one_line(tiny_model_source, tiny_cache_dir, sample_images, tmp_path, capsys, command):
    mask = halves_mask(tmp_path / "mask.png", size=WORKING_SIZE + 8)
    args = [*run_args(sample_images, tmp_path / "x.png", "--mask", str(mask))]
    if command == "draft":
        args = ["draft", "--content", str(sample_images["content"]), "--style", str(sample_images["ref0"]),
                "--out", str(tmp_path / "x.png"), "--mask", str(mask)]
    with pytest.raises(SystemExit) as exit_info:
        main.main([*args, *engine_args(tiny_model_source, tiny_cache_dir)[:-2]]
                  + (["--working-size", str(WORKING_SIZE)] if command == "run" else []))
    assert exit_info.value.code == 2
    assert "region mask is 136x136 pixels; it must be exactly" in one_error_line(capsys)
    assert not (tmp_path / "x.png").exists()


def test_too_many_labels_is_one_line(tiny_model_source, tiny_cache_dir, sample_images, tmp_path, capsys):
    noise = np.random.default_rng(0).integers(0, 255, (WORKING_SIZE, WORKING_SIZE, 3), dtype=np.uint8)
    Image.fromarray(noise).save(tmp_path / "mask.png")
    with pytest.raises(SystemExit) as exit_info:
        main.main([*run_args(sample_images, tmp_path / "x.png", "--mask", str(tmp_path / "mask.png")),
                   *engine_args(tiny_model_source, tiny_cache_dir)])
    assert exit_info.value.code == 2
    assert "colours; at most 128 regions" in one_error_line(capsys)
