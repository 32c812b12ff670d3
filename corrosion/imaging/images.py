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
from PIL import Image, PngImagePlugin

from corrosion.core.annotations import Box

# Pillow's own bomb guard; we check sizes ourselves before decoding, so disable its warning path.
Image.MAX_IMAGE_PIXELS = None
# Pillow refuses a PNG whose ICC profile or text chunk inflates past 1 MB (its zlib-bomb guard) as if
# the file were broken: a valid photo with an 8 MB printer profile was rejected as corrupt. 64 MB
# still bounds what one chunk may cost; beyond it the file is ``too_large``, saying why.
MAX_METADATA_CHUNK = 64 * 2**20
PngImagePlugin.MAX_TEXT_CHUNK = MAX_METADATA_CHUNK

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
# The first marker after a scan's entropy-coded data: 0xFF not followed by a stuffed 0x00, a
# restart marker (RST0-7) or another fill byte.
_MARKER_AFTER_SCAN = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
_ARITHMETIC_FRAMES = (0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF)  # SOF9-11, SOF13-15
_SCAN_PADDING = b"\0" * 8  # lets libjpeg's bit reader look ahead past a complete scan's last byte
_SCAN_BLOCK = 16384  # bytes Pillow hands the JPEG decoder at a time: where it stopped is known to this


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


