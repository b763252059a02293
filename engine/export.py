"""Writing a picture for the artist's next tool: PNG, JPEG, WebP or 16-bit TIFF, tagged as sRGB (the space every
picture is in once loaded: engine/images.py), with the result's metadata where the format has room, and atomically
(written beside, then renamed into place: an interrupted save never leaves half a picture under the artist's name).

Metadata is the text chunks of a result PNG, whatever engine/results.py puts there: a PNG keeps them as text chunks;
JPEG, WebP and TIFF carry them in an XMP packet, one element per chunk in StyleGallery's namespace (XMP is what
Photoshop, Krita and exiftool keep and show). A JPEG's XMP must fit one 64 KB segment: larger metadata is left out
of a JPEG, with a warning in the log (the result's own PNG keeps it).
"""
from __future__ import annotations

import io
import logging
import os
import struct
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
from PIL import Image, PngImagePlugin

from .images import load_image, srgb_profile

log = logging.getLogger(__name__)

FORMAT_LABELS = {"png": "PNG", "jpeg": "JPEG", "webp": "WebP", "tiff": "TIFF (16-bit)"}
SUFFIXES = {"png": ".png", "jpeg": ".jpg", "webp": ".webp", "tiff": ".tif"}
_SUFFIX_FORMATS = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".webp": "webp", ".tif": "tiff", ".tiff": "tiff"}
QUALITY_FORMATS = ("jpeg", "webp")  # the lossy ones: the others ignore the quality
DEFAULT_QUALITY = 92  # JPEG/WebP: no visible loss on a painting-like picture, a third of the PNG's size
QUALITY_RANGE = (1, 100)
SRGB_RENDERING_INTENT = 0  # the PNG sRGB chunk's value: perceptual
XMP_NAMESPACE = "urn:stylegallery:metadata:1"
JPEG_XMP_LIMIT = 65_000  # an APP1 segment holds 65,533 bytes, less XMP's own header
MAX_UNIQUE_NAMES = 10_000  # `unique_path` tries this many numbered names, then gives up


def format_for(path: Path) -> str | None:
    """The export format a file name asks for ("png", "jpeg", "webp", "tiff"), or None."""
    return _SUFFIX_FORMATS.get(Path(path).suffix.lower())


def encode_image(image: np.ndarray, fmt: str, quality: int = DEFAULT_QUALITY,
                 texts: dict[str, str] | None = None) -> bytes:
    """`image` (HxWx3, uint8 or float in 0..1) encoded as `fmt`, tagged sRGB, with `texts` as metadata.

    TIFF is 16 bits per channel: a float image keeps its precision, uint8 is scaled by 257 (255 -> 65535)."""
    texts = texts or {}
    array = np.asarray(image)
    if array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f"an RGB image is needed, not an array of shape {array.shape}")
    if fmt == "tiff":
        return _tiff16(_quantise(array, 65535, np.dtype("<u2")), srgb_profile().tobytes(), _xmp(texts))
    if fmt not in FORMAT_LABELS:
        raise ValueError(f"unknown export format {fmt!r}: one of {', '.join(FORMAT_LABELS)}")
    picture = Image.fromarray(_quantise(array, 255, np.dtype(np.uint8)), "RGB")
    buffer = io.BytesIO()
    if fmt == "png":
        info = PngImagePlugin.PngInfo()
        info.add(b"sRGB", bytes([SRGB_RENDERING_INTENT]))
        for key, text in texts.items():
            info.add_text(key, text)
        picture.save(buffer, "PNG", pnginfo=info)
        return buffer.getvalue()
    xmp = _xmp(texts)
    if fmt == "jpeg" and len(xmp) > JPEG_XMP_LIMIT:
        log.warning("the metadata (%d bytes) does not fit a JPEG: exported without it", len(xmp))
        xmp = b""
    quality = min(max(int(quality), QUALITY_RANGE[0]), QUALITY_RANGE[1])
    options = {"quality": quality, "icc_profile": srgb_profile().tobytes(), "xmp": xmp}
    picture.save(buffer, "JPEG" if fmt == "jpeg" else "WEBP", **options)
    return buffer.getvalue()


def read_png(path: Path) -> tuple[np.ndarray, dict[str, str]]:
    """A saved result's pixels (uint8 HxWx3) and text chunks (its metadata), to carry into another format; raises
    ImageUnreadable."""
    pixels = np.asarray(load_image(path))
    try:
        with Image.open(path, formats=("PNG",)) as png:
            return pixels, dict(png.text)
    except (OSError, SyntaxError, ValueError):  # not a PNG after all, or damaged chunks: the pixels alone
        return pixels, {}


