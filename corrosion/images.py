"""Image decoding with Pillow: validation, EXIF orientation, reduced-scale decoding.

Every image the project reads (dataset, evaluation, inference) goes through here, so a corrupt,
truncated, non-image or decompression-bomb file fails the same way everywhere: with an
``ImageError`` whose ``reason`` is a short, stable code and whose message says what happened.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps

from corrosion.annotations import Box

# Pillow's own bomb guard; we check sizes ourselves before decoding, so disable its warning path.
Image.MAX_IMAGE_PIXELS = None

DEFAULT_MAX_PIXELS = 100_000_000  # 100 MP: above any survey camera, below what would exhaust memory
EXIF_ORIENTATION_TAG = 0x0112


class ImageError(ValueError):
    """An image that cannot be used. ``reason`` is a stable code for reject/error rows."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class ImageInfo:
    """What the header says, read without decoding the pixels."""

    format: str
    width: int  # after EXIF orientation
    height: int
    orientation: int  # EXIF orientation tag, 1 when absent


def _open(data: bytes, name: str) -> Image.Image:
    if not data:
        raise ImageError("empty_file", f"{name}: file is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return Image.open(io.BytesIO(data))
    except Image.UnidentifiedImageError as exc:
        raise ImageError("not_an_image", f"{name}: not a readable image ({exc})") from exc
    except Exception as exc:  # Pillow raises many types for broken headers
        raise ImageError("corrupt_image", f"{name}: cannot read image header ({exc})") from exc


def _orientation(img: Image.Image) -> int:
    try:
        value = int(img.getexif().get(EXIF_ORIENTATION_TAG, 1))
    except Exception:
        return 1
    return value if 1 <= value <= 8 else 1


def probe(data: bytes, name: str = "<bytes>", max_pixels: int = DEFAULT_MAX_PIXELS) -> ImageInfo:
    """Header facts, refusing decompression bombs before any pixel is decoded."""
    img = _open(data, name)
    width, height = img.size
    if width <= 0 or height <= 0:
        raise ImageError("corrupt_image", f"{name}: image has no pixels ({width}x{height})")
    if width * height > max_pixels:
        raise ImageError(
            "too_large",
            f"{name}: {width}x{height} = {width * height / 1e6:.0f} MP exceeds the limit of "
            f"{max_pixels / 1e6:.0f} MP (possible decompression bomb); raise max_pixels in the config to allow it",
        )
    orientation = _orientation(img)
    if orientation in (5, 6, 7, 8):
        width, height = height, width
    return ImageInfo(format=(img.format or "").upper(), width=width, height=height, orientation=orientation)


def decode(
    data: bytes,
    name: str = "<bytes>",
    max_pixels: int = DEFAULT_MAX_PIXELS,
    reduce_to: tuple[int, int] | None = None,
) -> Image.Image:
    """Fully decoded RGB image with EXIF orientation applied.

    ``reduce_to`` (width, height) lets JPEG decode at 1/2, 1/4 or 1/8 scale (DCT scaling) while
    staying at least that large: for a 12 MP photo going to a 224 px model this is several times
    faster than decoding every pixel.
    """
    probe(data, name, max_pixels)
    img = _open(data, name)
    try:
        if reduce_to is not None and img.format == "JPEG":
            target = reduce_to
            if _orientation(img) in (5, 6, 7, 8):
                target = (reduce_to[1], reduce_to[0])
            img.draft("RGB", target)
        img.load()
        img = ImageOps.exif_transpose(img)
        return img.convert("RGB")
    except ImageError:
        raise
    except Exception as exc:  # truncated data, bad Huffman tables, ...
        raise ImageError("corrupt_image", f"{name}: image data is corrupt or truncated ({exc})") from exc


def decode_array(data: bytes, name: str = "<bytes>", max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decoded RGB uint8 array (H, W, 3), EXIF orientation applied."""
    return np.asarray(decode(data, name, max_pixels))


def encode_jpeg(img: Image.Image | np.ndarray, quality: int = 95) -> bytes:
    if isinstance(img, np.ndarray):
        img = Image.fromarray(img)
    out = io.BytesIO()
    img.convert("RGB").save(out, format="JPEG", quality=quality)
    return out.getvalue()


def orient_boxes(boxes: tuple[Box, ...], orientation: int, raw_width: int, raw_height: int) -> tuple[Box, ...]:
    """Map boxes drawn on the stored (raw) pixels onto the EXIF-oriented image.

    labelImg and most annotators draw on the raw pixel grid; applying the orientation to the
    pixels must move the boxes the same way.
    """
    if orientation == 1:
        return boxes
    out = []
    for b in boxes:
        corners = [(b.xmin, b.ymin), (b.xmax, b.ymax)]
        mapped = [_orient_point(x, y, orientation, raw_width, raw_height) for x, y in corners]
        xs = [p[0] for p in mapped]
        ys = [p[1] for p in mapped]
        out.append(Box(min(xs), min(ys), max(xs), max(ys), b.label, b.difficult, b.truncated))
    return tuple(out)


def _orient_point(x: float, y: float, orientation: int, w: int, h: int) -> tuple[float, float]:
    # Follows ImageOps.exif_transpose: 2 mirror, 3 rotate 180, 4 flip, 5 transpose,
    # 6 rotate 270 (clockwise 90), 7 transverse, 8 rotate 90 (counter-clockwise 90).
    if orientation == 2:
        return w - x, y
    if orientation == 3:
        return w - x, h - y
    if orientation == 4:
        return x, h - y
    if orientation == 5:
        return y, x
    if orientation == 6:
        return h - y, x
    if orientation == 7:
        return h - y, w - x
    if orientation == 8:
        return y, w - x
    return x, y
