"""Hostile, damaged and unusual files fed to every loader: a typed error with a clear message, or a correct image.

Never a crash and never a bare library exception: the GUI shows StyleGalleryError messages, and anything else
would end a run with a traceback.
"""
from __future__ import annotations

import io
import json
import os
import pickle
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from engine.errors import ImageTooLarge, ImageUnreadable, ModelMissing, StyleGalleryError, UnsafeCheckpoint
from engine.images import load_image

REPO = Path(__file__).resolve().parents[1]
RED, BLUE, WHITE = (255, 0, 0), (0, 0, 255), (255, 255, 255)


def _encoded(img: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, fmt, **options)
    return buffer.getvalue()


def _photo() -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (32, 48, 3), dtype=np.uint8))


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _huge_png_header() -> bytes:
    """A valid PNG signature and header claiming 100000 x 100000 pixels, with no pixel data at all."""
    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IEND", b"")


def _huge_jpeg_header() -> bytes:
    """A real JPEG whose frame header (SOF0) is patched to claim 65535 x 65535 pixels."""
    data = bytearray(_encoded(_photo(), "JPEG"))
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", 65535, 65535)
    return bytes(data)


def _eps() -> bytes:
    """An EPS file: Pillow would pass it to Ghostscript, so the loader must not even try its decoder."""
    return b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 64 64\nnewpath 0 0 moveto 64 64 lineto stroke\n%%EOF\n"


HOSTILE_IMAGES = {
    "truncated.png": lambda: _encoded(_photo(), "PNG")[:300],
    "truncated.jpg": lambda: _encoded(_photo(), "JPEG")[:400],
    "random.png": lambda: os.urandom(4096),
    "random.jpg": lambda: os.urandom(4096),
    "random.webp": lambda: b"RIFF" + os.urandom(2048),
    "random.tif": lambda: b"II*\x00" + os.urandom(2048),
    "empty.png": lambda: b"",
    "text.png": lambda: b"This is not an image, just a text file renamed to .png\n" * 20,
    "huge.png": _huge_png_header,
    "huge.jpg": _huge_jpeg_header,
    "vector.eps": _eps,
    "drawing.svg": lambda: b'<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"/>',
    "tiny.png": lambda: _encoded(Image.new("RGB", (4, 4)), "PNG"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE_IMAGES))
