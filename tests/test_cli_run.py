"""`main.py run` end to end on the tiny models: files written, pins honoured, bad input -> one line, exit 2, bad
outputs refused before the work, a finished result never lost, Ctrl-C writes the partial result.

The runs work at 128 pixels (--working-size): a 16 x 16 latent grid has every mechanism of the 64 x 64 one, and
the optimisation's attention costs (16 x 16)^2 instead of (64 x 64)^2, which took minutes per test on two cores.
"""
from __future__ import annotations

import errno
import json
import os
import signal
import threading
import time

import pytest
from PIL import Image

import main

WORKING_SIZE = 128


def engine_args(source, cache_dir) -> list[str]:
    return ["--model", source.sd, "--dinov2", source.dinov2, "--depth-model", source.depth, "--offline",
            "--device", "cpu", "--precision", "fp32", "--cache-dir", str(cache_dir),
            "--working-size", str(WORKING_SIZE)]


def run_args(images, out, *extra) -> list[str]:
    return ["run", "--content", str(images["content"]), "--style", str(images["ref0"]), "--steps", "2",
            "--out", str(out), *extra]


def one_error_line(capsys) -> str:
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line.lower()]
    assert len(errors) == 1 and errors[0].startswith("stylegallery: error: "), errors
    return errors[0]


@pytest.fixture
def no_work(monkeypatch):
    """Records any start of the engine's work (a refusal must come before it)."""
    from engine.api import Engine

    started = []
    monkeypatch.setattr(Engine, "transfer", lambda *args, **kwargs: started.append(1))
    return started


def test_run_writes_image_and_details(tiny_model_source, tiny_cache_dir, sample_images, tmp_path, capsys):
    out = tmp_path / "result.png"
    code = main.main(["run", "--content", str(sample_images["content"]), "--style", str(sample_images["ref0"]),
                      str(sample_images["ref1"]), "--pin", "1=1", "--steps", "2", "--out", str(out),
                      *engine_args(tiny_model_source, tiny_cache_dir)])
    assert code == 0
    image = Image.open(out)
    assert image.size == Image.open(sample_images["content"]).size  # the photo's own size
    metadata = json.loads(image.text["stylegallery"])
    assert metadata["working_size"] == [WORKING_SIZE, WORKING_SIZE]  # square photo: square working size
    assert metadata["pins"] == [{"content_region": 1, "style_index": 1, "style_region": None}]
    assert metadata["random_weights"] is True and metadata["partial"] is False  # tiny models: labelled as such
    details = json.loads(out.with_suffix(".json").read_text())["data"]
    assert details["status"] == "finished" and details["steps_done"] == 2 and details["random_weights"] is True
    assert len(details["losses"]) == 2
    pinned = [m for m in details["matches"] if m["content_region"] == 1][0]
    assert pinned["pinned"] and pinned["style_index"] == 1
    printed = capsys.readouterr().out
    assert "finished in 2/2 steps" in printed and "RANDOM-WEIGHT" in printed
    assert not list(tmp_path.glob("*partial*"))


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


def test_help_shows_defaults(capsys):
    with pytest.raises(SystemExit):
        main.main(["run", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: 150)" in text and "(default: 0.26)" in text and "(default: None)" not in text


@pytest.mark.parametrize("problem", ["folder", "name too long", "disk full", "read-only"])
def test_an_unwritable_output_is_refused_before_the_work(tiny_model_source, tiny_cache_dir, sample_images, tmp_path,
                                                         capsys, monkeypatch, no_work, problem):
    import shutil
    import tempfile

    out = tmp_path / "result.png"
    if problem == "folder":
        out.mkdir()
    elif problem == "name too long":
        out = tmp_path / ("r" * 300 + ".png")
    elif problem == "disk full":
        monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10 << 30, 10 << 30, 0))
    else:
        def read_only(*args, **kwargs):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(tmp_path))
        monkeypatch.setattr(tempfile, "NamedTemporaryFile", read_only)
    with pytest.raises(SystemExit) as exit_info:
        main.main(run_args(sample_images, out, *engine_args(tiny_model_source, tiny_cache_dir)))
    assert exit_info.value.code == 2
    line = one_error_line(capsys)
    assert {"folder": "is a folder", "name too long": "too long", "disk full": "full",
            "read-only": "read-only"}[problem] in line
    assert no_work == []


