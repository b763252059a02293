"""A saved result's metadata: names and pixel hashes, never a path, user name or home folder; the A1111-style
`parameters` chunk; the recipe read back from the PNG or the JSON resolves into the original TransferRequest;
`run --recipe` re-runs it."""
from __future__ import annotations

import dataclasses
import getpass
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import main
from engine.errors import InvalidRequest
from engine.params import MatchParams, OutputParams, Stage1Params, Stage3Params
from engine.recipe import find_images, image_sha256, parse_recipe, read_recipe, resolve_recipe
from engine.schema import SchemaError
from engine.results import save_result
from engine.types import ImageRef, MatchTable, Pin, TransferRequest, TransferResult
from tests.conftest import synthetic_image

# AUTOMATIC1111's own pattern for one `Key: value` of the parameters line (modules/infotext_utils.py)
A1111_PAIR = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')


def hash_images(paths) -> dict[str, Path]:
    """A gallery as `resolve_recipe` takes it: pixel hash -> path."""
    return {image_sha256(path): path for path in paths}


def parse_parameters(text: str) -> tuple[str, dict[str, str]]:
    """(first line, pairs of the last line) as A1111's reader splits them; every character must belong to a pair."""
    lines = text.split("\n")
    pairs = list(A1111_PAIR.finditer(lines[-1]))
    assert "".join(m.group(0) for m in pairs) == lines[-1], "the parameters line is not all Key: value pairs"
    return lines[0], {m.group(1): m.group(2) for m in pairs}


