"""One labelled image + its bytes -> a validated ``Record``, or a ValidationError.

Decoding, the real size winning over the annotation's ``<size>``, EXIF orientation applied to the
pixels and the boxes alike (the stored bytes are re-encoded, since TensorFlow's decoders ignore
EXIF), boxes clipped to the image, and zero-area or inverted boxes dropped with their reason.
``validate`` returns the fixes it made so the pipeline can count them; ``to_record`` is the short
form for callers that need only the record. Both are plain Python, usable outside Beam.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, replace

import numpy as np
from PIL import Image

from corrosion.core import io_utils, paths
from corrosion.core.annotations import Box, LabelledImage
from corrosion.core.labels import NO_RUST, RUST, LabelConfig, UnknownLabelError
from corrosion.core.rejects import BOX, IMAGE, Reject
from corrosion.data import regions
from corrosion.data.dataset_config import DatasetConfig, ValidationConfig
from corrosion.data.record import Record
from corrosion.imaging import images

KEPT_FORMATS = {"JPEG": "jpeg", "MPO": "jpeg", "PNG": "png"}  # what TF decodes as stored; others re-encoded

# Fix codes (counted in stats.json under "fixes").
FIX_ORIENTATION = "orientation_applied"
FIX_SIZE = "size_mismatch_fixed"
FIX_SIZE_RESCALED = "size_mismatch_boxes_rescaled"
FIX_CLIPPED = "box_clipped"
FIX_REENCODED = "reencoded"


class ValidationError(ValueError):
    """An image that cannot become a record; ``reason`` is a stable code for rejects.jsonl."""

    def __init__(self, reason: str, path: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.path = path

    def to_reject(self) -> Reject:
        return Reject(self.path, IMAGE, self.reason, str(self))


@dataclass(frozen=True)
class Validated:
    record: Record
    fixes: tuple[str, ...]  # one code per fix made (a code repeats per clipped box)
    dropped_boxes: tuple[Reject, ...]
    image: Image.Image  # the decoded, oriented RGB pixels (for hashing; not stored)
    stored_as_is: bool = False  # the record holds the input's own bytes (``decodable`` checks them in TensorFlow)


def validation_config(config: DatasetConfig | ValidationConfig | None) -> ValidationConfig:
    if config is None:
        return ValidationConfig()
    return config.validation if isinstance(config, DatasetConfig) else config


def validate(
    labelled: LabelledImage,
    data: bytes,
    labels: LabelConfig,
    config: DatasetConfig | ValidationConfig | None = None,
    sha256: str | None = None,
    source_id: str | None = None,
) -> Validated:
    cfg = validation_config(config)
    path = labelled.image_path
    try:
        info, img = images.decode_probed(data, path, cfg.max_pixels, max_side=cfg.max_side)
    except images.ImageError as exc:
        raise ValidationError(exc.reason, path, str(exc)) from exc
    if labelled.image_class is None and labelled.boxes is None and labelled.mask_path is None:
        raise ValidationError("unlabelled", path, f"{path}: no label (annotation or class folder)")
    width, height = img.size
    raw_w, raw_h = info.raw_size
    fixes: list[str] = []
    dropped: list[Reject] = []
    boxes: tuple[Box, ...] = ()
    raw_boxes, already_oriented = (labelled.boxes or ()), False
    if labelled.boxes or labelled.regions:
        raw_boxes, already_oriented = _fit_declared_size(
            labelled, raw_w, raw_h, width, height, info.orientation, cfg, fixes
        )
    if labelled.boxes:
        oriented = raw_boxes if already_oriented else images.orient_boxes(raw_boxes, info.orientation, raw_w, raw_h)
        boxes = _clean_boxes(labelled, raw_boxes, oriented, width, height, labels, cfg, fixes, dropped)
    mask = _region_mask(labelled, raw_boxes, already_oriented, info, (width, height)) if labelled.regions else None
    if mask is not None and labelled.mask_path is not None and labelled.boxes is None:
        labelled, boxes = _mask_labels(labelled, mask, cfg, labels)
    image_class, image_label = _image_class(labelled, boxes, labels)
    encoded, fmt = _stored_bytes(data, info, img, cfg, fixes)
    record = Record(
        encoded=encoded,
        format=fmt,
        width=width,
        height=height,
        filename=paths.name(path),
        source_id=source_id
        or (f"{labelled.source}/{paths.relative(path, _root_hint(labelled))}" if labelled.source else path),
        sha256=sha256 or hashlib.sha256(data).hexdigest(),
        image_class=image_class,
        image_label=image_label,
        boxes=boxes,
        box_labels=tuple(labels.box_label_id(b.label) for b in boxes),
        mask=None if mask is None else regions.encode(mask),
    )
    return Validated(record, tuple(fixes), tuple(dropped), img, stored_as_is=encoded is data)


def _image_class(labelled: LabelledImage, boxes: tuple[Box, ...], labels: LabelConfig) -> tuple[str, int]:
    """The image's class and id: its label, else rust when it carries boxes; no_rust with boxes is a conflict."""
    path = labelled.image_path
    image_class = labelled.image_class or (RUST if labelled.boxes else NO_RUST)
    try:
        image_label = labels.image_label_id(image_class)
    except ValueError as exc:
        raise ValidationError(
            "unknown_label", path, f"{path}: image class {image_class!r} is not one of {labels.image_classes}"
        ) from exc
    if image_class == NO_RUST and boxes:
        raise ValidationError(
            "label_conflict", path, f"{path}: labelled {NO_RUST} but carries {len(boxes)} rust box(es)"
        )
    return image_class, image_label


