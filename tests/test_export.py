"""engine.export: each format read back at the right size and colour, tagged sRGB, with the metadata; TIFF 16-bit."""
from __future__ import annotations

import io
import json
import xml.etree.ElementTree as ElementTree

import numpy as np
import pytest
from PIL import Image, ImageCms

from engine.export import XMP_NAMESPACE, export_image, format_for, unique_path
from engine.results import save_png

TEXTS = {"stylegallery": json.dumps({"model": "tiny <random>", "pins": [{"region": 2}], "note": "a & b"})}


def picture(height: int = 24, width: int = 40) -> np.ndarray:
    """Flat colour blocks (lossy formats keep flat colours within a few levels)."""
    image = np.empty((height, width, 3), np.uint8)
    image[:, : width // 2] = (200, 100, 50)
    image[:, width // 2:] = (30, 160, 220)
    return image


def xmp_texts(info: dict) -> dict[str, str]:
    root = ElementTree.fromstring(info["xmp"].decode("utf-8").split("?>", 1)[1].rsplit("<?xpacket", 1)[0])
    return {element.tag.split("}")[1]: element.text for element in root.iter()
            if element.tag.startswith("{" + XMP_NAMESPACE)}


def is_srgb(icc: bytes) -> bool:
    return ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(icc))).strip().startswith("sRGB")


@pytest.mark.parametrize("fmt, suffix, tolerance", [("png", ".png", 0), ("jpeg", ".jpg", 6), ("webp", ".webp", 6),
                                                    ("tiff", ".tif", 0)])
def test_each_format_reads_back_at_its_size_and_colour_with_metadata(tmp_path, fmt, suffix, tolerance):
    image = picture()
    path = export_image(tmp_path / f"out{suffix}", image, fmt, quality=95, texts=TEXTS)
    assert format_for(path) == fmt and not list(tmp_path.glob("*.partial*"))
    with Image.open(path) as saved:
        assert saved.size == (40, 24)
        pixels = np.asarray(saved.convert("RGB"), dtype=int)
        info = saved.info
    assert np.abs(pixels[12, 5] - (200, 100, 50)).max() <= tolerance
    assert np.abs(pixels[12, 35] - (30, 160, 220)).max() <= tolerance
    if fmt == "png":
        assert info["srgb"] == 0 and info["stylegallery"] == TEXTS["stylegallery"]
    else:
        assert is_srgb(info["icc_profile"])
        assert xmp_texts(info) == TEXTS


def test_tiff_is_16_bit_from_uint8_and_keeps_a_float_result_s_precision(tmp_path):
    image = picture()
    path = export_image(tmp_path / "out.tif", image, "tiff")
    with Image.open(path) as saved:
        assert saved.tag_v2[258] == (16, 16, 16)
        offset = saved.tag_v2[273][0]
    raw = np.frombuffer(path.read_bytes()[offset:], "<u2").reshape(24, 40, 3)
    assert (raw == image.astype(np.uint16) * 257).all()
    smooth = np.linspace(0, 1, 24 * 40 * 3).reshape(24, 40, 3)
    path = export_image(tmp_path / "float.tif", smooth, "tiff")
    raw = np.frombuffer(path.read_bytes()[-smooth.size * 2:], "<u2").reshape(smooth.shape)
    assert np.abs(raw / 65535 - smooth).max() <= 0.5 / 65535 + 1e-9
    assert len(np.unique(raw)) > 256  # more levels than 8 bits have


def test_quality_sets_the_lossy_formats_size(tmp_path):
    noisy = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    for fmt in ("jpeg", "webp"):
        low = export_image(tmp_path / f"low.{fmt}", noisy, fmt, quality=20).stat().st_size
        high = export_image(tmp_path / f"high.{fmt}", noisy, fmt, quality=95).stat().st_size
        assert low < high


def test_a_result_png_is_tagged_srgb(tmp_path):
    path = save_png(tmp_path / "result.png", picture(), {"status": "finished"})
    with Image.open(path) as saved:
        assert saved.info["srgb"] == 0 and json.loads(saved.info["stylegallery"]) == {"status": "finished"}


def test_unique_path_never_names_an_existing_file(tmp_path):
    first = unique_path(tmp_path, "photo-result.png")
    first.write_bytes(b"x")
    second = unique_path(tmp_path, "photo-result.png")
    second.write_bytes(b"x")
    assert [first.name, second.name, unique_path(tmp_path, "photo-result.png").name] == [
        "photo-result.png", "photo-result (2).png", "photo-result (3).png"]
