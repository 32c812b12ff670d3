"""COCO instances JSON (what CVAT, Label Studio and Roboflow export): many images in one file.

Each image's ``file_name`` is resolved against the JSON's folder, then an ``images/`` folder
beside or above it (CVAT: ``annotations/instances_default.json`` beside ``images/``). Every
annotation gives a box (``bbox``: x, y, width, height in pixels) and, when it has one, its region:
polygons (lists of x, y) or RLE (compressed or not; pycocotools decodes both). An image listed with
no annotation is a negative. Category names map onto the project's box class through labels.yaml.

Nothing the file leaves ambiguous is resolved silently: an image id listed twice, a category id
declared twice with different names, an annotation naming no listed image, ``true`` as an id, a
polygon of an odd number of coordinates, RLE counts that do not cover the image exactly: each
is a reject naming the JSON and the entry.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from corrosion.core import io_utils, paths, safe_json
from corrosion.core.annotations import Box, LabelledImage
from corrosion.core.labels import NO_RUST, RUST, LabelConfig
from corrosion.core.rejects import AnnotationError, box_class_or_reject, short_repr
from corrosion.core.safe_json import is_int

IMAGE_FOLDERS = ("images", "JPEGImages")
MAX_RLE_PIXELS = 2**31 - 1  # pycocotools holds height * width in 32 bits


@dataclass(frozen=True)
class CocoImage:
    id: int
    file_name: str
    size: tuple[int, int] | None  # (width, height) declared


@dataclass(frozen=True)
class CocoFile:
    path: str
    images: tuple[CocoImage, ...]
    annotations: dict[int, tuple[dict, ...]]  # image id -> its annotations, as found
    categories: dict[int, str]
    conflicting: dict[int, tuple[str, ...]] = field(default_factory=dict)  # category id -> its several names
    duplicate_ids: frozenset[int] = frozenset()  # image ids listed more than once
    orphans: tuple[dict, ...] = ()  # annotations whose image_id no image has

    def for_image(self, image: CocoImage) -> CocoFile:
        """The file cut down to one image: its annotations and the categories they use. Each image of
        an export travels through the pipeline on its own; carrying the whole file with each made
        the pipeline's cost quadratic in the number of images."""
        annotations = self.annotations.get(image.id, ())
        used = {a.get("category_id") for a in annotations if is_int(a.get("category_id"))}
        return CocoFile(
            self.path,
            (image,),
            {image.id: annotations} if annotations else {},
            {k: v for k, v in self.categories.items() if k in used},
            {k: v for k, v in self.conflicting.items() if k in used},
            self.duplicate_ids & {image.id},
        )


def is_coco(doc: object) -> bool:
    return isinstance(doc, dict) and isinstance(doc.get("images"), list) and isinstance(doc.get("annotations"), list)


def parse_coco(doc: dict, path: str) -> CocoFile:
    """The file's images, annotations by image and category names; AnnotationError when unusable."""
    categories, conflicting = _categories(doc.get("categories") or [], path)
    images = tuple(_image(im, path) for im in doc["images"])
    known = {im.id for im in images}
    by_image: dict[int, list[dict]] = {}
    orphans = []
    for a in doc["annotations"]:
        if not isinstance(a, dict) or not is_int(a.get("image_id")):
            raise AnnotationError("malformed_coco", path, f"annotation {short_repr(a)} has no integer image_id")
        if a["image_id"] in known:
            by_image.setdefault(a["image_id"], []).append(a)
        else:
            orphans.append(a)
    counts = Counter(im.id for im in images)
    duplicates = frozenset(i for i, n in counts.items() if n > 1)
    annotations = {k: tuple(v) for k, v in by_image.items()}
    return CocoFile(path, images, annotations, categories, conflicting, duplicates, tuple(orphans))


def _categories(entries: object, path: str) -> tuple[dict[int, str], dict[int, tuple[str, ...]]]:
    """Category names by id, and the ids declared more than once with different names (which one
    an annotation means cannot be told; the last one used to win)."""
    if not isinstance(entries, list):
        raise AnnotationError("malformed_coco", path, f"categories {short_repr(entries)} is not a list")
    names: dict[int, list[str]] = {}
    for c in entries:
        if not isinstance(c, dict) or not is_int(c.get("id")) or not isinstance(c.get("name"), str):
            raise AnnotationError("malformed_coco", path, f"category {short_repr(c)} needs an integer id and a name")
        if c["name"] not in names.setdefault(c["id"], []):
            names[c["id"]].append(c["name"])
    conflicting = {k: tuple(v) for k, v in names.items() if len(v) > 1}
    return {k: v[0] for k, v in names.items() if len(v) == 1}, conflicting


