"""Opening images safely and preparing them for the method.

Every image the engine reads goes through `load_image`: a pixel-count limit (decompression bombs),
EXIF orientation, first frame of animations, any mode (alpha, CMYK, 16-bit, palette) to 8-bit RGB, and an
embedded ICC profile (Display P3, Adobe RGB, a camera's) converted to sRGB, the space the models were trained on:
without it a P3 photo's values are read as sRGB and every colour comes out dull.
Only the common photo formats are tried: Pillow's rarer decoders are less hardened, and its EPS
plugin would hand the file to Ghostscript. HEIC/HEIF (phones' photos) opens through the optional pillow-heif.
"""
from __future__ import annotations

import hashlib
import io
import logging
import struct
import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

from .errors import ImageTooLarge, ImageUnreadable, describe_os_error

log = logging.getLogger(__name__)

MAX_PIXELS = 64_000_000  # about 8000x8000: far above any photo an artist restyles at 512
MIN_SIDE = 8
FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "TIFF", "GIF", "AVIF")  # JPEG covers MPO (camera multi-picture)
# what a folder of pictures is read for (the gallery's folder drops, the command line's --content DIR)
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".heic", ".heif"}
_SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I;16N")
HEIF_SUFFIXES = (".heic", ".heif", ".hif")
HEIF_BRANDS = (b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs")  # ftyp brands of HEIC files
HEIF_EXTRA_HINT = ('Install the optional extra: pip install "stylegallery[heif]" (pillow-heif), '
                   "or export the photo as JPEG or PNG.")
_PROFILE_MODES = {"RGB": "RGB", "GRAY": "L", "CMYK": "CMYK"}  # an ICC colour space -> the PIL mode it describes


def load_image(path: str | Path, max_pixels: int = MAX_PIXELS, colour_managed: bool = True) -> Image.Image:
    """Open `path` as an 8-bit sRGB PIL image or raise ImageUnreadable / ImageTooLarge with a clear message.

    A JPEG over `max_pixels` is decoded downscaled (by 2, 4 or 8, straight from the compressed data, so the full
    size is never in memory): the method works at about 512 pixels anyway. Other formats over the limit are refused
    from their header, before any pixel is decoded. `colour_managed=False` keeps the stored values (label maps:
    their colours are region ids, not colours).
    """
    path = Path(path)
    try:
        is_file = path.is_file()
    except OSError as exc:  # e.g. a file-name part over 255 characters
        raise ImageUnreadable(f"{path.name[:80]} cannot be opened: {describe_os_error(exc)}") from exc
    if not is_file:
        raise ImageUnreadable(f"No image file at {path}")
    formats = heif_formats(path) if is_heif(path) else FORMATS
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the limit below is ours
            with Image.open(path, formats=formats) as img:
                width, height = img.size
                if width * height > max_pixels:
                    _decode_downscaled(img, path.name, max_pixels)
                img.seek(0)
                icc = img.info.get("icc_profile") if colour_managed else None
                img = ImageOps.exif_transpose(img)
                rgb = img if img.mode == "CMYK" and icc else to_rgb8(img)  # CMYK goes through its own profile
                if icc:
                    srgb = to_srgb(rgb, icc, path.name)
                    rgb = to_rgb8(rgb) if srgb is None else srgb
    except (ImageTooLarge, ImageUnreadable):
        raise
    except Image.DecompressionBombError as exc:
        raise ImageTooLarge(f"{path.name} is too large to open: far over StyleGallery's limit of "
                            f"{max_pixels / 1e6:.0f} megapixels") from exc
    except PermissionError as exc:
        raise ImageUnreadable(f"{path.name} cannot be read: permission denied",
                              hint="Check the file's permissions, or copy it somewhere you can read.") from exc
    except UnidentifiedImageError as exc:
        raise ImageUnreadable(f"{path.name} is not an image in a supported format "
                              f"({', '.join(FORMATS)})") from exc
    except (OSError, ValueError, SyntaxError, EOFError, struct.error, IndexError, KeyError, TypeError,
            ZeroDivisionError) as exc:  # what Pillow's decoders raise on damaged data
        raise ImageUnreadable(f"{path.name} is not a readable image ({type(exc).__name__}: {exc})") from exc
    if min(rgb.size) < MIN_SIDE:
        raise ImageUnreadable(f"{path.name} is only {rgb.size[0]}x{rgb.size[1]} pixels; "
                              f"at least {MIN_SIDE}x{MIN_SIDE} is needed")
    return rgb


def is_heif(path: Path) -> bool:
    """A HEIC/HEIF photo, by its suffix or (renamed) by the brand in its first bytes."""
    if path.suffix.lower() in HEIF_SUFFIXES:
        return True
    try:
        with open(path, "rb") as file:
            head = file.read(12)
    except OSError:
        return False  # load_image reports an unreadable file in its own words
    return head[4:8] == b"ftyp" and head[8:12] in HEIF_BRANDS


def heif_formats(path: Path) -> tuple[str, ...]:
    """The formats to try for a HEIC/HEIF file: ours plus pillow-heif's, or a message naming the extra to install."""
    try:
        import pillow_heif
    except ImportError as exc:
        raise ImageUnreadable(f"{path.name} is a HEIC/HEIF photo, which needs StyleGallery's optional 'heif' extra",
                              hint=HEIF_EXTRA_HINT) from exc
    pillow_heif.register_heif_opener()
    return FORMATS + ("HEIF",)


@lru_cache(maxsize=1)
def srgb_profile() -> ImageCms.ImageCmsProfile:
    """Little CMS's built-in sRGB: the space images are converted to on load and tagged with on save."""
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


def to_srgb(img: Image.Image, icc: bytes, name: str) -> Image.Image | None:
    """`img` (8-bit RGB, or CMYK as decoded) converted from its embedded ICC profile to 8-bit sRGB, relative
    colorimetric (colours outside sRGB are clipped, as viewers show them). None when the stored values are to be read
    as sRGB: the profile is sRGB already (converting would only round, and change the photo's hash), or (with a
    warning in the log) it is damaged or does not fit the image."""
    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        space = profile.profile.xcolor_space.strip()
        if space == "RGB" and ImageCms.getProfileDescription(profile).strip().lower().startswith("srgb"):
            return None
        mode = _PROFILE_MODES.get(space)
        if mode is None or (mode == "CMYK") != (img.mode == "CMYK"):
            log.warning("%s: its %s colour profile does not fit its %s pixels; read as sRGB", name, space, img.mode)
            return None
        return ImageCms.profileToProfile(img.convert(mode), profile, srgb_profile(),
                                         renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC, outputMode="RGB")
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError) as exc:
        log.warning("%s: its colour profile is unusable (%s); read as sRGB", name, exc)
        return None


