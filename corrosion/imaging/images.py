"""Image decoding with Pillow: validation, EXIF orientation, reduced-scale decoding.

Every image the project reads (dataset, evaluation, inference) goes through here, so a corrupt,
truncated, non-image or decompression-bomb file fails the same way everywhere: with an
``ImageError`` whose ``reason`` is a short, stable code and whose message says what happened.
"""

from __future__ import annotations

import io
import re
import warnings
from dataclasses import dataclass, replace

import numpy as np
from PIL import Image

from corrosion.core.annotations import Box

# Pillow's own bomb guard; we check sizes ourselves before decoding, so disable its warning path.
Image.MAX_IMAGE_PIXELS = None

DEFAULT_MAX_PIXELS = 100_000_000  # 100 MP: above any survey camera, below what would exhaust memory
EXIF_ORIENTATION_TAG = 0x0112
# Pixel modes deeper than 8 bits per channel: scaled to 0..255 on decode (convert("RGB") would clip them).
HIGH_DEPTH_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")
JPEG_MAX_SIDE = 65_500  # libjpeg's limit is 65,535; wider images are re-encoded as PNG
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


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
    mode: str = "RGB"  # Pillow's pixel mode as stored (e.g. "I;16" for 16-bit grey)

    @property
    def high_depth(self) -> bool:
        return self.mode in HIGH_DEPTH_MODES

    @property
    def raw_size(self) -> tuple[int, int]:
        """(width, height) of the pixels as stored, before the orientation turns them."""
        return (self.height, self.width) if swaps_sides(self.orientation) else (self.width, self.height)


def transpose_for(orientation: int) -> Image.Transpose | None:
    """The turn that EXIF ``orientation`` asks of the raw pixels (None for upright)."""
    return _TRANSPOSE.get(orientation)


def swaps_sides(orientation: int) -> bool:
    """EXIF orientations 5-8 turn the image a quarter: width and height trade places."""
    return orientation in (5, 6, 7, 8)


