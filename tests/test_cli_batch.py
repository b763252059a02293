"""`run` and `draft` on several photos or a folder: one result per photo named after it, a line per photo, a bad
photo reported and skipped, a summary, and exit codes that tell all done / some skipped / cancelled apart."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

import main
from cli.batch import EXIT_SOME_SKIPPED, batch_outputs, content_photos
from tests.test_cli_run import ctrl_c_at_first_step, engine_args  # noqa: F401 (a fixture)
from tests.test_draft_engine import WARM, requires_draft, synthetic_painting, synthetic_photo


@pytest.fixture
def photo_folder(tmp_path) -> Path:
    """Five photos by name (one of them a damaged JPEG), plus what a folder read must pass over."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for index, name in enumerate(["a.png", "b.jpg", "d.png", "e.webp"]):
        synthetic_photo(64 + 16 * index).save(folder / name)
    (folder / "c.jpg").write_bytes(b"\xff\xd8 this is not a JPEG at all")
    synthetic_photo().save(folder / ".hidden.png")  # hidden: skipped
    (folder / "notes.txt").write_text("not a photo")  # not an image extension: skipped
    (folder / "sub").mkdir()
    synthetic_photo().save(folder / "sub" / "nested.png")  # not recursive
    synthetic_painting(WARM).save(tmp_path / "warm.png")
    return folder


def test_a_folder_is_read_by_name_without_hidden_files_subfolders_or_other_files(photo_folder):
    assert [p.name for p in content_photos([photo_folder])] == ["a.png", "b.jpg", "c.jpg", "d.png", "e.webp"]


def test_results_are_named_after_their_photos_and_never_collide(tmp_path):
    photos = [Path("x/a.jpg"), Path("y/a.png"), Path("x/A.tif"), Path("x/b.png")]
    assert [p.name for p in batch_outputs(photos, tmp_path / "out")] == ["a.png", "a-2.png", "A-3.png", "b.png"]


@pytest.mark.parametrize("out", ["result.png", "photos"])
def test_an_out_file_name_or_the_photos_folder_is_refused(photo_folder, out, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main.main(["draft", "--content", str(photo_folder), "--style", str(photo_folder.parent / "warm.png"),
                   "--regions", "quick", "--out", str(photo_folder.parent / out)])
    assert exit_info.value.code == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert not (photo_folder.parent / "result.png").exists()


@requires_draft
def test_a_folder_of_five_with_one_damaged_gives_four_drafts_and_one_line(photo_folder, capsys):
    out = photo_folder.parent / "drafts"
    code = main.main(["draft", "--content", str(photo_folder), "--style", str(photo_folder.parent / "warm.png"),
                      "--size", "64", "--regions", "quick", "--out", str(out)])
    assert code == EXIT_SOME_SKIPPED
    assert sorted(p.name for p in out.glob("*.png")) == ["a.png", "b.png", "d.png", "e.png"]
    meta = json.loads((out / "d.json").read_text())
    assert meta["inputs"]["content"]["name"] == "d.png"  # each result is its own photo's
    printed = capsys.readouterr()
    progress = [line for line in printed.err.splitlines() if line.startswith("[")]
    assert progress == [f"[{n}/5] {name} ..." for n, name in enumerate(["a.png", "b.jpg", "c.jpg", "d.png",
                                                                       "e.webp"], 1)]
    about_c = [line for line in printed.err.splitlines() if "c.jpg" in line and not line.startswith("[")]
    assert len(about_c) == 1 and about_c[0].startswith("stylegallery: skipped c.jpg: ")
    assert printed.out.strip().splitlines()[-1] == "4 done, 1 skipped: c.jpg (not an image)"


@requires_draft
def test_several_photos_by_name_all_done_exit_zero(photo_folder, capsys):
    out = photo_folder.parent / "two"
    code = main.main(["draft", "--content", str(photo_folder / "b.jpg"), str(photo_folder / "a.png"),
                      "--style", str(photo_folder.parent / "warm.png"), "--size", "64", "--regions", "quick",
                      "--out", str(out)])
    assert code == 0
    assert sorted(p.name for p in out.glob("*.png")) == ["a.png", "b.png"]
    assert capsys.readouterr().out.strip().splitlines()[-1] == "2 done"


def test_no_photo_readable_is_a_failure(photo_folder, capsys):
    code = main.main(["draft", "--content", str(photo_folder / "c.jpg"), str(photo_folder / "gone.png"),
                      "--style", str(photo_folder.parent / "warm.png"), "--regions", "quick",
                      "--out", str(photo_folder.parent / "none")])
    assert code == 2
    assert capsys.readouterr().out.strip().splitlines()[-1] == ("0 done, 2 skipped: c.jpg (not an image), "
                                                                "gone.png (not found)")


def test_run_batch_loads_the_models_once_and_writes_one_result_per_photo(tiny_model_source, tiny_cache_dir,
                                                                         sample_images, tmp_path, capsys,
                                                                         monkeypatch):
    from engine.api import Engine

    built = []
    real_init = Engine.__init__

    def counted(self, *args, **kwargs):
        built.append(1)
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(Engine, "__init__", counted)
    second = tmp_path / "other" / "content.jpg"
    second.parent.mkdir()
    Image.open(sample_images["content"]).convert("RGB").resize((96, 64)).save(second)
    out = tmp_path / "results"
    code = main.main(["run", "--content", str(sample_images["content"]), str(second), "--style",
                      str(sample_images["ref0"]), "--steps", "1", "--out", str(out),
                      *engine_args(tiny_model_source, tiny_cache_dir)])
    assert code == 0 and len(built) == 1
    assert sorted(p.name for p in out.iterdir()) == ["content-2.json", "content-2.png", "content.json", "content.png"]
    assert Image.open(out / "content-2.png").size == (96, 64)  # the second photo's result, at its own size
    printed = capsys.readouterr()
    assert "[2/2] content.jpg ..." in printed.err and printed.out.strip().splitlines()[-1] == "2 done"


def test_ctrl_c_stops_the_batch_keeping_the_partial_result(tiny_model_source, tiny_cache_dir, sample_images,
                                                           tmp_path, capsys, ctrl_c_at_first_step):
    out = tmp_path / "results"
    code = main.main(["run", "--content", str(sample_images["content"]), str(sample_images["ref1"]), "--style",
                      str(sample_images["ref0"]), "--steps", "20", "--out", str(out),
                      *engine_args(tiny_model_source, tiny_cache_dir)])
    assert code == 130
    assert sorted(p.name for p in out.glob("*.png")) == ["content-partial.png"]  # the second photo never started
    assert capsys.readouterr().out.strip().splitlines()[-1] == ("0 done, cancelled at content.png (partial result "
                                                                "saved), 1 photo not started")
