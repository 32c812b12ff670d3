"""COCO instances JSON (what CVAT, Label Studio and Roboflow export): many images in one file.

Each image's ``file_name`` is resolved against the JSON's folder, then an ``images/`` folder
beside or above it (CVAT: ``annotations/instances_default.json`` beside ``images/``). Every
annotation gives a box (``bbox``: x, y, width, height in pixels) and, when it has one, its region:
polygons (lists of x, y) or RLE (compressed or not; pycocotools decodes both). An image listed with
no annotation is a negative. Category names map onto the project's box class through labels.yaml.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

from corrosion.core import io_utils, paths
from corrosion.core.annotations import Box, LabelledImage
from corrosion.core.labels import NO_RUST, RUST, LabelConfig
from corrosion.core.rejects import AnnotationError, box_class_or_reject, short_repr

IMAGE_FOLDERS = ("images", "JPEGImages")


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


def is_coco(doc: object) -> bool:
    return isinstance(doc, dict) and isinstance(doc.get("images"), list) and isinstance(doc.get("annotations"), list)


def parse_coco(doc: dict, path: str) -> CocoFile:
    """The file's images, annotations by image and category names; AnnotationError when unusable."""
    categories = {}
    for c in doc.get("categories") or []:
        if not isinstance(c, dict) or not isinstance(c.get("id"), int) or not isinstance(c.get("name"), str):
            raise AnnotationError("malformed_coco", path, f"category {short_repr(c)} needs an integer id and a name")
        categories[c["id"]] = c["name"]
    images = []
    for im in doc["images"]:
        if not isinstance(im, dict) or not isinstance(im.get("id"), int) or not isinstance(im.get("file_name"), str):
            raise AnnotationError("malformed_coco", path, f"image {short_repr(im)} needs an integer id and a file_name")
        w, h = im.get("width"), im.get("height")
        size = (w, h) if isinstance(w, int) and isinstance(h, int) and w > 0 and h > 0 else None
        images.append(CocoImage(im["id"], im["file_name"], size))
    by_image: dict[int, list[dict]] = {}
    for a in doc["annotations"]:
        if not isinstance(a, dict) or not isinstance(a.get("image_id"), int):
            raise AnnotationError("malformed_coco", path, f"annotation {short_repr(a)} has no integer image_id")
        by_image.setdefault(a["image_id"], []).append(a)
    return CocoFile(path, tuple(images), {k: tuple(v) for k, v in by_image.items()}, categories)


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


def to_boxes(coco: CocoFile, annotations: tuple[dict, ...], labels: LabelConfig) -> tuple[Box, ...]:
    return tuple(_box(coco, a, labels) for a in annotations)


def _box(coco: CocoFile, a: dict, labels: LabelConfig) -> Box:
    where = f"{coco.path} annotation {a.get('id', '?')}"
    category = a.get("category_id")
    name = coco.categories.get(category) if isinstance(category, int) else None
    if name is None:
        raise AnnotationError(
            "unknown_label", coco.path, f"{where}: category_id {a.get('category_id')!r} has no category"
        )
    cls = box_class_or_reject(labels, name, coco.path)
    bbox = a.get("bbox")
    if not (isinstance(bbox, list) and len(bbox) == 4 and all(isinstance(v, (int, float)) for v in bbox)):
        raise AnnotationError(
            "malformed_coco", coco.path, f"{where}: bbox {short_repr(bbox)} is not [x, y, width, height]"
        )
    if not all(math.isfinite(v) for v in bbox):
        raise AnnotationError(
            "malformed_coco", coco.path, f"{where}: bbox has a coordinate that is not a finite number"
        )
    x, y, w, h = (float(v) for v in bbox)
    polygons, rle = _region(a.get("segmentation"), where, coco.path)
    return Box(x, y, x + w, y + h, cls, polygons=polygons, rle=rle, state=labels.condition_state(name))


def _region(seg: object, where: str, path: str) -> tuple[tuple[tuple[float, ...], ...], tuple | None]:
    if seg in (None, [], {}):
        return (), None
    if isinstance(seg, list):
        polygons = []
        for poly in seg:
            if not isinstance(poly, list) or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in poly):
                raise AnnotationError("malformed_coco", path, f"{where}: a polygon is not a list of numbers")
            if len(poly) >= 6:
                polygons.append(tuple(float(v) for v in poly))
        return tuple(polygons), None
    if isinstance(seg, dict) and "counts" in seg:
        return (), _rle(seg, where, path)
    raise AnnotationError(
        "malformed_coco", path, f"{where}: segmentation {short_repr(seg)} is neither polygons nor RLE"
    )


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
        doc = json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise AnnotationError("malformed_coco", path, f"not valid UTF-8 JSON ({type(exc).__name__})") from exc
    if not is_coco(doc):
        raise AnnotationError("malformed_coco", path, "expected 'images' and 'annotations' lists")
    return parse_coco(doc, path)


def _rle(seg: dict, where: str, path: str) -> tuple[int, int, bytes]:
    """(height, width, compressed counts), checked by decoding its area with pycocotools."""
    from pycocotools import mask as mask_utils

    size, counts = seg.get("size"), seg["counts"]
    valid_size = isinstance(size, list) and len(size) == 2 and all(type(v) is int and v > 0 for v in size)
    valid_counts = isinstance(counts, str) or (
        isinstance(counts, list) and all(type(v) is int and v >= 0 for v in counts)
    )
    if not (valid_size and valid_counts):
        raise AnnotationError("malformed_coco", path, f"{where}: RLE needs size [height, width] and counts")
    h, w = size
    try:
        if isinstance(counts, list):  # uncompressed: compressed by pycocotools
            rle = mask_utils.frPyObjects(seg, h, w)
        else:
            rle = {"size": [h, w], "counts": counts.encode("ascii")}
        mask_utils.area(rle)
    except Exception as exc:  # noqa: BLE001 - pycocotools raises bare exceptions for bad counts
        raise AnnotationError("malformed_coco", path, f"{where}: RLE counts do not decode ({exc})") from exc
    return (h, w, rle["counts"])
