"""A result's recipe: what made it, stored in its PNG and JSON without any local path, and read back to run it again.

The metadata names each image by its file name and the sha256 of its pixels (`engine.images.pixel_sha256`, the
hash the gallery and the stage cache use), never by a path: a shared picture leaks no user name, home folder or
folder layout. Beside the app's own JSON, PNGs carry one human-readable `parameters` text chunk in the form
AUTOMATIC1111's web UI writes (a first line, then comma-separated `Key: value` pairs), which other diffusion tools
show. `read_recipe` reads either file back into a `Recipe`; `resolve_recipe` finds its images by hash and builds
the `TransferRequest` the original run had. Torch-free except when a recipe holds a region edit to rebuild.
"""
from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Literal, Mapping, TypeVar, get_args, get_origin, get_type_hints

import numpy as np
from PIL import Image

from .errors import ImageUnreadable, InvalidRequest
from .images import IMAGE_SUFFIXES, load_image, pixel_sha256
from .params import (EDIT_MAX_REGION_ID, FAST_MODES, MatchParams, OutputParams, Stage1Params, Stage3Params,
                     settings_key)
from .schema import SchemaError, expect, items, member, number, whole
from .types import ImageRef, Pin, TransferRequest

RECIPE_VERSION = 2  # 1 stored absolute paths (no hashes): such results cannot be restored
RECIPE_CHUNK = "stylegallery"  # the app's JSON in the PNG
PARAMETERS_CHUNK = "parameters"  # the A1111-style text other tools show
RESULT_SUFFIXES = (".png", ".json")
SAMPLER_NAMES = {"ddim": "DDIM", "lcm": "LCM", "euler_trailing": "Euler trailing"}
RANDOM_WEIGHTS_NOTE = "made by RANDOM-WEIGHT test models: no real style"
_RANDOM_SUFFIX = " (RANDOM WEIGHTS)"  # the window's model label
_HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")
_PARAMS = {"stage1": Stage1Params, "match": MatchParams, "stage3": Stage3Params, "output": OutputParams}
P = TypeVar("P")


@dataclass(frozen=True, eq=False)
class RecipeImage:
    """An input image as a recipe names it: file name and pixel hash (None when it could not be read at save time),
    the hand edit of its regions (override grid, 0 = automatic) and its user label mask, if any."""

    name: str
    sha256: str | None
    region_edit: np.ndarray | None = None
    user_mask: RecipeImage | None = None


@dataclass(frozen=True, eq=False)
class Recipe:
    """Everything a result was made with, path-free: `pins` count `references` in their order."""

    content: RecipeImage
    references: list[RecipeImage]
    pins: list[Pin]
    stage1: Stage1Params
    match: MatchParams
    stage3: Stage3Params
    output: OutputParams
    model: str
    random_weights: bool
    version: int = RECIPE_VERSION


# ----- writing ------------------------------------------------------------------------------------------------------

def image_sha256(path: Path) -> str | None:
    """The pixel hash the gallery and the cache use; None for a file gone or unreadable since the run started (the
    result is saved all the same)."""
    try:
        return pixel_sha256(load_image(path))
    except (ImageUnreadable, OSError):
        return None


def edit_document(grid: np.ndarray) -> dict:
    """A region edit's override grid as JSON: {"rows", "cols", "cells": region ids row by row, 0 = automatic}."""
    return {"rows": int(grid.shape[0]), "cols": int(grid.shape[1]), "cells": [int(v) for v in grid.ravel()]}


def parse_edit(row: Any, where: str) -> np.ndarray:
    """The override grid of `edit_document`, checked (SchemaError at the first thing wrong)."""
    rows = whole(member(row, "rows", int, where), f"{where}.rows", 1)
    cols = whole(member(row, "cols", int, where), f"{where}.cols", 1)
    cells = member(row, "cells", list, where)
    if len(cells) != rows * cols:
        raise SchemaError(f"{where}.cells: expected {rows * cols} values, found {len(cells)}")
    if not all(type(v) is int and 0 <= v <= EDIT_MAX_REGION_ID for v in cells):
        raise SchemaError(f"{where}.cells: expected region ids 0..{EDIT_MAX_REGION_ID}")
    return np.asarray(cells, dtype=np.int64).reshape(rows, cols)