def _stored_bytes(
    data: bytes, info: images.ImageInfo, img: Image.Image, cfg: ValidationConfig, fixes: list[str]
) -> tuple[bytes, str]:
    """The input's own bytes where every decoder reads them the same, else the oriented pixels re-encoded."""
    fmt = KEPT_FORMATS.get(info.format)
    if fmt == "jpeg" and info.mode not in ("RGB", "L"):  # CMYK/YCCK JPEGs: not every decoder copes
        fmt = None
    if info.high_depth:  # 16-bit / 32-bit / float pixels: store the scaled 8-bit view every decoder agrees on
        fmt = None
    if info.orientation != 1:
        fixes.append(FIX_ORIENTATION)
    if info.orientation != 1 or fmt is None:
        fixes.append(FIX_REENCODED)
        return images.encode_for_record(img, cfg.reencode_quality)
    return data, fmt


def to_record(
    labelled: LabelledImage, data: bytes, labels: LabelConfig, config: DatasetConfig | ValidationConfig | None = None
) -> Record:
    """The validated record alone (fixes are not reported); raises ValidationError."""
    return validate(labelled, data, labels, config).record


def _root_hint(labelled: LabelledImage) -> str:
    """The input root, recovered as the path prefix ending in the source's folder name."""
    parts = paths.normalise(labelled.image_path).split("/")
    for i in range(len(parts) - 1, -1, -1):
        if parts[i] == labelled.source:
            return "/".join(parts[: i + 1])
    return paths.parent(labelled.image_path)


def _fit_declared_size(
    labelled: LabelledImage,
    raw_w: int,
    raw_h: int,
    width: int,
    height: int,
    orientation: int,
    cfg: ValidationConfig,
    fixes: list[str],
) -> tuple[tuple[Box, ...], bool]:
    """Boxes in raw pixels, and whether they were drawn on the already-oriented image.

    The real size wins: a ``<size>`` that is a uniform rescale of the image rescales the boxes;
    one that matches the oriented (not the raw) size means the annotator saw the rotated image;
    any other disagreement keeps the pixel boxes (they are clipped next). Each case is counted.
    """
    boxes = labelled.boxes or ()
    declared = labelled.declared_size
    if declared is None or declared == (raw_w, raw_h):
        return boxes, False
    if images.swaps_sides(orientation) and declared == (width, height):
        return boxes, True
    fixes.append(FIX_SIZE)
    sx, sy = raw_w / declared[0], raw_h / declared[1]
    if abs(sx / sy - 1) <= cfg.size_ratio_tolerance:
        fixes.append(FIX_SIZE_RESCALED)
        boxes = tuple(_rescaled(b, sx, sy) for b in boxes)
    return boxes, False