def test_an_unwritable_cache_folder_is_refused_before_the_work(tiny_model_source, sample_images, tmp_path, capsys,
                                                               no_work):
    cache = tmp_path / "cache"
    cache.write_text("a file where the cache folder should be")
    with pytest.raises(SystemExit) as exit_info:
        main.main(run_args(sample_images, tmp_path / "x.png", *engine_args(tiny_model_source, cache)))
    assert exit_info.value.code == 2
    assert "stage cache folder" in one_error_line(capsys) and no_work == []


def test_a_save_that_fails_after_the_work_keeps_the_result(tiny_model_source, tiny_cache_dir, sample_images,
                                                           tmp_path, capsys, monkeypatch):
    """The disk fills during the run: the finished result goes to a fallback folder and the line says where."""
    from engine import results

    out = tmp_path / "result.png"
    fallback = tmp_path / "fallback"
    monkeypatch.setattr(results, "fallback_folders", lambda: [fallback])
    from engine import export

    def full_disk(path, mode="r", *args, **kwargs):  # every file the result is written to: the disk is full
        if "w" in mode and str(path).startswith(str(out.with_suffix(""))):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return open(path, mode, *args, **kwargs)

    monkeypatch.setattr(export, "open", full_disk, raising=False)  # engine.export writes every saved picture
    with pytest.raises(SystemExit) as exit_info:
        main.main(run_args(sample_images, out, *engine_args(tiny_model_source, tiny_cache_dir)))
    assert exit_info.value.code == 2
    line = one_error_line(capsys)
    kept = list(fallback.glob("result-*.png"))
    assert len(kept) == 1 and str(kept[0]) in line and "disk is full" in line
    assert json.loads(Image.open(kept[0]).text["stylegallery"])["status"] == "finished"
    assert not list(tmp_path.glob("result*"))  # nothing half-written where the save failed


@pytest.fixture
def ctrl_c_at_first_step(monkeypatch):
    """`run`'s progress bar presses Ctrl-C at the optimisation's first step (of every photo) and holds that step until
    the main thread has taken the KeyboardInterrupt: with tiny models the other steps would otherwise be over before
    a busy machine schedules the main thread, and the run would finish uncancelled."""
    from cli import run

    taken = threading.Event()

    def take(signum, frame):
        taken.set()
        signal.default_int_handler(signum, frame)  # KeyboardInterrupt, as without this fixture

    class InterruptAtFirstStep(run.ProgressBar):
        def __call__(self, event):
            super().__call__(event)
            if event.stage == "transfer" and event.step == 1:
                taken.clear()
                os.kill(os.getpid(), signal.SIGINT)  # as the terminal does: KeyboardInterrupt on the main thread
                assert taken.wait(60)
                time.sleep(1.0)  # the main thread sets the run's cancel flag right after taking the interrupt

    monkeypatch.setattr(run, "ProgressBar", InterruptAtFirstStep)
    previous = signal.signal(signal.SIGINT, take)
    yield
    signal.signal(signal.SIGINT, previous)


def test_ctrl_c_writes_the_partial_result(tiny_model_source, tiny_cache_dir, sample_images, tmp_path, capsys,
                                          ctrl_c_at_first_step):
    """Ctrl-C during the optimisation: the run stops at its next step and writes OUT-partial.png/.json."""
    out = tmp_path / "result.png"
    args = run_args(sample_images, out, *engine_args(tiny_model_source, tiny_cache_dir))
    args[args.index("--steps") + 1] = "20"
    assert main.main(args) == 130
    partial = tmp_path / "result-partial.png"
    assert partial.is_file() and not out.exists()
    metadata = json.loads(Image.open(partial).text["stylegallery"])
    assert metadata["status"] == "cancelled" and metadata["partial"] is True
    assert 1 <= metadata["steps_done"] < 20
    details = json.loads(partial.with_suffix(".json").read_text())["data"]
    assert details["partial"] is True and len(details["losses"]) == details["steps_done"]
    assert "cancelled after" in capsys.readouterr().out


def test_save_png_leaves_nothing_behind_when_it_fails(tmp_path):
    import numpy as np

    from engine.results import save_png

    folder = tmp_path / "draft.png"
    folder.mkdir()
    with pytest.raises(OSError):
        save_png(folder, np.zeros((8, 8, 3), np.uint8), {})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["draft.png"]
