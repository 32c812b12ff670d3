"""LabelMe JSON: one file per image, polygons and rectangles in the image's pixels.

``imagePath`` names the image relative to the JSON's folder (``../images/N.jpg`` in CCSC);
``imageData`` (an embedded base64 copy) is ignored, the named file is the image. Shapes other than
polygons and rectangles (points, lines, circles) mark no area and are refused with the file.
Coordinates refer to the stored (raw) pixels, like labelImg's; each must be a JSON number that
is a finite float (not ``true``, not a string, not ``10**400``: ``corrosion.core.safe_json``).
"""

from __future__ import annotations

from dataclasses import dataclass

from corrosion.core import paths, safe_json
from corrosion.core.annotations import Box, LabelledImage
from corrosion.core.labels import NO_RUST, RUST, LabelConfig
from corrosion.core.rejects import AnnotationError, box_class_or_reject, short_repr

AREA_SHAPES = ("polygon", "rectangle")


@dataclass(frozen=True)
class Shape:
    label: str
    kind: str  # polygon | rectangle
    points: tuple[float, ...]  # flat x1, y1, x2, y2, ...


@dataclass(frozen=True)
class LabelMeAnnotation:
    path: str
    image_path: str  # resolved against the JSON's folder
    size: tuple[int, int] | None  # (imageWidth, imageHeight) as declared
    shapes: tuple[Shape, ...]


def is_labelme(doc: object) -> bool:
    return isinstance(doc, dict) and "shapes" in doc and "imagePath" in doc


def parse_labelme(doc: object, path: str) -> LabelMeAnnotation:
    """A parsed JSON document as LabelMe; AnnotationError naming the file and what is wrong."""
    if not isinstance(doc, dict) or not isinstance(doc.get("shapes"), list):
        raise AnnotationError("malformed_labelme", path, "expected a JSON object with a 'shapes' list")
    image = doc.get("imagePath")
    if not isinstance(image, str) or not image.strip():
        raise AnnotationError("malformed_labelme", path, "'imagePath' is missing or not a file name")
    shapes = tuple(_shape(s, i, path) for i, s in enumerate(doc["shapes"], start=1))
    return LabelMeAnnotation(path, resolve_image_path(path, image), _declared_size(doc), shapes)


def resolve_image_path(json_path: str, image_path: str) -> str:
    """``imagePath`` against the JSON's folder; Windows separators as LabelMe on Windows writes them."""
    relative = image_path.replace("\\", "/")
    if relative.startswith("/") or (len(relative) > 1 and relative[1] == ":"):
        relative = paths.name(relative)  # an absolute path from the annotator's machine: its file name
    return paths.normalise(paths.join(paths.parent(json_path), relative))


def _declared_size(doc: dict) -> tuple[int, int] | None:
    w, h = doc.get("imageWidth"), doc.get("imageHeight")
    if safe_json.is_int(w) and safe_json.is_int(h) and w > 0 and h > 0:
        return (w, h)
    return None


def _shape(shape: object, number: int, path: str) -> Shape:
    if not isinstance(shape, dict):
        raise AnnotationError("malformed_labelme", path, f"shape #{number} is not an object")
    kind = shape.get("shape_type") or "polygon"
    label, points = shape.get("label"), shape.get("points")
    if not isinstance(label, str):
        raise AnnotationError("malformed_labelme", path, f"shape #{number} has no label")
    if kind not in AREA_SHAPES:
        raise AnnotationError(
            "unsupported_shape",
            path,
            f"shape #{number} ({label!r}) is a {short_repr(kind)}: only polygons and rectangles mark rust areas",
        )
    try:
        flat = tuple(safe_json.number(v) for point in points for v in _pair(point))
    except (TypeError, ValueError) as exc:
        raise AnnotationError(
            "malformed_labelme", path, f"shape #{number} has points that are not [x, y] numbers"
        ) from exc
    if None in flat:
        raise AnnotationError(
            "malformed_labelme", path, f"shape #{number} has a coordinate that is not a finite number"
        )
    needed = 4 if kind == "rectangle" else 6
    if len(flat) < needed:
        raise AnnotationError(
            "degenerate_polygon",
            path,
            f"shape #{number} ({label!r}) has {len(flat) // 2} point(s), too few to mark an area",
        )
    return Shape(label, kind, flat)


def _pair(point: object) -> tuple[object, object]:
    if not isinstance(point, (list, tuple)) or len(point) != 2:
        raise ValueError("not a point")
    return point[0], point[1]


def to_boxes(annotation: LabelMeAnnotation, labels: LabelConfig) -> tuple[Box, ...]:
    """One box per shape, tight around it; polygons keep their outline (rectangles become 4-point polygons)."""
    out = []
    for shape in annotation.shapes:
        cls = box_class_or_reject(labels, shape.label, annotation.path)
        xs, ys = shape.points[0::2], shape.points[1::2]
        if shape.kind == "rectangle":
            x0, x1, y0, y1 = min(xs[:2]), max(xs[:2]), min(ys[:2]), max(ys[:2])
            polygon = (x0, y0, x1, y0, x1, y1, x0, y1)
        else:
            polygon = shape.points
        out.append(
            Box(min(xs), min(ys), max(xs), max(ys), cls, polygons=(polygon,), state=labels.condition_state(shape.label))
        )
    return tuple(out)


def to_labelled(
    annotation: LabelMeAnnotation, labels: LabelConfig, source: str = "", source_split: str | None = None
) -> LabelledImage:
    """No shapes means the annotator saw no rust: a negative with an empty (all-background) mask."""
    boxes = to_boxes(annotation, labels)
    return LabelledImage(
        image_path=annotation.image_path,
        image_class=RUST if boxes else NO_RUST,
        boxes=boxes,
        annotation_path=annotation.path,
        source=source,
        source_split=source_split,
        declared_size=annotation.size,
        regions=True,
    )