def test_hostile_image_gives_clear_typed_error(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(HOSTILE_IMAGES[name]())
    with pytest.raises(ImageUnreadable) as info:
        load_image(path)
    assert name in str(info.value) and info.value.hint
    if name.startswith("huge"):
        assert isinstance(info.value, ImageTooLarge) and "limit" in str(info.value)
    if name == "vector.eps":  # refused by format, before any decoder (or Ghostscript) sees it
        assert "not an image in a supported format" in str(info.value)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(ImageUnreadable, match="No image file"):
        load_image(tmp_path / "absent.png")
    (tmp_path / "folder.png").mkdir()
    with pytest.raises(ImageUnreadable, match="No image file"):
        load_image(tmp_path / "folder.png")


def test_pixel_limit_is_a_parameter(tmp_path):
    path = tmp_path / "photo.png"
    Image.new("RGB", (100, 100)).save(path)
    assert load_image(path, max_pixels=10_000).size == (100, 100)
    with pytest.raises(ImageTooLarge, match="100x100"):
        load_image(path, max_pixels=9_999)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root reads any file")
def test_unreadable_permissions(tmp_path):
    path = tmp_path / "locked.png"
    Image.new("RGB", (16, 16)).save(path)
    path.chmod(0)
    with pytest.raises(ImageUnreadable, match="permission denied"):
        load_image(path)


def test_cmyk_jpeg(tmp_path):
    path = tmp_path / "print.jpg"
    Image.new("CMYK", (16, 16), (0, 255, 255, 0)).save(path, "JPEG", quality=95)
    img = load_image(path)
    assert img.mode == "RGB"
    assert np.abs(np.asarray(img, dtype=int) - RED).max() <= 3


def test_sixteen_bit_png_scales_by_bit_depth(tmp_path):
    values = np.array([[0, 257, 32896, 65535] * 4] * 16, dtype=np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(values).save(path)
    assert Image.open(path).mode.startswith("I;16")
    img = np.asarray(load_image(path))
    assert img.shape == (16, 16, 3) and img.dtype == np.uint8
    assert img[0, :4, 0].tolist() == [0, 1, 128, 255]


def test_dark_sixteen_bit_png_stays_dark(tmp_path):
    """Values under 256 in a 16-bit file are near-black, not full 8-bit brightness."""
    path = tmp_path / "dark.png"
    Image.fromarray(np.full((16, 16), 200, dtype=np.uint16)).save(path)
    assert np.asarray(load_image(path)).max() <= 1


def test_rgba_composites_on_white(tmp_path):
    rgba = np.zeros((16, 16, 4), dtype=np.uint8)
    rgba[:, :8] = (255, 0, 0, 255)  # opaque red
    rgba[:, 8:12] = (0, 0, 0, 0)  # fully transparent
    rgba[:, 12:] = (0, 0, 0, 128)  # half-transparent black
    path = tmp_path / "alpha.png"
    Image.fromarray(rgba, "RGBA").save(path)
    img = np.asarray(load_image(path), dtype=int)
    assert img[0, 0].tolist() == list(RED) and img[0, 9].tolist() == list(WHITE)
    assert abs(img[0, 13, 0] - 127) <= 1


@pytest.mark.parametrize("mode", ["LA", "P"])
def test_grey_alpha_and_palette_transparency(tmp_path, mode):
    path = tmp_path / f"{mode}.png"
    if mode == "LA":
        Image.new("LA", (16, 16), (0, 0)).save(path)
    else:
        img = Image.new("P", (16, 16), 1)
        img.putpalette([0, 255, 0] + [255, 0, 0] * 255)
        img.paste(0, (0, 0, 8, 16))
        img.save(path, transparency=0)  # palette index 0 (green) is transparent
    img = np.asarray(load_image(path), dtype=int)
    assert img[0, 0].tolist() == list(WHITE)
    if mode == "P":
        assert img[0, 12].tolist() == list(RED)


@pytest.mark.parametrize("fmt, suffix", [("GIF", "gif"), ("WEBP", "webp"), ("PNG", "png")])
def test_animated_file_takes_first_frame(tmp_path, fmt, suffix):
    path = tmp_path / f"anim.{suffix}"
    frames = [Image.new("RGB", (16, 16), colour) for colour in (RED, BLUE, (0, 255, 0))]
    options = {"lossless": True} if fmt == "WEBP" else {}
    frames[0].save(path, fmt, save_all=True, append_images=frames[1:], duration=100, loop=0, **options)
    assert Image.open(path).n_frames == 3
    assert np.abs(np.asarray(load_image(path), dtype=int) - RED).max() <= 2


@pytest.mark.parametrize("orientation, red_at", [(1, "left"), (3, "right"), (6, "top"), (8, "bottom")])
def test_exif_orientation_applied(tmp_path, orientation, red_at):
    stored = Image.new("RGB", (40, 20), BLUE)
    stored.paste(RED, (0, 0, 20, 20))  # left half red as stored
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / "camera.jpg"
    stored.save(path, "JPEG", quality=95, exif=exif.tobytes())
    img = load_image(path)
    assert img.size == ((20, 40) if orientation in (6, 8) else (40, 20))
    w, h = img.size
    probe = {"left": (w // 4, h // 2), "right": (3 * w // 4, h // 2), "top": (w // 2, h // 4),
             "bottom": (w // 2, 3 * h // 4)}[red_at]
    assert np.abs(np.asarray(img.getpixel(probe)) - RED).max() <= 20


@pytest.mark.parametrize("mode", ["1", "I", "F", "L", "YCbCr"])
def test_other_modes_become_rgb8(tmp_path, mode):
    path = tmp_path / f"{mode}.tif"
    Image.new(mode, (16, 16), 1 if mode in ("1", "I", "F", "L") else (128, 128, 128)).save(path)
    img = load_image(path)
    assert img.mode == "RGB" and img.size == (16, 16)


MUTATION_FUZZ = """
import io, random, sys
import numpy as np
from PIL import Image
from engine.errors import StyleGalleryError
from engine.images import load_image

rng = np.random.default_rng(0)
photo = Image.fromarray(rng.integers(0, 256, (32, 48, 3), dtype=np.uint8))
exif = Image.Exif(); exif[0x0112] = 6
def encoded(img, fmt, **kw):
    b = io.BytesIO(); img.save(b, fmt, **kw); return b.getvalue()
seeds = {"png": encoded(photo, "PNG"), "jpg": encoded(photo, "JPEG", exif=exif.tobytes()),
         "gif": encoded(photo, "GIF", save_all=True, append_images=[photo.rotate(90)]),
         "webp": encoded(photo, "WEBP"), "tif": encoded(photo, "TIFF"), "bmp": encoded(photo, "BMP"),
         "cmyk.jpg": encoded(photo.convert("CMYK"), "JPEG"), "rgba.png": encoded(photo.convert("RGBA"), "PNG")}
r = random.Random(int(sys.argv[2]))
bad = []
for i in range(int(sys.argv[3])):
    suffix, data = r.choice(sorted(seeds.items()))
    data = bytearray(data)
    how = r.random()
    if how < 0.45:  # flip bytes
        for _ in range(r.randint(1, 12)):
            data[r.randrange(len(data))] = r.randrange(256)
    elif how < 0.75:  # truncate
        data = data[:r.randrange(len(data))]
    else:  # insert garbage
        at = r.randrange(len(data)); data[at:at] = r.randbytes(r.randint(1, 64))
    path = f"{sys.argv[1]}/f{i}.{suffix}"
    with open(path, "wb") as f:
        f.write(data)
    try:
        img = load_image(path)
        assert img.mode == "RGB", img.mode
    except StyleGalleryError:
        pass
    except BaseException as exc:
        bad.append(f"{suffix} #{i}: {type(exc).__name__}: {exc}")
print("\\n".join(bad))
"""


def test_mutated_files_never_crash_the_loader(tmp_path):
    """1500 randomly damaged PNG/JPEG/GIF/WebP/TIFF/BMP files, in a child process so a decoder crash is a failure."""
    result = subprocess.run([sys.executable, "-c", MUTATION_FUZZ, str(tmp_path), "20260601", "1500"], cwd=REPO,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"loader process died ({result.returncode}): {result.stderr[-2000:]}"
    assert result.stdout.strip() == "", "bare exceptions escaped load_image:\n" + result.stdout


# --- model files -------------------------------------------------------------------------------------------------

class _Payload:
    """Unpickling this runs code: it creates `marker`. A refused checkpoint must never get that far."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.mark.parametrize("suffix", [".ckpt", ".pt", ".pth", ".bin"])
def test_pickled_checkpoint_refused_without_unpickling(tmp_path, suffix):
    from engine.models import check_single_file

    marker = tmp_path / "code_ran"
    path = tmp_path / f"model{suffix}"
    path.write_bytes(pickle.dumps({"state_dict": _Payload(marker)}))
    with pytest.raises(UnsafeCheckpoint, match=f"model{suffix}") as info:
        check_single_file(path, allow_pickle=False)
    assert "safetensors" in info.value.hint
    assert not marker.exists()
    check_single_file(path, allow_pickle=True)  # the user's explicit opt-in lets it through


def test_folder_with_only_pickled_weights_refused(tmp_path):
    from engine.models import load_sd_folder

    marker = tmp_path / "code_ran"
    folder = tmp_path / "sd15"
    for component in ("unet", "vae", "text_encoder"):
        (folder / component).mkdir(parents=True)
        (folder / component / "config.json").write_text("{}")
    torch.save({"w": _Payload(marker)}, folder / "unet" / "diffusion_pytorch_model.bin")
    with pytest.raises(UnsafeCheckpoint, match="pickled .bin"):
        load_sd_folder(folder, torch.device("cpu"), torch.float32, allow_pickle=False, model_id="x")
    assert not marker.exists()


def _safetensors_header_bomb() -> bytes:
    return struct.pack("<Q", 10**15) + b"{}"


DAMAGED_SD_FILES = {
    "unet weights truncated": ("unet/diffusion_pytorch_model.safetensors", lambda b: b[: len(b) // 2]),
    "unet weights random": ("unet/diffusion_pytorch_model.safetensors", lambda b: os.urandom(4096)),
    "unet weights empty": ("unet/diffusion_pytorch_model.safetensors", lambda b: b""),
    "unet header bomb": ("unet/diffusion_pytorch_model.safetensors", lambda b: _safetensors_header_bomb()),
    "vae weights text": ("vae/diffusion_pytorch_model.safetensors", lambda b: b"not weights\n" * 50),
    "unet config truncated": ("unet/config.json", lambda b: b[: len(b) // 2]),
    "vae config binary": ("vae/config.json", lambda b: b"\x00\xff" * 10),
    "text encoder weights random": ("text_encoder/model.safetensors", lambda b: os.urandom(4096)),
    "text encoder config a list": ("text_encoder/config.json", lambda b: json.dumps([1, 2]).encode()),
}


@pytest.fixture(scope="module")
def sd_folder_source(tiny_models_dir) -> Path:
    return tiny_models_dir / "sd15"


@pytest.mark.parametrize("case", list(DAMAGED_SD_FILES))
def test_damaged_model_folder_gives_clear_error(tmp_path, sd_folder_source, case):
    from engine.models import load_sd_folder

    relative, damage = DAMAGED_SD_FILES[case]
    folder = tmp_path / "sd15"
    shutil.copytree(sd_folder_source, folder, copy_function=os.symlink)  # links: cheap; only the damaged file is real
    target = folder / relative
    original = target.read_bytes()
    target.unlink()
    target.write_bytes(damage(original))
    with pytest.raises(StyleGalleryError) as info:
        load_sd_folder(folder, torch.device("cpu"), torch.float32, allow_pickle=False, model_id="x")
    assert isinstance(info.value, ModelMissing) and info.value.hint
    assert str(folder) in str(info.value)


DAMAGED_CHECKPOINTS = {
    "truncated": lambda original: original[: len(original) // 3],
    "random bytes": lambda original: os.urandom(4096),
    "empty": lambda original: b"",
    "header bomb": lambda original: _safetensors_header_bomb(),
    "not a Stable Diffusion checkpoint": lambda original: _other_weights(),
}


def _other_weights() -> bytes:
    from safetensors.torch import save

    return save({"classifier.weight": torch.zeros(4, 4)})


@pytest.mark.parametrize("case", sorted(DAMAGED_CHECKPOINTS))
def test_damaged_single_file_checkpoint_gives_clear_error(tmp_path, tiny_models_dir, case):
    from engine.models import load_sd_single_file

    path = tmp_path / "artist_model.safetensors"
    path.write_bytes(DAMAGED_CHECKPOINTS[case]((tiny_models_dir / "sd15.safetensors").read_bytes()))
    with pytest.raises(ModelMissing, match="artist_model.safetensors") as info:
        load_sd_single_file(path, tiny_models_dir / "sd15", torch.device("cpu"), torch.float32, model_id="x")
    assert info.value.hint


def test_a_jpeg_over_the_limit_opens_downscaled(tmp_path):
    """Over the pixel limit, a JPEG decodes reduced straight from its data (the method works at 512 anyway)."""
    path = tmp_path / "big.jpg"
    Image.new("RGB", (400, 300), (200, 40, 40)).save(path)
    image = load_image(path, max_pixels=40_000)
    assert image.size[0] * image.size[1] <= 40_000 and image.size[0] / image.size[1] == pytest.approx(4 / 3)


def test_over_the_limit_is_said_in_the_app_words(tmp_path, monkeypatch):
    """Pillow's own bomb check (warning, then error) must not reach people: no 'decompression bomb' text, no
    pointer to a setting that does not exist."""
    path = tmp_path / "poster.png"
    Image.new("RGB", (300, 300)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 50_000)  # Pillow warns over 50k pixels, refuses over 100k
    assert load_image(path, max_pixels=100_000).size == (300, 300)
    for limit in (50_000, 100):
        with pytest.raises(ImageTooLarge) as info:
            load_image(path, max_pixels=limit)
        assert "bomb" not in str(info.value).lower() and "Settings" not in info.value.hint


def test_a_file_name_too_long_is_a_clear_error(tmp_path):
    with pytest.raises(ImageUnreadable, match="too long"):
        load_image(tmp_path / ("x" * 300 + ".png"))
