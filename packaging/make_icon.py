"""Draws the app icon (resources/icons/stylegallery.png and .ico) with Pillow, so it can be remade and restyled.

The motif: a photo split into coloured regions (the method's region map) in front of two reference
frames (the gallery). Drawn at 1024 px and downsampled for clean edges at every size.

    python packaging/make_icon.py
"""
from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter

ICONS = Path(__file__).resolve().parents[1] / "resources" / "icons"
SIZE = 1024
ICO_SIZES = [(16, 16), (24, 24), (32, 32), (48, 48), (64, 64), (128, 128), (256, 256)]


def _frame(draw: ImageDraw.ImageDraw, box: tuple[int, int, int, int], fill: str) -> None:
    draw.rounded_rectangle(box, radius=48, fill=fill, outline="#f4f1ea", width=28)


def draw_icon() -> Image.Image:
    icon = Image.new("RGBA", (SIZE, SIZE), (0, 0, 0, 0))
    draw = ImageDraw.Draw(icon)
    draw.rounded_rectangle((32, 32, SIZE - 32, SIZE - 32), radius=200, fill="#1e2233")

    # two gallery references behind, tilted by offset
    back = Image.new("RGBA", (SIZE, SIZE), (0, 0, 0, 0))
    _frame(ImageDraw.Draw(back), (300, 150, 820, 610), "#2a9d8f")
    icon.alpha_composite(back.rotate(12, resample=Image.BICUBIC, center=(560, 380)))
    middle = Image.new("RGBA", (SIZE, SIZE), (0, 0, 0, 0))
    _frame(ImageDraw.Draw(middle), (240, 210, 760, 670), "#e9c46a")
    icon.alpha_composite(middle.rotate(5, resample=Image.BICUBIC, center=(500, 440)))

    # the photo in front, split into regions
    photo = Image.new("RGBA", (SIZE, SIZE), (0, 0, 0, 0))
    pd = ImageDraw.Draw(photo)
    left, top, right, bottom = 170, 330, 770, 860
    pd.rectangle((left, top, right, bottom), fill="#8ecae6")  # sky region
    pd.polygon([(left, 700), (360, 560), (520, 660), (660, 540), (right, 620), (right, bottom), (left, bottom)],
               fill="#e76f51")  # hills region
    pd.polygon([(left, 800), (420, 740), (right, 790), (right, bottom), (left, bottom)], fill="#264653")  # ground
    pd.ellipse((580, 390, 690, 500), fill="#f4a261")  # sun
    mask = Image.new("L", (SIZE, SIZE), 0)
    ImageDraw.Draw(mask).rounded_rectangle((left, top, right, bottom), radius=40, fill=255)
    photo.putalpha(Image.composite(photo.getchannel("A"), mask, mask))
    shadow = Image.new("RGBA", (SIZE, SIZE), (0, 0, 0, 0))
    ImageDraw.Draw(shadow).rounded_rectangle((left + 18, top + 24, right + 18, bottom + 24), radius=40,
                                             fill=(0, 0, 0, 140))
    icon.alpha_composite(shadow.filter(ImageFilter.GaussianBlur(18)))
    icon.alpha_composite(photo)
    ImageDraw.Draw(icon).rounded_rectangle((left, top, right, bottom), radius=40, outline="#f4f1ea", width=28)
    return icon


def main() -> None:
    ICONS.mkdir(parents=True, exist_ok=True)
    icon = draw_icon()
    icon.resize((256, 256), Image.LANCZOS).save(ICONS / "stylegallery.png", optimize=True)
    icon.save(ICONS / "stylegallery.ico", sizes=ICO_SIZES)
    print(f"wrote {ICONS}/stylegallery.png and stylegallery.ico")


if __name__ == "__main__":
    main()