def _image_document(ref: ImageRef, name: str | None = None) -> dict:
    path = Path(ref.path)
    edit = ref.region_edit
    return {"name": name or path.name, "sha256": image_sha256(path),
            "region_edit": None if edit is None or edit.is_empty else edit_document(edit.override),
            "user_mask": None if ref.user_mask is None else _image_document(ImageRef(ref.user_mask))}


def inputs_document(content: Path, references: list[Path], reference_names: list[str] | None = None) -> dict:
    """A draft's inputs, path-free: {"content": {"name", "sha256"}, "references": [...]}. `reference_names`: how
    the artist knows the references (the gallery's names), in place of their file names (a gallery copy's is an id)."""
    names = reference_names or [Path(p).name for p in references]
    return {"content": {"name": Path(content).name, "sha256": image_sha256(Path(content))},
            "references": [{"name": name, "sha256": image_sha256(Path(p))} for p, name in zip(references, names)]}


def public_model(model: str) -> tuple[str, str]:
    """(name, hash) of a model id fit to publish: a hub id as it is; a local folder or file by its name only, with
    the content fingerprint `engine.models` appends (`path#fingerprint`) as the hash."""
    model = model.removesuffix(_RANDOM_SUFFIX).split("+config:")[0]
    source, _, fingerprint = model.partition("#")
    if _HUB_ID.match(source) and not Path(source).expanduser().exists():
        return source, fingerprint
    return Path(source.replace("\\", "/").rstrip("/")).name, fingerprint


def recipe_document(request: TransferRequest, model: str, random_weights: bool,
                    reference_names: list[str] | None = None) -> dict:
    """The path-free recipe of `request` as JSON-able data. `reference_names`: how the artist knows the references
    (the gallery's names), in place of their file names."""
    names = reference_names or [None] * len(request.references)
    model_name, model_hash = public_model(model)
    return {
        "recipe": RECIPE_VERSION,
        "content": _image_document(request.content),
        "references": [_image_document(ref, name) for ref, name in zip(request.references, names)],
        "pins": [dataclasses.asdict(pin) for pin in request.pins],
        "params": _public_params(request),
        "model": model_name,
        "model_hash": model_hash,
        "random_weights": random_weights,
    }


def _public_params(request: TransferRequest) -> dict:
    """Every parameter as `settings_key` gives it, but a local LoRA by its name only (it is not looked for again)."""
    params = {key: settings_key(getattr(request, key)) for key in _PARAMS}
    lora = params["stage3"]["lora_source"]
    if lora is not None:
        params["stage3"]["lora_source"] = public_model(lora)[0]
    return params


def _quote(value: Any) -> str:
    """A value as A1111 writes it: JSON-quoted when it holds a comma, colon, quote or line break."""
    text = str(value)
    return json.dumps(text) if any(c in text for c in ',:"\n') else text