def _open(data: bytes, name: str, source: io.BytesIO | None = None) -> Image.Image:
    """``data`` opened lazily (header only), from ``source`` where given (``data`` as it is decoded)."""
    if not data:
        raise ImageError("empty_file", f"{name}: file is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return Image.open(source or io.BytesIO(data))
    except Image.UnidentifiedImageError as exc:
        raise ImageError("not_an_image", f"{name}: not a readable image (no image format recognised)") from exc
    except ValueError as exc:
        if "MAX_TEXT_CHUNK" in str(exc) or "text chunks" in str(exc):
            raise ImageError(
                "too_large",
                f"{name}: a metadata chunk (ICC profile or text) inflates past {MAX_METADATA_CHUNK // 2**20} MB "
                f"({stable_message(exc)})",
            ) from exc
        raise ImageError("corrupt_image", f"{name}: cannot read image header ({stable_message(exc)})") from exc
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


def probe(
    data: bytes, name: str = "<bytes>", max_pixels: int = DEFAULT_MAX_PIXELS, max_side: int | None = None
) -> ImageInfo:
    """Header facts, refusing decompression bombs (and, with ``max_side``, strips) before any pixel is decoded."""
    return _header(_open(data, name), name, max_pixels, max_side)


def _header(img: Image.Image, name: str, max_pixels: int, max_side: int | None = None) -> ImageInfo:
    width, height = img.size
    if width <= 0 or height <= 0:
        raise ImageError("corrupt_image", f"{name}: image has no pixels ({width}x{height})")
    if width * height > max_pixels:
        raise ImageError(
            "too_large",
            f"{name}: {width}x{height} = {width * height / 1e6:.0f} MP exceeds the limit of "
            f"{max_pixels / 1e6:.0f} MP (possible decompression bomb); raise max_pixels in the config to allow it",
        )
    if max_side is not None:
        check_side(width, height, name, max_side)
    orientation = _orientation(img)
    if swaps_sides(orientation):
        width, height = height, width
    return ImageInfo((img.format or "").upper(), width, height, orientation, img.mode)


def check_side(width: int, height: int, name: str, max_side: int) -> None:
    """Refuse a photo whose long side exceeds ``max_side``: tiling and resizing grow with the long
    side, not the pixel count (a 20,000,000 x 1 strip is 20 MP, yet some 24,000 detector tiles and a
    53 GB resize). Within 100 MP and a 100,000 px ``max_side`` such a photo is at least 100:1."""
    long, short = max(width, height), max(1, min(width, height))
    if long > max_side:
        raise ImageError(
            "extreme_aspect_ratio",
            f"{name}: {width}x{height} (aspect ratio {long / short:,.0f}:1) is longer than max_side={max_side:,} px; "
            "its tiles and resizes grow with the long side, not the pixel count: split the strip, "
            "or raise max_side in the config",
        )


def decode_probed(
    data: bytes,
    name: str = "<bytes>",
    max_pixels: int = DEFAULT_MAX_PIXELS,
    reduce_to: tuple[int, int] | None = None,
    max_side: int | None = None,
) -> tuple[ImageInfo, Image.Image]:
    """The header facts and the fully decoded 8-bit RGB image with EXIF orientation applied.

    ``reduce_to`` (width, height of the oriented image) bounds the work and the memory: JPEG
    decodes at 1/2, 1/4 or 1/8 scale (DCT scaling), any other format is box-reduced by an integer
    factor right after decoding (``_reduce_towards``), both staying at least that large. A 100 MP PNG
    going to a 224 px model then holds its full pixels only once, briefly, never as a copy per step.
    High-bit-depth pixels (16-bit grey, 32-bit integer, float) are scaled to 0..255, not clipped.
    A JPEG's scan must hold the pixels its header declares (``_load``). ``max_side``: ``check_side``.
    """
    scan_end = single_scan_end(data, name)
    source = io.BytesIO(data if scan_end is None else data[:scan_end] + _SCAN_PADDING)
    img = _open(data, name, source)
    info = _header(img, name, max_pixels, max_side)  # the one header read: bombs are refused before decoding
    try:
        orientation = info.orientation
        target = (
            None if reduce_to is None else ((reduce_to[1], reduce_to[0]) if swaps_sides(orientation) else reduce_to)
        )
        is_jpeg = img.format == "JPEG"
        img = _load(img, source, scan_end, name, target)
        img = to_eight_bit(img)
        if img.mode not in ("L", "RGB"):  # palette, 1-bit, CMYK, alpha: reduce() takes only some modes
            img = img.convert("RGB")
        if target is not None and not is_jpeg:  # JPEG's draft already decoded near the target
            img = _reduce_towards(img, target)
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


def _reduce_towards(img: Image.Image, target: tuple[int, int]) -> Image.Image:
    """Box-reduced by the largest integer factor that keeps both sides at least ``target``; where
    one side is already within twice its target (a strip), the other side alone is reduced, so a
    20,000,000 x 1 strip going to 224 px ends 225 x 1, not 20,000,000 x 1 for the resize to spread."""
    kx, ky = (max(1, side // max(1, t)) for side, t in zip(img.size, target, strict=True))
    factors = (min(kx, ky),) * 2 if min(kx, ky) >= 2 else (kx, ky)
    return img.reduce(factors) if max(factors) >= 2 else img


def _load(
    img: Image.Image, source: io.BytesIO, scan_end: int | None, name: str, target: tuple[int, int] | None
) -> Image.Image:
    """The decoded pixels (JPEG: DCT-scaled towards ``target``). A single-scan JPEG comes from
    ``source`` holding its markers and scan without the end-of-image marker after it
    (``single_scan_end``): libjpeg, finding that marker early, fills the missing pixels with grey and
    only warns (neither Pillow nor TensorFlow reports it), so a 200 x 120 scan under a 9000 x 9000
    header was kept as a whole photo. Without the marker a short scan leaves the decoder waiting for
    data, which Pillow reports as truncated; read in small blocks, a decoder that stops well before
    the scan's end shows a header declaring fewer pixels than the scan holds."""
    declared = img.size
    if scan_end is not None:
        img.decodermaxblock = _SCAN_BLOCK
    if target is not None and img.format == "JPEG":
        img.draft("RGB", target)
    try:
        img.load()
    except OSError as exc:
        if scan_end is None or "truncated" not in str(exc):
            raise
        raise ImageError(
            "corrupt_image",
            f"{name}: truncated: its scan data ends before the {declared[0]}x{declared[1]} pixels its header "
            "declares (a decoder would fill the rest with grey)",
        ) from exc
    unread = 0 if scan_end is None else scan_end - source.tell()
    if unread > 2 * _SCAN_BLOCK:
        raise ImageError(
            "corrupt_image",
            f"{name}: its scan holds {unread:,} bytes more than the {declared[0]}x{declared[1]} pixels its header "
            "declares (a damaged or forged header)",
        )
    return img


def single_scan_end(data: bytes, name: str) -> int | None:
    """Where a single-scan JPEG's scan data ends (None for other files: progressive and other
    multi-scan JPEGs keep their end marker, which libjpeg needs to finish them); arithmetic-coded
    frames are refused."""
    if data[:3] != b"\xff\xd8\xff":
        return None
    frame, scan_end, huffman = jpeg_layout(data)
    if frame in _ARITHMETIC_FRAMES:
        sof = f"SOF{frame - 0xC0}"
        if huffman:
            raise ImageError(
                "corrupt_image",
                f"{name}: its frame header declares arithmetic coding ({sof}) over Huffman-coded data "
                "(it carries Huffman tables): read as arithmetic data the scan decodes to noise",
            )
        raise ImageError(
            "unsupported_jpeg",
            f"{name}: an arithmetic-coded JPEG ({sof}): Pillow decodes such files only up to 64 KB and most "
            "viewers not at all; re-save it as a baseline JPEG (e.g. jpegtran without -arithmetic)",
        )
    return scan_end


def jpeg_layout(data: bytes) -> tuple[int | None, int | None, bool]:
    """(frame marker, end of the first scan's data when the end-of-image marker comes next, whether
    Huffman tables were defined before it), from the marker segments; None where not found."""
    i, frame, huffman = 2, None, False
    while i + 4 <= len(data) and data[i] == 0xFF:
        marker = data[i + 1]
        if marker == 0xFF or marker == 0x01 or 0xD0 <= marker <= 0xD8:  # fill byte, standalone markers
            i += 1 if marker == 0xFF else 2
            continue
        if marker == 0xD9:
            break
        end = i + 2 + int.from_bytes(data[i + 2 : i + 4], "big")
        huffman |= marker == 0xC4
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            frame = marker
        if marker == 0xDA:
            found = _MARKER_AFTER_SCAN.search(data, end)
            if found is None or data[found.start() + 1] != 0xD9:
                return frame, None, huffman
            stop = found.start()
            while stop > end and data[stop - 1] == 0xFF:  # fill bytes before the marker
                stop -= 1
            return frame, stop, huffman
        i = end
    return frame, None, huffman


def decode(
    data: bytes,
    name: str = "<bytes>",
    max_pixels: int = DEFAULT_MAX_PIXELS,
    reduce_to: tuple[int, int] | None = None,
    max_side: int | None = None,
) -> Image.Image:
    """Fully decoded 8-bit RGB image with EXIF orientation applied (``decode_probed`` without the header)."""
    return decode_probed(data, name, max_pixels, reduce_to, max_side)[1]


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
