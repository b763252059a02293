"""Colour on load: photos with an embedded ICC profile become sRGB; HEIC/HEIF needs the optional extra.

The Display P3 profile is written here byte by byte (ICC v2, matrix/TRC: P3 primaries, D65 white, sRGB's tone
curve), and the expected sRGB values come from the colour-space matrices computed here, not from Little CMS.
"""
from __future__ import annotations

import struct
import sys

import numpy as np
import pytest
from PIL import Image, ImageCms

from engine.errors import ImageUnreadable
from engine.images import load_image
from tests.test_gui_support import make_window, write_image  # noqa: F401 (fixture)

D65 = (0.3127, 0.3290)
P3_PRIMARIES = ((0.680, 0.320), (0.265, 0.690), (0.150, 0.060))
SRGB_PRIMARIES = ((0.640, 0.330), (0.300, 0.600), (0.150, 0.060))
D50_XYZ = (0.9642, 1.0, 0.8249)
BRADFORD = np.array([[0.8951, 0.2664, -0.1614], [-0.7502, 1.7135, 0.0367], [0.0389, -0.0685, 1.0296]])


def xyz(xy) -> np.ndarray:
    x, y = xy
    return np.array([x / y, 1.0, (1 - x - y) / y])


def rgb_to_xyz(primaries, white=D65) -> np.ndarray:
    """Linear RGB -> XYZ (columns: the primaries, scaled so that RGB 1,1,1 is the white)."""
    columns = np.stack([xyz(p) for p in primaries], axis=1)
    return columns * np.linalg.solve(columns, xyz(white))


def srgb_decode(v: np.ndarray) -> np.ndarray:
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def srgb_encode(v: np.ndarray) -> np.ndarray:
    return np.where(v <= 0.0031308, v * 12.92, 1.055 * np.power(v, 1 / 2.4) - 0.055)


def p3_to_srgb(rgb) -> np.ndarray:
    """The expected 8-bit sRGB of an 8-bit Display P3 colour (relative colorimetric: out of gamut clipped)."""
    linear = np.linalg.solve(rgb_to_xyz(SRGB_PRIMARIES), rgb_to_xyz(P3_PRIMARIES) @ srgb_decode(np.asarray(rgb) / 255))
    return np.round(srgb_encode(np.clip(linear, 0, 1)) * 255)


def _s15(value: float) -> bytes:
    return struct.pack(">i", round(value * 65536))


def display_p3_icc() -> bytes:
    """An ICC v2 display profile: P3 colorants (adapted to the D50 connection space with Bradford, as ICC asks),
    D50 white point, sRGB's curve as a 1024-entry table for the three channels."""
    cone = BRADFORD @ xyz(D65), BRADFORD @ np.array(D50_XYZ)
    adapt = np.linalg.inv(BRADFORD) @ np.diag(cone[1] / cone[0]) @ BRADFORD
    colorants = adapt @ rgb_to_xyz(P3_PRIMARIES)

    def xyz_tag(values) -> bytes:
        return b"XYZ " + bytes(4) + b"".join(_s15(v) for v in values)

    text = b"Display P3 (test)"
    curve = np.round(srgb_decode(np.linspace(0, 1, 1024)) * 65535).astype(">u2").tobytes()
    tags = [(b"desc", b"desc" + bytes(4) + struct.pack(">I", len(text) + 1) + text + bytes(1) + bytes(8) + bytes(3)
             + bytes(67)),
            (b"cprt", b"text" + bytes(4) + b"No copyright\0"),
            (b"wtpt", xyz_tag(D50_XYZ)),
            (b"rXYZ", xyz_tag(colorants[:, 0])), (b"gXYZ", xyz_tag(colorants[:, 1])), (b"bXYZ", xyz_tag(colorants[:, 2])),
            (b"rTRC", b"curv" + bytes(4) + struct.pack(">I", 1024) + curve)]
    tags += [(b"gTRC", None), (b"bTRC", None)]  # the same curve as rTRC
    offset = 128 + 4 + 12 * len(tags)
    table, data, placed = [], b"", {}
    for signature, body in tags:
        if body is None:
            table.append((signature, *placed[b"rTRC"]))
            continue
        body += bytes(-len(body) % 4)
        placed[signature] = (offset + len(data), len(body))
        table.append((signature, *placed[signature]))
        data += body
    size = offset + len(data)
    header = (struct.pack(">I", size) + bytes(4) + bytes([2, 0x10, 0, 0]) + b"mntrRGB XYZ " + bytes(12) + b"acsp"
              + bytes(24) + struct.pack(">I", 0) + b"".join(_s15(v) for v in D50_XYZ) + bytes(48))
    assert len(header) == 128
    return header + struct.pack(">I", len(tags)) + b"".join(struct.pack(">4sII", *entry) for entry in table) + data


P3_COLOURS = [(255, 0, 0), (200, 100, 50), (40, 180, 90), (128, 128, 128)]


def p3_photo(path, fmt: str = "PNG"):
    pixels = np.zeros((16, 32, 3), np.uint8)
    for index, colour in enumerate(P3_COLOURS):
        pixels[:, index * 8:(index + 1) * 8] = colour
    Image.fromarray(pixels).save(path, fmt, icc_profile=display_p3_icc())
    return path