def parameters_text(document: dict) -> str:
    """The A1111-style `parameters` text of a result document (`engine.results.result_document`): a description
    line, then `Key: value` pairs, comma-separated."""
    stage1, stage3 = document["params"]["stage1"], document["params"]["stage3"]
    references = document["references"]
    random_note = f" ({RANDOM_WEIGHTS_NOTE})" if document["random_weights"] else ""
    title = " ".join(f"StyleGallery restyle of {document['content']['name']} after "
                     f"{len(references)} reference{'s' if len(references) != 1 else ''}{random_note}".split())
    mode = stage3["fast_mode"]
    pairs = {
        "Steps": stage3["steps"],
        "Sampler": SAMPLER_NAMES[FAST_MODES[mode].scheduler if mode in FAST_MODES else "ddim"],
        "Seed": stage3["seed"],
        "Size": "x".join(map(str, document["output_size"])),
        "Model hash": document["model_hash"],
        "Model": document["model"],
        "Learning rate": stage3["lr"],
        "Content weight": stage3["content_weight"],
        "Iterations per step": stage3["iters_per_step"],
        "Fast mode": mode,
        "Working size": "x".join(map(str, document["working_size"])),
        "Size policy": stage1["size_policy"],
        "Upscale": document["upscale"],
        "References": ", ".join(ref["name"] for ref in references),
        "Pins": ", ".join(f"{p['content_region']}={p['style_index']}"
                          + ("" if p["style_region"] is None else f":{p['style_region']}") for p in document["pins"]),
        "Region edit": ", ".join([document["content"]["name"]] * bool(document["content"]["region_edit"])
                                 + [ref["name"] for ref in references if ref["region_edit"]]) or "no",
        "Random weights": "yes" if document["random_weights"] else "",
        "Status": f"cancelled at {document['steps_done']}/{document['steps_total']}" if document["partial"] else "",
        "Version": f"StyleGallery recipe {RECIPE_VERSION}",
    }
    return title + "\n" + ", ".join(f"{key}: {_quote(value)}" for key, value in pairs.items() if value != "")


# ----- reading ------------------------------------------------------------------------------------------------------

def _result_data(path: Path) -> Any:
    """The result document in a PNG's chunk or a JSON's envelope (None when there is none); raises on a damaged
    file."""
    if path.suffix.lower() == ".json":
        envelope = json.loads(path.read_text(encoding="utf-8"))
        return envelope.get("data") if isinstance(envelope, dict) else None
    with Image.open(path, formats=["PNG"]) as img:
        text = getattr(img, "text", {}).get(RECIPE_CHUNK)
    return None if text is None else json.loads(text)


def _is_result(data: Any) -> bool:
    """A result's document, of any recipe version (a saved draft's is not: it opens as a photo)."""
    return isinstance(data, dict) and ("recipe" in data or {"references", "params"} <= data.keys())


def is_result_file(path: Path) -> bool:
    """Whether `path` is a saved result (PNG or JSON), so a drop restores it rather than opening it: never raises."""
    path = Path(path)
    try:
        return path.suffix.lower() in RESULT_SUFFIXES and _is_result(_result_data(path))
    except (OSError, ValueError, SyntaxError, RecursionError):
        return False


def read_recipe(path: Path) -> Recipe:
    """The recipe in a result PNG's chunk or its JSON; InvalidRequest, in the artist's words, for anything else."""
    path = Path(path)
    name = path.name[:80]
    try:
        data = _result_data(path)
        if not _is_result(data):
            raise InvalidRequest(f"{name} holds no StyleGallery settings",
                                 hint="Only results saved by StyleGallery (PNG or JSON) can be restored.")
        return parse_recipe(data)
    except InvalidRequest:
        raise
    except SchemaError as exc:
        raise InvalidRequest(f"The settings in {name} cannot be read ({exc})") from exc
    except (OSError, ValueError, SyntaxError, RecursionError) as exc:  # unreadable, not PNG, not JSON, too deep
        raise InvalidRequest(f"{name} is not a StyleGallery result that can be read ({type(exc).__name__})",
                             hint="Only results saved by StyleGallery (PNG or JSON) can be restored.") from exc