def export_image(path: Path, image: np.ndarray, fmt: str, quality: int = DEFAULT_QUALITY,
                 texts: dict[str, str] | None = None) -> Path:
    """Encode (`encode_image`) and write `path` atomically."""
    return write_atomic(path, encode_image(image, fmt, quality, texts))


def write_atomic(path: Path, data: bytes) -> Path:
    """`data` written to NAME.partial.SUFFIX beside `path`, then renamed onto it; a failed write leaves nothing."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial" + path.suffix)
    try:
        with open(partial, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        partial.replace(path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return path


def unique_path(folder: Path, name: str) -> Path:
    """`folder / name`, or the first free `stem (2).suffix`, `stem (3).suffix`...: never an existing file."""
    candidate = Path(folder) / name
    stem, suffix = candidate.stem, candidate.suffix
    for number in range(2, MAX_UNIQUE_NAMES + 2):
        if not candidate.exists():
            return candidate
        candidate = candidate.with_name(f"{stem} ({number}){suffix}")
    raise FileExistsError(f"{MAX_UNIQUE_NAMES} files named like {name} are already in {folder}")


def _quantise(array: np.ndarray, peak: int, dtype: np.dtype) -> np.ndarray:
    """uint8 or float (0..1) pixels as integers up to `peak` (255 or 65535)."""
    if array.dtype == np.uint8:
        return (array.astype(np.uint32) * (peak // 255)).astype(dtype)
    values = np.nan_to_num(array.astype(np.float64), nan=0.0)
    return np.round(np.clip(values, 0.0, 1.0) * peak).astype(dtype)


def _xmp(texts: dict[str, str]) -> bytes:
    """An XMP packet with each text as an element of StyleGallery's namespace; empty without texts."""
    if not texts:
        return b""
    fields = "".join(f"<sg:{key}>{escape(text)}</sg:{key}>" for key, text in texts.items())
    return ('<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
            '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
            f'<rdf:Description rdf:about="" xmlns:sg="{XMP_NAMESPACE}">{fields}</rdf:Description>'
            '</rdf:RDF></x:xmpmeta><?xpacket end="w"?>').encode("utf-8")


def _tiff16(pixels: np.ndarray, icc: bytes, xmp: bytes) -> bytes:
    """A baseline little-endian TIFF, 3 x 16-bit RGB in one uncompressed strip after the directory and its
    out-of-line values, with the ICC profile and the XMP (Pillow writes 8-bit RGB only)."""
    height, width, _ = pixels.shape
    data = np.ascontiguousarray(pixels).tobytes()
    short, long, rational, undefined = 3, 4, 5, 7  # TIFF field types
    entries = [(256, long, [width]), (257, long, [height]), (258, short, [16, 16, 16]), (259, short, [1]),
               (262, short, [2]), (273, long, [0]), (277, short, [3]), (278, long, [height]),
               (279, long, [len(data)]), (282, rational, [72, 1]), (283, rational, [72, 1]), (284, short, [1]),
               (296, short, [2])] + [(700, undefined, xmp)] * bool(xmp) + [(34675, undefined, icc)]
    packed = [(tag, kind, *_tiff_values(kind, values)) for tag, kind, values in entries]
    directory_end = 8 + 2 + 12 * len(packed) + 4
    extra, offsets = b"", {}
    for tag, _, _, raw in packed:  # values over 4 bytes go after the directory, each on a word boundary
        if len(raw) > 4:
            offsets[tag] = directory_end + len(extra)
            extra += raw + bytes(len(raw) % 2)
    inline = {273: struct.pack("<I", directory_end + len(extra))}  # the strip comes last
    fields = b"".join(struct.pack("<HHI", tag, kind, count)
                      + (struct.pack("<I", offsets[tag]) if tag in offsets else inline.get(tag, raw).ljust(4, b"\0"))
                      for tag, kind, count, raw in packed)
    return b"II*\0" + struct.pack("<IH", 8, len(packed)) + fields + struct.pack("<I", 0) + extra + data


def _tiff_values(kind: int, values) -> tuple[int, bytes]:
    """(count, little-endian bytes) of a TIFF field's values."""
    if isinstance(values, bytes):
        return len(values), values
    code = {3: "H", 4: "I", 5: "I"}[kind]
    return len(values) // (2 if kind == 5 else 1), struct.pack(f"<{len(values)}{code}", *values)