def _image(im: object, path: str) -> CocoImage:
    if not isinstance(im, dict) or not is_int(im.get("id")) or not isinstance(im.get("file_name"), str):
        raise AnnotationError("malformed_coco", path, f"image {short_repr(im)} needs an integer id and a file_name")
    w, h = im.get("width"), im.get("height")
    size = (w, h) if is_int(w) and is_int(h) and w > 0 and h > 0 else None
    return CocoImage(im["id"], im["file_name"], size)


def candidates(json_path: str, file_name: str) -> list[str]:
    """Where an image's ``file_name`` may be, most specific first."""
    name = file_name.replace("\\", "/").lstrip("/")
    folder = paths.parent(json_path)
    out = [paths.join(folder, name)]
    for base in (folder, paths.parent(folder)):
        for sub in IMAGE_FOLDERS:
            out.append(paths.join(base, sub, paths.name(name)))
    return [paths.normalise(p) for p in out]


def resolve(json_path: str, file_name: str, exists=io_utils.exists) -> str | None:
    return next((p for p in candidates(json_path, file_name) if exists(p)), None)


def to_boxes(
    coco: CocoFile, annotations: tuple[dict, ...], labels: LabelConfig, size: tuple[int, int] | None = None
) -> tuple[Box, ...]:
    """The annotations' boxes; ``size`` (the image's declared width, height) is what an RLE must cover."""
    return tuple(_box(coco, a, labels, size) for a in annotations)


def _box(coco: CocoFile, a: dict, labels: LabelConfig, size: tuple[int, int] | None) -> Box:
    where = f"{coco.path} annotation {short_repr(a.get('id', '?'))}"
    category = a.get("category_id")
    if is_int(category) and category in coco.conflicting:
        names = ", ".join(repr(n) for n in coco.conflicting[category])
        raise AnnotationError(
            "duplicate_category_id",
            coco.path,
            f"{where}: category id {category} is declared with several names ({names}); which is meant cannot be told",
        )
    name = coco.categories.get(category) if is_int(category) else None
    if name is None:
        raise AnnotationError(
            "unknown_label", coco.path, f"{where}: category_id {short_repr(category)} has no category"
        )
    cls = box_class_or_reject(labels, name, coco.path)
    bbox = a.get("bbox")
    values = safe_json.numbers(bbox) if isinstance(bbox, list) else None
    if values is None or len(values) != 4:
        raise AnnotationError(
            "malformed_coco",
            coco.path,
            f"{where}: bbox {short_repr(bbox)} is not [x, y, width, height] in finite numbers",
        )
    x, y, w, h = values
    if not math.isfinite(x + w) or not math.isfinite(y + h):
        raise AnnotationError("malformed_coco", coco.path, f"{where}: bbox {short_repr(bbox)} ends beyond any number")
    polygons, rle = _region(a.get("segmentation"), where, coco.path, size)
    return Box(x, y, x + w, y + h, cls, polygons=polygons, rle=rle, state=labels.condition_state(name))


def _region(
    seg: object, where: str, path: str, size: tuple[int, int] | None
) -> tuple[tuple[tuple[float, ...], ...], tuple | None]:
    if seg in (None, [], {}):
        return (), None
    if isinstance(seg, list):
        return tuple(_polygon(poly, n, where, path) for n, poly in enumerate(seg, start=1)), None
    if isinstance(seg, dict) and "counts" in seg:
        return (), _rle(seg, where, path, size)
    raise AnnotationError(
        "malformed_coco", path, f"{where}: segmentation {short_repr(seg)} is neither polygons nor RLE"
    )


def _polygon(poly: object, number: int, where: str, path: str) -> tuple[float, ...]:
    """One polygon as flat x, y floats: finite numbers, in pairs, at least three points."""
    values = safe_json.numbers(poly) if isinstance(poly, list) else None
    if values is None:
        raise AnnotationError("malformed_coco", path, f"{where}: polygon #{number} is not a list of finite numbers")
    if len(values) % 2:
        raise AnnotationError(
            "malformed_coco",
            path,
            f"{where}: polygon #{number} has {len(values)} coordinates, an odd number: they are not x, y pairs",
        )
    if len(values) < 6:
        raise AnnotationError(
            "degenerate_polygon",
            path,
            f"{where}: polygon #{number} has {len(values) // 2} point(s), too few to mark an area",
        )
    return values


def to_labelled(
    image_path: str,
    coco_path: str,
    boxes: tuple[Box, ...],
    size: tuple[int, int] | None,
    source: str = "",
    source_split: str | None = None,
) -> LabelledImage:
    """An image listed with no annotation is a negative; one whose every annotation has a region gets a mask."""
    return LabelledImage(
        image_path=image_path,
        image_class=RUST if boxes else NO_RUST,
        boxes=boxes,
        annotation_path=coco_path,
        source=source,
        source_split=source_split,
        declared_size=size,
        regions=bool(boxes) and all(b.polygons or b.rle for b in boxes),
    )


