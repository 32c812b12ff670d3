"""Inspector previews: the photo at screen size with rust boxes and scores drawn on it.

Decoded at reduced scale (JPEG DCT scaling) straight to about the preview size, so drawing a
preview of a 12 MP photo costs a fraction of a full decode.
"""

from __future__ import annotations

import base64
import io
import math
import posixpath
from collections.abc import Sequence

from PIL import Image, ImageDraw, ImageFont

from corrosion.imaging import images

BOX_COLOUR = (255, 40, 200)  # magenta: stands out against rust, steel and most paints
TEXT_BACKGROUND = (0, 0, 0)


def preview_name(image_uri: str, sha256: str) -> str:
    """File name for an image's preview: readable stem + hash, unique across survey folders."""
    stem = posixpath.splitext(posixpath.basename(image_uri.rstrip("/")))[0] or "image"
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in stem)[:80]
    return f"{safe}_{sha256[:12]}.jpg"


def mask_name(image_uri: str, sha256: str) -> str:
    """File name of an image's rust mask (batch inference's --masks): the preview's, as a PNG."""
    return posixpath.splitext(preview_name(image_uri, sha256))[0] + ".png"


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType: fixed-size bitmap font
        return ImageFont.load_default()


MASK_COLOUR = (0, 200, 255)  # cyan: stands out on rust, steel and paint alike
MASK_OPACITY = 0.45


def tint(img: Image.Image, mask_png: bytes) -> Image.Image:
    """``img`` with the mask's rust pixels blended towards ``MASK_COLOUR``."""
    mask = Image.open(io.BytesIO(mask_png)).convert("L").resize(img.size, Image.NEAREST)
    overlay = Image.new("RGB", img.size, MASK_COLOUR)
    alpha = mask.point(lambda v: round(255 * MASK_OPACITY) if v else 0)
    return Image.composite(overlay, img.convert("RGB"), alpha)


def render_preview(
    data: bytes,
    width: int,
    height: int,
    boxes: Sequence[Sequence[float]],
    rust_probability: float,
    rust_grade: int | None,
    max_side: int = 1600,
    name: str = "<bytes>",
    max_pixels: int = images.DEFAULT_MAX_PIXELS,
    mask: bytes | None = None,
) -> Image.Image:
    """RGB preview no larger than ``max_side``; ``boxes`` are (xmin, ymin, xmax, ymax, score) in
    the original (EXIF-oriented) ``width`` x ``height`` pixel grid; ``mask`` (a PNG, non-zero = rust,
    any scale of the same photo) is tinted in over the rust pixels."""
    scale = min(1.0, max_side / max(width, height))
    target = (max(1, math.ceil(width * scale)), max(1, math.ceil(height * scale)))
    img = images.decode(data, name, max_pixels, reduce_to=target)
    if img.size != target:
        img = img.resize(target, Image.BILINEAR)
    if mask is not None:
        img = tint(img, mask)
    sx, sy = img.width / width, img.height / height
    draw = ImageDraw.Draw(img)
    line = max(2, round(max(img.size) / 400))
    font = _font(max(12, round(max(img.size) / 60)))
    for box in boxes:
        x0, y0, x1, y1 = box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy
        draw.rectangle([x0, y0, x1, y1], outline=BOX_COLOUR, width=line)
        if len(box) > 4:
            label = f"{box[4]:.2f}"
            tb = draw.textbbox((x0, y0), label, font=font)
            ty = y0 - (tb[3] - tb[1]) - 2 * line if y0 > (tb[3] - tb[1]) + 2 * line else y1
            tb = draw.textbbox((x0, ty), label, font=font)
            draw.rectangle(tb, fill=BOX_COLOUR)
            draw.text((x0, ty), label, fill=(255, 255, 255), font=font)
    caption = f"rust p={rust_probability:.3f}  boxes={len(boxes)}" + (
        f"  ASTM D610 grade {rust_grade}" if rust_grade is not None else ""
    )
    tb = draw.textbbox((line * 2, line * 2), caption, font=font)
    draw.rectangle((tb[0] - line, tb[1] - line, tb[2] + line, tb[3] + line), fill=TEXT_BACKGROUND)
    draw.text((line * 2, line * 2), caption, fill=(255, 255, 255), font=font)
    return img


def encode_jpeg(img: Image.Image, quality: int = 85) -> bytes:
    out = io.BytesIO()
    img.save(out, format="JPEG", quality=quality, optimize=True)
    return out.getvalue()


def thumbnail_data_uri(img: Image.Image, side: int = 192, quality: int = 80) -> str:
    """A small JPEG as a data: URI, so the HTML report is one self-contained file."""
    thumb = img.copy()
    thumb.thumbnail((side, side), Image.BILINEAR)
    return "data:image/jpeg;base64," + base64.b64encode(encode_jpeg(thumb, quality)).decode("ascii")