def test_the_test_profile_is_display_p3():
    """The hand-written profile is read by Little CMS as the P3 it claims (its red is P3's, not sRGB's)."""
    profile = ImageCms.ImageCmsProfile(__import__("io").BytesIO(display_p3_icc()))
    assert ImageCms.getProfileDescription(profile).strip() == "Display P3 (test)"
    assert p3_to_srgb((255, 0, 0)).tolist() == [255, 0, 0]  # P3's red lies outside sRGB: clipped
    assert p3_to_srgb((128, 128, 128)).tolist() == [128, 128, 128]  # same white, same curve: greys stay


def test_a_display_p3_photo_loads_as_srgb(tmp_path):
    loaded = np.asarray(load_image(p3_photo(tmp_path / "p3.png")), dtype=int)
    for index, colour in enumerate(P3_COLOURS):
        expected = p3_to_srgb(colour)
        assert np.abs(loaded[8, index * 8 + 4] - expected).max() <= 2, (colour, loaded[8, index * 8 + 4], expected)
    assert np.abs(loaded[8, 12] - (200, 100, 50)).max() > 10  # a converted colour, not the stored one


def test_srgb_profiles_label_maps_and_damaged_profiles_keep_their_values(tmp_path):
    """An sRGB profile needs no conversion (the pixels, and so the photo's hash, stay exact); a label map is ids,
    not colours, so its values stay even under a P3 profile; a damaged profile is ignored, not an error."""
    pixels = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    Image.fromarray(pixels).save(tmp_path / "srgb.png", icc_profile=srgb)
    assert (np.asarray(load_image(tmp_path / "srgb.png")) == pixels).all()
    Image.fromarray(pixels).save(tmp_path / "mask.png", icc_profile=display_p3_icc())
    assert (np.asarray(load_image(tmp_path / "mask.png", colour_managed=False)) == pixels).all()
    Image.fromarray(pixels).save(tmp_path / "bad.png", icc_profile=b"not an ICC profile at all" * 8)
    assert (np.asarray(load_image(tmp_path / "bad.png")) == pixels).all()  # a damaged profile: values as sRGB


def test_heic_without_pillow_heif_names_the_extra(tmp_path, monkeypatch):
    """Without the optional extra: a message naming it (in the GUI's banner and the CLI's one line)."""
    monkeypatch.setitem(sys.modules, "pillow_heif", None)  # `import pillow_heif` now raises ImportError
    photo = tmp_path / "IMG_0001.HEIC"
    photo.write_bytes(b"\0\0\0\x18ftypheic\0\0\0\0mif1heic" + bytes(64))
    with pytest.raises(ImageUnreadable) as error:
        load_image(photo)
    assert "IMG_0001.HEIC" in str(error.value) and "heif" in str(error.value)
    assert 'pip install "stylegallery[heif]"' in error.value.hint
    renamed = tmp_path / "photo.jpg"  # a HEIC renamed: known by its brand
    renamed.write_bytes(photo.read_bytes())
    with pytest.raises(ImageUnreadable, match="HEIC/HEIF"):
        load_image(renamed)


def test_heic_without_pillow_heif_is_one_line_in_the_cli(tmp_path, monkeypatch, capsys):
    from main import main

    monkeypatch.setitem(sys.modules, "pillow_heif", None)
    photo = tmp_path / "photo.heic"
    photo.write_bytes(b"\0\0\0\x18ftypheic\0\0\0\0mif1heic" + bytes(64))
    with pytest.raises(SystemExit) as exit_info:
        main(["analyze", str(photo), "--out", str(tmp_path / "out"), "--offline"])
    assert exit_info.value.code != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("stylegallery: error: photo.heic is a HEIC/HEIF photo")
    assert "stylegallery[heif]" in err[0]


def test_heic_opens_with_pillow_heif(tmp_path):
    pillow_heif = pytest.importorskip("pillow_heif", reason="the optional heif extra is not installed")
    pillow_heif.register_heif_opener()
    Image.fromarray(np.full((32, 48, 3), (200, 100, 50), np.uint8)).save(tmp_path / "photo.heic", quality=100)
    loaded = np.asarray(load_image(tmp_path / "photo.heic"), dtype=int)
    assert loaded.shape == (32, 48, 3) and np.abs(loaded[16, 24] - (200, 100, 50)).max() <= 6


def test_heic_without_pillow_heif_is_a_message_in_the_window(make_window, tmp_path, monkeypatch):
    """Opened as the photo, or found in a reference folder: the banner names the extra; the rest still comes in."""
    monkeypatch.setitem(sys.modules, "pillow_heif", None)
    folder = tmp_path / "refs"
    write_image(folder / "a.png")
    (folder / "b.heic").write_bytes(b"\0\0\0\x18ftypheic\0\0\0\0mif1heic" + bytes(64))
    window = make_window()
    assert not window.controller.open_content(folder / "b.heic")
    assert "heif" in window.session.error.message and "stylegallery[heif]" in window.session.error.hint
    window.controller.add_references([folder])
    assert [r.name for r in window.gallery.references] == ["a"]
    assert "b.heic is a HEIC/HEIF photo" in window.session.error.message