def _rescaled(b: Box, sx: float, sy: float) -> Box:
    polygons = tuple(tuple(v * (sx if i % 2 == 0 else sy) for i, v in enumerate(p)) for p in b.polygons)
    return replace(b, xmin=b.xmin * sx, xmax=b.xmax * sx, ymin=b.ymin * sy, ymax=b.ymax * sy, polygons=polygons)


def _region_mask(
    labelled: LabelledImage,
    raw_boxes: tuple[Box, ...],
    already_oriented: bool,
    info: images.ImageInfo,
    size: tuple[int, int],
) -> np.ndarray:
    """Rust pixels of the stored (oriented) image: the mask file, or the union of the regions' polygons and RLE."""
    path = labelled.mask_path
    drawn_size = size if already_oriented else info.raw_size
    if path is not None:
        try:
            mask = regions.read_mask(io_utils.read_bytes(path, regions.MAX_MASK_BYTES), path, info.raw_size)
        except regions.MaskError as exc:
            raise ValidationError(exc.reason, labelled.image_path, f"{labelled.image_path}: {exc}") from exc
        except OSError as exc:
            reason = io_utils.read_error_reason(exc)
            raise ValidationError(reason, labelled.image_path, f"{labelled.image_path}: mask {path} ({exc})") from exc
        drawn_size = info.raw_size
    else:
        mask = regions.rasterise((p for b in raw_boxes for p in b.polygons), *drawn_size)
        for b in raw_boxes:
            if b.rle is not None:
                mask |= regions.decode_rle(b.rle, drawn_size)
    if drawn_size == info.raw_size:
        mask = regions.orient(mask, images.transpose_for(info.orientation))
    return mask


def _mask_labels(
    labelled: LabelledImage, mask: np.ndarray, cfg: ValidationConfig, labels: LabelConfig
) -> tuple[LabelledImage, tuple[Box, ...]]:
    """A mask-only source's boxes (one per merged region) and class (rust wherever a pixel is)."""
    height, width = mask.shape
    radius, min_pixels = regions.region_settings(width, height, cfg.region_merge_radius, cfg.region_min_area)
    rust = labels.box_classes[0]
    boxes = tuple(Box(*b, label=rust) for b in regions.boxes_from_mask(mask, radius, min_pixels))
    return replace(labelled, image_class=RUST if mask.any() else NO_RUST), boxes


def _clean_boxes(
    labelled: LabelledImage,
    raw_boxes: tuple[Box, ...],
    oriented: tuple[Box, ...],
    width: int,
    height: int,
    labels: LabelConfig,
    cfg: ValidationConfig,
    fixes: list[str],
    dropped: list[Reject],
) -> tuple[Box, ...]:
    where = labelled.annotation_path or labelled.image_path
    kept = []
    for i, (raw, box) in enumerate(zip(raw_boxes, oriented, strict=True)):
        name = f"{where}: box #{i + 1} ({raw.xmin:g}, {raw.ymin:g}, {raw.xmax:g}, {raw.ymax:g})"
        try:
            box = replace(box, label=labels.box_class(box.label))
        except UnknownLabelError as exc:
            raise ValidationError("unknown_label", labelled.image_path, f"{where}: {exc}") from exc
        if not all(math.isfinite(v) for v in (raw.xmin, raw.ymin, raw.xmax, raw.ymax)):
            # NaN passes every comparison below; the readers refuse it, this keeps any other source honest
            dropped.append(
                Reject(where, BOX, "non_finite_box", f"{name} has a coordinate that is not a finite number; dropped")
            )
            continue
        if raw.xmax < raw.xmin or raw.ymax < raw.ymin:
            dropped.append(Reject(where, BOX, "inverted_box", f"{name} has max < min; dropped"))
            continue
        clipped = box.clipped(width, height)
        if clipped != box:
            fixes.append(FIX_CLIPPED)
        if clipped.width < cfg.min_box_size or clipped.height < cfg.min_box_size:
            outside = box.area > 0 and clipped.area == 0
            detail = "lies outside the image" if outside else f"is smaller than {cfg.min_box_size:g} px"
            dropped.append(Reject(where, BOX, "zero_area_box", f"{name} {detail} ({width}x{height}); dropped"))
            continue
        kept.append(clipped)
    return tuple(kept)