def _decode_downscaled(img: Image.Image, name: str, max_pixels: int) -> None:
    """Set a JPEG over `max_pixels` to decode at the smallest reduction (1/2, 1/4, 1/8) that fits; refuse others,
    and JPEGs too large even at 1/8, in the app's words."""
    width, height = img.size
    scale = next((s for s in (2, 4, 8) if (width // s) * (height // s) <= max_pixels), None)
    if img.format == "JPEG" and scale is not None:
        img.draft("RGB", (width // scale, height // scale))
        return
    raise ImageTooLarge(f"{name} is {width}x{height} pixels ({width * height / 1e6:.0f} megapixels), over "
                        f"StyleGallery's limit of {max_pixels / 1e6:.0f} megapixels (it works at about 512 pixels)")


def to_rgb8(img: Image.Image) -> Image.Image:
    """Any PIL mode to 8-bit RGB; transparency is composited on white (what an artist sees in a viewer)."""
    img.load()
    if img.mode in _SIXTEEN_BIT or img.mode == "I":
        arr = np.asarray(img, dtype=np.float64)
        # 16-bit data spans 0..65535 even when dark; 32-bit "I" has no fixed range, so guess from the values.
        peak = 65535.0 if img.mode in _SIXTEEN_BIT or arr.max() > 255 else 255.0
        img = Image.fromarray(np.clip(arr / peak * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    elif img.mode == "F":
        arr = np.nan_to_num(np.asarray(img, dtype=np.float64))
        img = Image.fromarray(np.clip(arr * (255.0 if arr.max() <= 1.0 else 1.0) + 0.5, 0, 255).astype(np.uint8), "L")
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def pixel_sha256(img: Image.Image) -> str:
    """Hash of the decoded RGB pixels and size: the same picture saved twice hashes the same."""
    digest = hashlib.sha256(f"{img.size[0]}x{img.size[1]}".encode())
    digest.update(np.ascontiguousarray(np.asarray(img.convert("RGB"))).tobytes())
    return digest.hexdigest()


def resize_to(img: Image.Image, size: tuple[int, int]) -> Image.Image:
    """The latent branch's resize: PIL bicubic to exactly (width, height) (no crop; the size policy sets the aspect)."""
    return img.resize(size, Image.BICUBIC)