def parse_recipe(data: Any) -> Recipe:
    """A recipe document (`recipe_document`), checked field by field (SchemaError at the first thing wrong)."""
    expect(data, dict, "result")
    version = member(data, "recipe", int, "result", 1)
    if version < RECIPE_VERSION:
        raise InvalidRequest("This result was saved by an older StyleGallery, which kept file paths instead of "
                             "image hashes: its settings cannot be restored")
    if version > RECIPE_VERSION:
        raise InvalidRequest(f"This result was saved by a newer StyleGallery (recipe {version}; this one reads "
                             f"{RECIPE_VERSION})", hint="Update StyleGallery to restore it.")
    references = [_parse_image(row, where) for row, where in items(member(data, "references", list, "result"),
                                                                   "references")]
    pins = []
    for row, where in items(member(data, "pins", list, "result", []), "pins"):
        style_region = member(row, "style_region", (int, type(None)), where)
        pins.append(Pin(whole(member(row, "content_region", int, where), where, 0),
                        whole(member(row, "style_index", int, where), where, 0),
                        None if style_region is None else whole(style_region, where, 0)))
        if pins[-1].style_index >= len(references):
            raise SchemaError(f"{where}.style_index: no reference {pins[-1].style_index}")
    params = member(data, "params", dict, "result")
    return Recipe(_parse_image(member(data, "content", dict, "result"), "content"), references, pins,
                  *(parse_params(cls, member(params, key, dict, "params", {}), f"params.{key}")
                    for key, cls in _PARAMS.items()),
                  model=member(data, "model", str, "result", ""),
                  random_weights=member(data, "random_weights", bool, "result", False), version=version)


def _parse_image(row: Any, where: str, is_mask: bool = False) -> RecipeImage:
    edit = member(row, "region_edit", (dict, type(None)), where, None)
    mask = member(row, "user_mask", (dict, type(None)), where, None)
    if is_mask and mask is not None:
        raise SchemaError(f"{where}.user_mask: a label mask has no mask of its own")
    sha = member(row, "sha256", (str, type(None)), where)
    if sha is not None and not re.fullmatch(r"[0-9a-f]{64}", sha):
        raise SchemaError(f"{where}.sha256: not a sha256 digest")
    return RecipeImage(member(row, "name", str, where), sha,  # shown and compared, never used as a path
                       None if edit is None else parse_edit(edit, f"{where}.region_edit"),
                       None if mask is None else _parse_image(mask, f"{where}.user_mask", is_mask=True))


def parse_params(cls: type[P], row: dict, where: str) -> P:
    """A params dataclass from its `settings_key` dict: each value of its field's type (a Literal's choices, tuples
    from lists); a missing field keeps the default, an unknown one is refused (a newer StyleGallery's, which this one
    would drop)."""
    hints = get_type_hints(cls)
    unknown = sorted(set(row) - set(hints))
    if unknown:
        raise SchemaError(f"{where}: unknown parameters {', '.join(unknown)}")
    defaults = cls()
    values = {key: _param_value(value, getattr(defaults, key), hints[key], f"{where}.{key}")
              for key, value in row.items()}
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:
        raise SchemaError(f"{where}: {exc}") from exc


def _choices(hint: Any) -> tuple:
    """The values a Literal allows, also inside a union (`Literal["photo", "working"] | int`)."""
    if get_origin(hint) is Literal:
        return get_args(hint)
    return tuple(choice for arg in get_args(hint) for choice in _choices(arg))


def _param_value(value: Any, default: Any, hint: Any, where: str) -> Any:
    if isinstance(default, tuple):
        return tuple(_param_value(v, default[0] if default else v, None, f"{where}[{i}]")
                     for i, v in enumerate(expect(value, list, where)))
    if isinstance(default, bool):
        return expect(value, bool, where)
    if isinstance(default, float):
        return float(number(value, where))
    if isinstance(default, int):
        return expect(value, int, where)
    if isinstance(default, str):
        if type(value) is int and int in get_args(hint):  # OutputParams.size: a name or a long side
            return value
        choices = _choices(hint)
        if type(value) is not str or choices and value not in choices:
            raise SchemaError(f"{where}: expected one of {', '.join(map(repr, choices))}, found {value!r}"
                              if choices else f"{where}: expected text, found {value!r}")
        return value
    return expect(value, (str, type(None)), where)  # Stage3Params.lora_source


# ----- finding the images ---------------------------------------------------------------------------------------------