@pytest.fixture
def photos(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    return {name: synthetic_image(folder / f"{name}.png", seed, size=64) for seed, name in
            enumerate(["content", "ref0", "ref1", "ref2"])}


def region_edit(shape=(8, 8)):
    from engine.stage1.edits import RegionEdit

    override = np.zeros(shape, np.int64)
    override[:3, :4] = 7
    return RegionEdit(override)


def original_request(photos) -> TransferRequest:
    """A request with every kind of thing a recipe keeps: pins, a region edit, parameters off their defaults."""
    return TransferRequest(
        ImageRef(photos["content"], region_edit=region_edit()),
        [ImageRef(photos[name]) for name in ("ref0", "ref1", "ref2")],
        [Pin(1, 2, None), Pin(2, 0, 3), Pin(3, 1, 1)],
        stage1=Stage1Params(size_policy="square", max_side=640, use_depth=False),
        match=MatchParams(stat_weight=0.5),
        stage3=Stage3Params(steps=9, lr=0.07, seed=3, layers=(11, 12), adam_betas=(0.8, 0.99), fast_mode="lcm"),
        output=OutputParams(size=300, upscale="fast"))


def fake_result(request: TransferRequest) -> TransferResult:
    return TransferResult(np.zeros((40, 30, 3), np.uint8), np.zeros((4, 8, 8), np.float32), MatchTable([], {}), [],
                          request.stage3.steps, request.stage3.steps, working_size=(64, 64), output_size=(30, 40),
                          upscale="fast")


def save(photos, out: Path, request: TransferRequest | None = None, **kwargs) -> Path:
    request = request or original_request(photos)
    model = str(photos["content"].parent / "models" / "sd15") + "#0123456789abcdef"  # engine.models' local id
    return save_result(out, request, fake_result(request), model=model, random_weights=True, **kwargs)


def all_metadata_text(png: Path) -> str:
    with Image.open(png) as image:
        image.load()
        chunks = dict(image.text)
    return json.dumps(chunks) + png.with_suffix(".json").read_text(encoding="utf-8")


def test_saved_metadata_holds_no_path_user_name_or_home_folder(photos, tmp_path):
    request = original_request(photos)
    local_lora = str(photos["content"].parent / "my-lora.safetensors")  # a LoRA is named, never located
    request.stage3 = dataclasses.replace(request.stage3, lora_source=local_lora)
    out = save(photos, tmp_path / "out" / "result.png", request)
    text = all_metadata_text(out)
    for private in (str(tmp_path), str(Path.home()), str(photos["content"].parent), "models/sd15"):
        assert private not in text and private.replace("/", "\\\\") not in text
    user = getpass.getuser()
    assert not re.search(rf"(?<![0-9a-z]){re.escape(user)}(?![0-9a-z])", text, re.IGNORECASE), user
    chunk = json.loads(Image.open(out).text["stylegallery"])
    assert chunk["content"]["name"] == "content.png" and len(chunk["content"]["sha256"]) == 64
    assert [r["name"] for r in chunk["references"]] == ["ref0.png", "ref1.png", "ref2.png"]
    assert (chunk["model"], chunk["model_hash"]) == ("sd15", "0123456789abcdef")
    assert chunk["params"]["stage3"]["lora_source"] == "my-lora.safetensors"


def test_parameters_chunk_is_a1111_key_value_pairs(photos, tmp_path):
    out = save(photos, tmp_path / "result.png", reference_names=["Sunset", "Night, blue", "Ink"])
    with Image.open(out) as image:
        title, pairs = parse_parameters(image.text["parameters"])
    assert title.startswith("StyleGallery restyle of content.png after 3 references") and "RANDOM-WEIGHT" in title
    assert pairs["Steps"] == "9" and pairs["Seed"] == "3" and pairs["Size"] == "30x40"
    assert pairs["Sampler"] == "LCM" and pairs["Model"] == "sd15" and pairs["Model hash"] == "0123456789abcdef"
    assert json.loads(pairs["References"]) == "Sunset, Night, blue, Ink"  # a comma inside: quoted, as A1111 does
    assert json.loads(pairs["Pins"]) == "1=2, 2=0:3, 3=1:1" and pairs["Region edit"] == "content.png"


def test_parameters_chunk_names_every_edited_map(photos, tmp_path):
    """The photo's edit and each reference's (a pin can name an edited reference region) are listed by name."""
    request = original_request(photos)
    request.references[1] = ImageRef(photos["ref1"], region_edit=region_edit())
    out = save(photos, tmp_path / "result.png", request, reference_names=["Sunset", "Night", "Ink"])
    with Image.open(out) as image:
        _, pairs = parse_parameters(image.text["parameters"])
    assert json.loads(pairs["Region edit"]) == "content.png, Night"
    request.content = ImageRef(photos["content"])
    request.references[1] = ImageRef(photos["ref1"])
    with Image.open(save(photos, tmp_path / "plain.png", request)) as image:
        assert parse_parameters(image.text["parameters"])[1]["Region edit"] == "no"


@pytest.mark.parametrize("suffix", [".png", ".json"])
def test_recipe_resolves_into_the_original_request(photos, tmp_path, suffix):
    original = original_request(photos)
    out = save(photos, tmp_path / "out" / "result.png", original)
    recipe = read_recipe(out.with_suffix(suffix))
    gallery = hash_images([photos["ref2"], photos["ref0"], photos["ref1"]])  # any order: found by hash
    resolution = resolve_recipe(recipe, gallery, [tmp_path / "out" / "result.png", photos["ref0"], photos["content"]])
    assert resolution.missing == [] and resolution.content == photos["content"]
    assert resolution.request == original


def test_a_missing_reference_is_named_and_its_pins_left_out(photos, tmp_path):
    out = save(photos, tmp_path / "result.png", reference_names=["Sunset", "Night/Day", "Ink"])  # gallery names
    resolution = resolve_recipe(read_recipe(out), hash_images([photos["ref0"], photos["ref2"]]), [photos["content"]])
    assert resolution.missing == ["Night/Day"]
    request = resolution.request
    assert [ref.path for ref in request.references] == [photos["ref0"], photos["ref2"]]
    assert request.pins == [Pin(1, 1, None), Pin(2, 0, 3)]  # re-counted; the pin to "Night/Day" is gone


def test_files_named_like_the_images_are_read_first(photos, tmp_path, monkeypatch):
    from engine import recipe as recipe_module

    recipe = read_recipe(save(photos, tmp_path / "result.png"))
    read = []
    real = recipe_module.image_sha256
    monkeypatch.setattr(recipe_module, "image_sha256", lambda path: read.append(path.name) or real(path))
    folder = [photos["content"], photos["ref2"], photos["ref0"]]
    assert find_images(recipe.references[:1], folder) == {recipe.references[0].sha256: photos["ref0"]}
    assert read == ["ref0.png"]  # the others are not decoded: ref0 was found by its name
    read.clear()
    renamed = tmp_path / "renamed.png"
    renamed.write_bytes(photos["ref1"].read_bytes())
    assert find_images(recipe.references[1:2], [photos["content"], renamed]) == {recipe.references[1].sha256: renamed}
    assert read == ["content.png", "renamed.png"]  # no name matched: every file is read, until the image is found


def test_another_photo_gets_the_parameters_but_not_the_pins(photos, tmp_path):
    out = save(photos, tmp_path / "result.png")
    resolution = resolve_recipe(read_recipe(out), hash_images(photos.values()), content=photos["ref0"])
    assert not resolution.content_matches
    assert resolution.request.pins == [] and resolution.request.content.region_edit is None
    assert resolution.request.stage3 == original_request(photos).stage3


def test_files_without_a_recipe_are_refused_in_words(photos, tmp_path):
    with pytest.raises(InvalidRequest, match="holds no StyleGallery settings"):
        read_recipe(photos["content"])
    old = tmp_path / "old.json"  # what version 1 wrote: paths, no hashes
    old.write_text(json.dumps({"version": 1, "data": {"content": str(photos["content"]), "references": [],
                                                      "params": {}}}))
    with pytest.raises(InvalidRequest, match="older StyleGallery"):
        read_recipe(old)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with pytest.raises(InvalidRequest, match="broken.png"):
        read_recipe(broken)
    out = save(photos, tmp_path / "result.png")
    document = json.loads(out.with_suffix(".json").read_text())
    document["data"]["pins"][0]["style_index"] = 9
    out.with_suffix(".json").write_text(json.dumps(document))
    with pytest.raises(InvalidRequest, match="style_index"):
        read_recipe(out.with_suffix(".json"))


def test_no_single_hostile_value_gets_past_the_check_in_another_form(photos, tmp_path):
    """A recipe is untrusted input: each value replaced by a hostile one (or removed) is refused in words, or what
    is accepted has pins that name a reference and parameters of their default's types."""
    from tests.test_gui_documents import replacements

    good = json.loads(Image.open(save(photos, tmp_path / "result.png")).text["stylegallery"])
    good["content"]["region_edit"] = {"rows": 1, "cols": 2, "cells": [0, 7]}  # fewer cells: fewer copies to check
    accepted = 0
    for place, document in replacements(good):
        try:
            recipe = parse_recipe(document)
        except (SchemaError, InvalidRequest):
            continue
        accepted += 1
        assert all(pin.style_index < len(recipe.references) for pin in recipe.pins), place
        for params in (recipe.stage1, recipe.match, recipe.stage3, recipe.output):
            defaults = type(params)()
            for field in dataclasses.fields(params):
                value, default = getattr(params, field.name), getattr(defaults, field.name)
                assert isinstance(value, type(default)) or field.name in ("size", "lora_source"), (place, field.name)
    assert accepted > 0


# -- run --recipe ----------------------------------------------------------------------------------------------------

@pytest.fixture
def captured(monkeypatch):
    """The requests `run` hands to the engine (the work itself is not what these tests check)."""
    from engine.api import Engine

    requests = []

    def transfer(self, request, on_event=None, cancel=None):
        requests.append(request)
        return fake_result(request)

    monkeypatch.setattr(Engine, "transfer", transfer)
    return requests


def engine_args(source, cache_dir) -> list[str]:
    return ["--model", source.sd, "--dinov2", source.dinov2, "--depth-model", source.depth, "--offline",
            "--device", "cpu", "--precision", "fp32", "--cache-dir", str(cache_dir)]


def test_run_recipe_reruns_a_saved_result(photos, tmp_path, captured, tiny_model_source, tiny_cache_dir):
    first = tmp_path / "first.png"
    assert main.main(["run", "--content", str(photos["content"]), "--style", str(photos["ref0"]),
                      str(photos["ref1"]), "--pin", "1=1", "--steps", "3", "--seed", "5", "--size-policy", "square",
                      "--out", str(first), *engine_args(tiny_model_source, tiny_cache_dir)]) == 0
    shared = tmp_path / "shared"  # what another computer gets: the result beside the photo, references elsewhere
    shared.mkdir()
    for path in (first, first.with_suffix(".json")):
        (shared / path.name).write_bytes(path.read_bytes())
    (shared / "content.png").write_bytes(photos["content"].read_bytes())
    gallery = tmp_path / "gallery" / "sub"
    gallery.mkdir(parents=True)
    for name in ("ref1", "ref0"):
        (gallery / f"renamed-{name}.png").write_bytes(photos[name].read_bytes())
    again = tmp_path / "again.png"
    assert main.main(["run", "--recipe", str(shared / "first.png"), "--gallery", str(tmp_path / "gallery"),
                      "--out", str(again), *engine_args(tiny_model_source, tiny_cache_dir)]) == 0
    original, rerun = captured
    assert rerun == dataclasses.replace(original, content=ImageRef(shared / "content.png"),
                                        references=[ImageRef(gallery / "renamed-ref0.png"),
                                                    ImageRef(gallery / "renamed-ref1.png")])


def test_run_recipe_names_a_missing_reference_in_one_line(photos, tmp_path, captured, tiny_model_source,
                                                          tiny_cache_dir, capsys):
    out = save(photos, tmp_path / "shared" / "result.png", reference_names=["Sunset", "Night", "Ink"])
    (out.parent / "content.png").write_bytes(photos["content"].read_bytes())
    (out.parent / "ref0.png").write_bytes(photos["ref0"].read_bytes())
    (out.parent / "ref2.png").write_bytes(photos["ref2"].read_bytes())
    with pytest.raises(SystemExit) as exit_info:
        main.main(["run", "--recipe", str(out), "--out", str(tmp_path / "x.png"),
                   *engine_args(tiny_model_source, tiny_cache_dir)])
    assert exit_info.value.code == 2 and captured == []
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(errors) == 1 and "Night" in errors[0] and "Sunset" not in errors[0], errors
