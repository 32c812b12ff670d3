"""Rust regions as pixels: polygons rasterised, mask files read and checked, boxes from connected regions.

A region-annotated image is stored with one class mask the size of the stored image (0 background,
1 rust), under DeepLab's key ``image/segmentation/class/encoded`` (``corrosion.data.schema``), not
one mask per object as the TF Object Detection API's ``image/object/mask`` does: rust is a surface,
not a countable object. A source's polygons are arbitrary cuts of it (20,396 of them, median 0.03 %
of the photo, in ``roboflow-corrosion-seg``), per-object masks would store the photo's size once per
polygon, and the rusted area that ASTM D610 grades is a pixel count of the union, which the class
mask is. Boxes stay in the record for the detector, one per source polygon, or for mask-only
sources one per connected region (fragments merged first; see ``boxes_from_mask``).
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

BACKGROUND, RUST = 0, 1
MAX_MASK_BYTES = 64 * 1024 * 1024
LIMIT = 1e6  # polygon coordinates are clamped to +-LIMIT pixels before rasterising


class MaskError(ValueError):
    """A mask file that cannot be used, with the reject reason."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def rasterise(polygons: Iterable[Sequence[float]], width: int, height: int) -> np.ndarray:
    """The union of polygons (flat ``x1, y1, x2, y2, ...`` in pixels) as a (height, width) 0/1 mask.

    Pillow's scanline fill: points outside the image are clipped by the raster, a self-intersecting
    outline fills by the even-odd rule, as COCO's and LabelMe's own rasterisers do.
    """
    canvas = Image.new("L", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    for polygon in polygons:
        if len(polygon) >= 6:
            # coordinates far beyond any image overflow Pillow's integer raster; a million pixels out is exact enough
            draw.polygon([min(max(float(v), -LIMIT), LIMIT) for v in polygon], fill=RUST, outline=RUST)
    return np.array(canvas, dtype=np.uint8)


def read_mask(data: bytes, path: str, size: tuple[int, int]) -> np.ndarray:
    """A mask file as 0/1 rust pixels at the image's raw ``size`` (width, height).

    Palette PNGs are read by index (CCSC: 0 background, 1-3 condition states), grey ones by value
    (ballast tanks: 0 / 255): any non-zero pixel is rust. A mask of another size than its image is
    refused, never stretched: its regions would land on other pixels. Both that and a lossy format
    are refused from the header, before any pixel is decoded (a 40000 x 40000 PNG of 1.6 MB would
    take 1.6 GB to decode only to be refused).
    """
    try:
        img = Image.open(io.BytesIO(data))
    except Exception as exc:  # noqa: BLE001 - Pillow raises many types for a bad file
        raise MaskError("corrupt_mask", f"{path}: not a readable mask image ({exc})") from exc
    lossy = lossy_compression(img, data)
    if lossy is not None:
        raise MaskError(
            "lossy_mask",
            f"{path}: a {lossy} mask: its compression artefacts invent rust pixels along every drawn edge, "
            "and any non-zero pixel is rust; save masks in a lossless format (PNG, BMP, TIFF, ...)",
        )
    if img.size != tuple(size):
        raise MaskError(
            "mask_size_mismatch",
            f"{path}: mask is {img.size[0]}x{img.size[1]}, its image {size[0]}x{size[1]}; a mask must match its image",
        )
    try:
        img.load()
    except Exception as exc:  # noqa: BLE001 - Pillow raises many types for a bad file
        raise MaskError("corrupt_mask", f"{path}: not a readable mask image ({exc})") from exc
    if img.mode in ("P", "L", "1", "I", "I;16"):
        values = np.asarray(img)
    else:  # colour masks: rust wherever any channel is set
        values = np.asarray(img.convert("RGB")).max(axis=-1)
    return (values > 0).astype(np.uint8)


def lossy_compression(img: Image.Image, data: bytes) -> str | None:
    """The lossy coding a mask file's header declares ("JPEG", "lossy WebP", ...), None for a lossless
    one: a mask's 0/1 edges come back blurred from it, and any non-zero pixel is rust."""
    fmt = img.format or ""
    if fmt in ("JPEG", "MPO", "JPEG2000"):  # JPEG 2000's header does not say whether it was saved reversible
        return "JPEG 2000" if fmt == "JPEG2000" else "JPEG"
    if fmt == "TIFF" and str(img.info.get("compression", "")).lower() in ("jpeg", "tiff_jpeg", "webp"):
        return f"TIFF ({img.info['compression']}-compressed)"
    if fmt == "WEBP" and _webp_lossy(data):
        return "lossy WebP"
    return None


def _webp_lossy(data: bytes) -> bool:
    """Whether a WebP's image chunk is VP8 (lossy) rather than VP8L (lossless), walking its RIFF chunks."""
    i = 12
    while i + 8 <= len(data):
        fourcc, size = data[i : i + 4], int.from_bytes(data[i + 4 : i + 8], "little")
        if fourcc in (b"VP8 ", b"VP8L"):
            return fourcc == b"VP8 "
        i += 8 + size + (size & 1)
    return False


def orient(mask: np.ndarray, transpose: Image.Transpose | None) -> np.ndarray:
    """The mask turned as its image is (EXIF orientation), so both stay pixel-aligned."""
    if transpose is None:
        return mask
    return np.asarray(Image.fromarray(mask).transpose(transpose), dtype=np.uint8)


def boxes_from_mask(mask: np.ndarray, merge_radius: int, min_pixels: int) -> list[tuple[int, int, int, int]]:
    """(xmin, ymin, xmax, ymax) of each rust region, in pixels.

    Pixel-fine masks break one patch of rust into hundreds of specks (ballast tanks: a median of
    131 8-connected pieces per image). Pieces closer than ``2 * merge_radius`` pixels are one
    region: the mask is dilated by a square of that radius, the dilated mask's 8-connected
    components are the regions, and each box is tight around the region's own (undilated) pixels.
    Regions of fewer than ``min_pixels`` rust pixels get no box; their pixels stay in the mask.
    """
    rust = mask > 0
    if not rust.any():
        return []
    grown = ndimage.maximum_filter(rust, size=2 * merge_radius + 1) if merge_radius > 0 else rust
    regions, count = ndimage.label(grown, structure=np.ones((3, 3), bool))
    regions = np.where(rust, regions, 0)
    sizes = np.bincount(regions.ravel(), minlength=count + 1)
    boxes = []
    for index, found in enumerate(ndimage.find_objects(regions), start=1):
        if found is None or sizes[index] < min_pixels:
            continue
        rows, cols = found
        boxes.append((cols.start, rows.start, cols.stop, rows.stop))
    return boxes


def decode_rle(rle: tuple[int, int, bytes], size: tuple[int, int]) -> np.ndarray:
    """COCO RLE (height, width, compressed counts) as a 0/1 mask of ``size`` (width, height).

    Checked before pycocotools sees it, which would allocate the RLE's own size (30000 x 30000:
    0.9 GB) and read past counts short of height x width into memory it never set: an RLE of
    another size than its image, or counts not covering it exactly, is a MaskError (the COCO
    reader and discovery refuse both first; this is the last guard)."""
    from pycocotools import mask as mask_utils

    from corrosion.data.readers.coco import rle_runs

    height, width, counts = rle
    if (width, height) != tuple(size):
        raise MaskError("mask_size_mismatch", f"RLE is {width}x{height}, its image {size[0]}x{size[1]}")
    try:
        rle_runs(counts, height * width)
    except ValueError as exc:
        raise MaskError("corrupt_mask", f"RLE counts do not decode ({exc})") from exc
    return mask_utils.decode({"size": [height, width], "counts": counts}).astype(np.uint8)


def region_settings(width: int, height: int, merge_radius: float, min_area: float) -> tuple[int, int]:
    """``boxes_from_mask``'s pixel settings from fractions: the merge radius of the long side, the
    smallest region of the image's area (at least one pixel)."""
    return round(merge_radius * max(width, height)), max(1, round(min_area * width * height))


def scored_regions(
    prob: np.ndarray, threshold: float, merge_radius: float, min_area: float
) -> list[tuple[int, int, int, int, float]]:
    """Regions of a (H, W) rust probability map at ``threshold``: (xmin, ymin, xmax, ymax, score),
    the score the mean probability of the region's rust pixels."""
    rust = prob >= threshold
    radius, min_pixels = region_settings(prob.shape[1], prob.shape[0], merge_radius, min_area)
    return [
        (x0, y0, x1, y1, float(prob[y0:y1, x0:x1][rust[y0:y1, x0:x1]].mean()))
        for x0, y0, x1, y1 in boxes_from_mask(rust.astype(np.uint8), radius, min_pixels)
    ]


def encode(mask: np.ndarray) -> bytes:
    """PNG of a 0/1 mask (grey, 8 bit): what the record stores."""
    out = io.BytesIO()
    Image.fromarray(mask.astype(np.uint8)).save(out, format="PNG", optimize=True)
    return out.getvalue()


def decode(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)), dtype=np.uint8)


def rust_fraction(mask: np.ndarray) -> float:
    return float((mask > 0).mean()) if mask.size else 0.0