def images_in(folder: Path, recursive: bool = False) -> list[Path]:
    """The image files of a folder (sorted; none when it is not one)."""
    try:
        files = folder.rglob("*") if recursive else folder.iterdir()
        return sorted(p for p in files if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    except OSError:
        return []


def photo_candidates(result: Path) -> list[Path]:
    """Where a result's photo may be: the images beside it, except the result's own PNG."""
    result = Path(result)
    return [p for p in images_in(result.parent) if p != result.with_suffix(".png")]


def find_images(images: Iterable[RecipeImage], candidates: Iterable[Path]) -> dict[str, Path]:
    """pixel hash -> path of those of `images` found among `candidates`: the files named like one of them are
    decoded first, the others only while some image is still missing (a large folder is not read for nothing)."""
    images = list(images)
    wanted = {image.sha256 for image in images if image.sha256 is not None}
    stems = {Path(image.name).stem for image in images}
    candidates = list(dict.fromkeys(candidates))
    found: dict[str, Path] = {}
    for path in [p for p in candidates if p.stem in stems] + [p for p in candidates if p.stem not in stems]:
        if wanted <= found.keys():
            break
        sha = image_sha256(path)
        if sha in wanted:
            found.setdefault(sha, path)
    return found


@dataclass
class Resolution:
    """What `resolve_recipe` found: the request (None without the photo), the references and masks not found (by
    name), and whether the photo is the recipe's own (False: one the caller chose; its pins and edit were left out)."""

    request: TransferRequest | None
    content: Path | None
    missing: list[str]
    content_matches: bool = True

    def missing_text(self) -> str:
        return ", ".join(self.missing)


def resolve_recipe(recipe: Recipe, gallery: Mapping[str, Path], content_candidates: Iterable[Path] = (),
                   content: Path | None = None) -> Resolution:
    """The recipe's TransferRequest: references found by hash in `gallery` (hash -> path), the photo among
    `content_candidates` (or `content` as given). Pins to references not found are left out, their names listed in
    `missing`; a photo other than the recipe's (a different hash) gets neither the pins nor the region edit."""
    if content is None:
        content = find_images([recipe.content], content_candidates).get(recipe.content.sha256)
        if content is None:
            return Resolution(None, None, [ref.name for ref in recipe.references if ref.sha256 not in gallery])
        matches = True  # found by that very hash
    else:
        matches = recipe.content.sha256 is not None and image_sha256(content) == recipe.content.sha256
    missing: list[str] = []
    references: list[ImageRef] = []
    index_of: dict[int, int] = {}
    for index, ref in enumerate(recipe.references):
        path = gallery.get(ref.sha256) if ref.sha256 is not None else None
        if path is None:
            missing.append(ref.name)
            continue
        index_of[index] = len(references)
        references.append(_image_ref(path, ref, [path.parent], missing))
    pins = [dataclasses.replace(pin, style_index=index_of[pin.style_index]) for pin in recipe.pins
            if pin.style_index in index_of] if matches else []
    content_image = recipe.content if matches else RecipeImage(recipe.content.name, None)
    request = TransferRequest(_image_ref(content, content_image, [content.parent], missing), references, pins,
                              stage1=recipe.stage1, match=recipe.match, stage3=recipe.stage3, output=recipe.output)
    return Resolution(request, content, missing, matches)


def _image_ref(path: Path, image: RecipeImage, mask_folders: list[Path], missing: list[str]) -> ImageRef:
    """`path` with the recipe's region edit and user mask (found by hash in `mask_folders`, else listed missing)."""
    region_edit = None
    if image.region_edit is not None:
        from .stage1.edits import RegionEdit  # torch: only when there is an edit to rebuild

        region_edit = RegionEdit(image.region_edit)
    mask = None
    if image.user_mask is not None:
        mask = find_images([image.user_mask], (p for folder in mask_folders for p in images_in(folder))).get(
            image.user_mask.sha256)
        if mask is None:
            missing.append(f"{image.user_mask.name} (label mask)")
    return ImageRef(path, user_mask=mask, region_edit=region_edit)