def read_coco(path: str) -> CocoFile:
    data = io_utils.read_bytes(path, io_utils.MAX_COCO_BYTES)
    try:
        doc = safe_json.loads(data)
    except safe_json.JsonError as exc:
        raise AnnotationError("malformed_coco", path, str(exc)) from exc
    if not is_coco(doc):
        raise AnnotationError("malformed_coco", path, "expected 'images' and 'annotations' lists")
    return parse_coco(doc, path)


# ---------------------------------------------------------------- RLE


def rle_runs(counts: bytes, pixels: int) -> np.ndarray:
    """pycocotools' compressed counts string as run lengths; ValueError unless they are
    non-negative and cover exactly ``pixels`` (pycocotools itself reads past short counts into
    memory it never set, and fails on long ones).

    The format (``rleFrString``): each count in 5-bit groups, the character 48 + group, 0x20 set
    while more groups follow, the last group's 0x10 bit the sign; from the fourth count on, each
    is a difference from the count two before it.
    """
    v = np.frombuffer(counts, np.uint8).astype(np.int64) - 48
    if v.size == 0 or (v < 0).any() or (v > 63).any():
        raise ValueError("counts hold characters outside the compressed alphabet ('0'..'o')" if v.size else "no counts")
    more = (v & 0x20) != 0
    if more[-1]:
        raise ValueError("the last count is cut short")
    ends = np.flatnonzero(~more)
    starts = np.concatenate(([0], ends[:-1] + 1))
    groups = ends - starts + 1
    if groups.max() > 7:
        raise ValueError("a count longer than any image")
    k = np.arange(v.size) - np.repeat(starts, groups)
    x = np.add.reduceat((v & 0x1F) << (5 * k), starts)
    x = np.where((v[ends] & 0x10) != 0, x - (np.int64(1) << (5 * groups)), x)
    if np.abs(x).max() > pixels:
        raise ValueError(f"a count beyond the image's {pixels} pixels")
    runs = x.copy()
    runs[1::2] = np.cumsum(x[1::2])  # counts 3, 5, ... are differences from the one two before
    runs[2::2] = np.cumsum(x[2::2])
    if (runs < 0).any() or int(runs.sum()) != pixels:
        raise ValueError(f"counts sum to {int(runs.sum())}, not the {pixels} pixels of the mask")
    return runs


def _rle_shape(seg: dict, where: str, path: str, size: tuple[int, int] | None) -> tuple[int, int]:
    """(height, width) of an RLE: positive integers, the image's own declared size."""
    shape = seg.get("size")
    if not (isinstance(shape, list) and len(shape) == 2 and all(is_int(v) and v > 0 for v in shape)):
        raise AnnotationError("malformed_coco", path, f"{where}: RLE size {short_repr(shape)} is not [height, width]")
    h, w = shape
    if size is not None and (w, h) != size:
        raise AnnotationError(
            "mask_size_mismatch",
            path,
            f"{where}: RLE is {w}x{h}, its image {size[0]}x{size[1]}; a mask must match its image",
        )
    if h * w > MAX_RLE_PIXELS:
        raise AnnotationError("mask_size_mismatch", path, f"{where}: RLE of {w}x{h} is larger than any image")
    return h, w


def _rle(seg: dict, where: str, path: str, size: tuple[int, int] | None = None) -> tuple[int, int, bytes]:
    """(height, width, compressed counts), checked to cover exactly height x width before anything decodes it."""
    from pycocotools import mask as mask_utils

    h, w = _rle_shape(seg, where, path, size)
    counts = seg["counts"]
    try:
        if isinstance(counts, str):
            compressed = counts.encode("ascii")
            rle_runs(compressed, h * w)
            return (h, w, compressed)
        if not (isinstance(counts, list) and all(is_int(v) and v >= 0 for v in counts)):
            raise ValueError("counts are neither a compressed string nor a list of non-negative integers")
        if sum(counts) != h * w:
            raise ValueError(f"counts sum to {sum(counts)}, not the {h * w} pixels of the mask")
    except (UnicodeEncodeError, ValueError) as exc:
        raise AnnotationError("malformed_coco", path, f"{where}: RLE counts do not decode ({exc})") from exc
    return (h, w, mask_utils.frPyObjects({"size": [h, w], "counts": counts}, h, w)["counts"])


def check_rle_sizes(boxes: tuple[Box, ...], drawn: tuple[int, int], image_path: str, coco_path: str) -> None:
    """Every RLE must be the size of the pixels it is drawn on (the image's, width x height): one of
    another size is refused, never decoded at its own size nor stretched."""
    for n, b in enumerate(boxes, start=1):
        if b.rle is not None and (b.rle[1], b.rle[0]) != tuple(drawn):
            raise AnnotationError(
                "mask_size_mismatch",
                coco_path,
                f"{coco_path}: RLE #{n} for {image_path} is {b.rle[1]}x{b.rle[0]}, the image "
                f"{drawn[0]}x{drawn[1]}; a mask must match its image",
            )