def _open(data: bytes, name: str) -> Image.Image:
    if not data:
        raise ImageError("empty_file", f"{name}: file is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return Image.open(io.BytesIO(data))
    except Image.UnidentifiedImageError as exc:
        raise ImageError("not_an_image", f"{name}: not a readable image (no image format recognised)") from exc
    except Exception as exc:  # Pillow raises many types for broken headers
        raise ImageError("corrupt_image", f"{name}: cannot read image header ({stable_message(exc)})") from exc


def stable_message(exc: BaseException) -> str:
    """An exception's text without object addresses, so identical runs give identical error rows."""
    return _ADDRESS.sub("", str(exc)) or type(exc).__name__


def _orientation(img: Image.Image) -> int:
    try:
        value = int(img.getexif().get(EXIF_ORIENTATION_TAG, 1))
    except Exception:
        return 1
    return value if 1 <= value <= 8 else 1


def probe(data: bytes, name: str = "<bytes>", max_pixels: int = DEFAULT_MAX_PIXELS) -> ImageInfo:
    """Header facts, refusing decompression bombs before any pixel is decoded."""
    return _header(_open(data, name), name, max_pixels)


def _header(img: Image.Image, name: str, max_pixels: int) -> ImageInfo:
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
    if swaps_sides(orientation):
        width, height = height, width
    return ImageInfo((img.format or "").upper(), width, height, orientation, img.mode)


def decode_probed(
    data: bytes,
    name: str = "<bytes>",
    max_pixels: int = DEFAULT_MAX_PIXELS,
    reduce_to: tuple[int, int] | None = None,
) -> tuple[ImageInfo, Image.Image]:
    """The header facts and the fully decoded 8-bit RGB image with EXIF orientation applied.

    ``reduce_to`` (width, height of the oriented image) bounds the work and the memory: JPEG
    decodes at 1/2, 1/4 or 1/8 scale (DCT scaling), any other format is box-reduced by an integer
    factor right after decoding, both staying at least that large. A 100 MP PNG going to a 224 px
    model then holds its full pixels only once, briefly, never as a copy per step.
    High-bit-depth pixels (16-bit grey, 32-bit integer, float) are scaled to 0..255, not clipped.
    """
    img = _open(data, name)
    info = _header(img, name, max_pixels)  # the one header read: bombs are refused before decoding
    try:
        orientation = info.orientation
        target = (
            None if reduce_to is None else ((reduce_to[1], reduce_to[0]) if swaps_sides(orientation) else reduce_to)
        )
        is_jpeg = img.format == "JPEG"
        if target is not None and is_jpeg:
            img.draft("RGB", target)
        img.load()
        img = to_eight_bit(img)
        if img.mode not in ("L", "RGB"):  # palette, 1-bit, CMYK, alpha: reduce() takes only some modes
            img = img.convert("RGB")
        if target is not None and not is_jpeg:  # JPEG's draft already decoded near the target
            k = min(img.width // max(1, target[0]), img.height // max(1, target[1]))
            if k >= 2:
                img = img.reduce(k)
        if orientation != 1:  # as ImageOps.exif_transpose, on the (smaller) decoded pixels
            img = img.transpose(_TRANSPOSE[orientation])
        return info, (img if img.mode == "RGB" else img.convert("RGB"))
    except ImageError:
        raise
    except MemoryError as exc:
        raise ImageError("too_large", f"{name}: not enough memory to decode it; lower max_pixels") from exc
    except Exception as exc:  # truncated data, bad Huffman tables, ...
        raise ImageError(
            "corrupt_image", f"{name}: image data is corrupt or truncated ({stable_message(exc)})"
        ) from exc


def decode(
    data: bytes,
    name: str = "<bytes>",
    max_pixels: int = DEFAULT_MAX_PIXELS,
    reduce_to: tuple[int, int] | None = None,
) -> Image.Image:
    """Fully decoded 8-bit RGB image with EXIF orientation applied (``decode_probed`` without the header)."""
    return decode_probed(data, name, max_pixels, reduce_to)[1]


def to_eight_bit(img: Image.Image) -> Image.Image:
    """High-bit-depth grey ("I;16", "I", "F") as 8-bit "L", scaled by its depth; other modes unchanged.

    16-bit data keeps its top byte; 32-bit integers and floats are scaled by the range they fit
    (0..1, 0..255, 0..65535), else stretched from their own minimum to maximum. Two different
    16-bit photos therefore stay different, where ``convert("RGB")`` saturates both to white.
    """
    if img.mode not in HIGH_DEPTH_MODES:
        return img
    arr = np.asarray(img)
    if arr.dtype.kind == "f":
        arr = np.nan_to_num(arr.astype(np.float32, copy=False), nan=0.0, posinf=0.0, neginf=0.0)
    lo, hi = float(arr.min()), float(arr.max())
    if arr.dtype.kind in "ui" and arr.dtype.itemsize == 2:
        out = (arr.astype(np.uint16, copy=False) >> 8).astype(np.uint8)
    else:
        if arr.dtype.kind == "f" and lo >= 0 and hi <= 1.0:
            scale, offset = 255.0, 0.0
        elif lo >= 0 and hi <= 255:
            scale, offset = 1.0, 0.0
        elif lo >= 0 and hi <= 65535:
            scale, offset = 1 / 257, 0.0
        else:
            scale, offset = 255.0 / max(hi - lo, 1e-12), lo
        out = np.empty(arr.shape, np.uint8)
        for start in range(0, arr.shape[0], 1024):  # in row bands: no full-size float copy
            band = (arr[start : start + 1024].astype(np.float32) - offset) * scale
            out[start : start + 1024] = np.clip(np.rint(band), 0, 255).astype(np.uint8)
    return Image.fromarray(out, "L")


def decode_array(data: bytes, name: str = "<bytes>", max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decoded RGB uint8 array (H, W, 3), EXIF orientation applied."""
    return np.asarray(decode(data, name, max_pixels))


def encode_jpeg(img: Image.Image | np.ndarray, quality: int = 95) -> bytes:
    if isinstance(img, np.ndarray):
        img = Image.fromarray(img)
    out = io.BytesIO()
    img.convert("RGB").save(out, format="JPEG", quality=quality)
    return out.getvalue()


def encode_for_record(img: Image.Image, quality: int = 95) -> tuple[bytes, str]:
    """(bytes, "jpeg" | "png"): JPEG, or lossless PNG where a side is beyond what JPEG can hold."""
    if max(img.size) > JPEG_MAX_SIDE:
        out = io.BytesIO()
        img.convert("RGB").save(out, format="PNG", compress_level=6)
        return out.getvalue(), "png"
    return encode_jpeg(img, quality), "jpeg"


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
        out.append(replace(b, xmin=min(xs), ymin=min(ys), xmax=max(xs), ymax=max(ys), polygons=(), rle=None))
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
