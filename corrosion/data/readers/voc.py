"""Pascal VOC XML as labelImg writes it: parse safely, find the image, map the labels.

The image is found by ``<filename>`` relative to the XML's folder; ``<path>`` (the annotator's
absolute path on another machine) is ignored. XML is parsed with defusedxml, so entity expansion
("billion laughs") and external entities are refused, never expanded.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as StdET
from dataclasses import dataclass, replace

import defusedxml
import defusedxml.ElementTree as SafeET

from corrosion.core import io_utils, paths
from corrosion.core.annotations import Box, LabelledImage
from corrosion.core.labels import NO_RUST, RUST, LabelConfig
from corrosion.core.rejects import AnnotationError, box_class_or_reject, short_repr


@dataclass(frozen=True)
class VocAnnotation:
    """What one XML says, before its labels are mapped; box labels are the source's names."""

    annotation_path: str
    filename: str
    declared_size: tuple[int, int] | None  # (width, height), None when absent or zero
    boxes: tuple[Box, ...]


def parse_voc(data: bytes | str, annotation_path: str) -> VocAnnotation:
    """Parse labelImg XML; AnnotationError (malformed_xml, xml_entity_expansion, xml_external_entity)."""
    try:
        root = SafeET.fromstring(data, forbid_dtd=False, forbid_entities=True, forbid_external=True)
    except defusedxml.EntitiesForbidden as exc:
        if exc.sysid or exc.pubid:
            raise AnnotationError(
                "xml_external_entity", annotation_path, f"declares external entity {exc.name!r} ({exc.sysid}); refused"
            ) from exc
        raise AnnotationError(
            "xml_entity_expansion", annotation_path, f"declares entity {exc.name!r} (entity expansion); refused"
        ) from exc
    except defusedxml.DefusedXmlException as exc:
        raise AnnotationError(
            "xml_external_entity", annotation_path, f"refers to external content ({exc}); refused"
        ) from exc
    except (StdET.ParseError, UnicodeDecodeError, ValueError, LookupError) as exc:  # LookupError: encoding="x-bogus"
        raise AnnotationError("malformed_xml", annotation_path, f"not well-formed XML ({exc})") from exc
    if root.tag != "annotation":
        raise AnnotationError("malformed_xml", annotation_path, f"root element is <{root.tag}>, expected <annotation>")
    filename = (root.findtext("filename") or "").strip()
    if not filename:
        raise AnnotationError("malformed_xml", annotation_path, "no <filename>: cannot tell which image it annotates")
    return VocAnnotation(annotation_path, filename, _size(root, annotation_path), _boxes(root, annotation_path))


def _number(text: str | None, what: str, path: str) -> float:
    """A finite number: NaN passes every range check (all comparisons are false), so it is refused here."""
    try:
        value = float((text or "").strip())
    except ValueError as exc:
        raise AnnotationError("malformed_xml", path, f"{what} is {short_repr(text)}, not a number") from exc
    if not math.isfinite(value):
        raise AnnotationError("malformed_xml", path, f"{what} is {short_repr(text)}, not a finite number")
    return value


def _size(root, path: str) -> tuple[int, int] | None:
    size = root.find("size")
    if size is None:
        return None
    w = _number(size.findtext("width"), "<size><width>", path)
    h = _number(size.findtext("height"), "<size><height>", path)
    if not (1 <= w < 2**31 and 1 <= h < 2**31):
        return (
            None  # absent, zero (labelImg writes 0 when it could not tell) or not a pixel count: the real size is used
        )
    return int(w), int(h)


def _flag(obj, tag: str) -> bool:
    text = (obj.findtext(tag) or "0").strip()
    return text not in ("", "0", "false", "False")


def _boxes(root, path: str) -> tuple[Box, ...]:
    boxes = []
    for i, obj in enumerate(root.findall("object")):
        label = (obj.findtext("name") or "").strip()
        bnd = obj.find("bndbox")
        if not label or bnd is None:
            raise AnnotationError("malformed_xml", path, f"<object> #{i + 1} lacks <name> or <bndbox>")
        coords = [_number(bnd.findtext(t), f"<object> #{i + 1} <{t}>", path) for t in ("xmin", "ymin", "xmax", "ymax")]
        boxes.append(Box(*coords, label=label, difficult=_flag(obj, "difficult"), truncated=_flag(obj, "truncated")))
    return tuple(boxes)


def resolve_image_path(annotation: VocAnnotation, root: str) -> str:
    """The image ``<filename>`` names, relative to the XML's folder; AnnotationError path_escape if outside root."""
    filename = annotation.filename.replace("\\", "/")
    candidate = paths.normalise(paths.join(paths.parent(annotation.annotation_path), filename))
    if filename.startswith("/") or "://" in filename or not paths.is_within(candidate, root):
        raise AnnotationError(
            "path_escape",
            annotation.annotation_path,
            f"<filename> {annotation.filename!r} points outside the input root {root}; refused",
        )
    return candidate


def map_boxes(boxes: tuple[Box, ...], labels: LabelConfig, annotation_path: str) -> tuple[Box, ...]:
    """Source box labels -> project box classes; AnnotationError unknown_label naming the label."""
    return tuple(replace(b, label=box_class_or_reject(labels, b.label, annotation_path)) for b in boxes)


def to_labelled(
    annotation: VocAnnotation,
    image_path: str,
    labels: LabelConfig,
    source: str = "",
    source_split: str | None = None,
) -> LabelledImage:
    """A parsed annotation as a LabelledImage: any box makes it a rust image, none a negative."""
    boxes = map_boxes(annotation.boxes, labels, annotation.annotation_path)
    return LabelledImage(
        image_path=image_path,
        image_class=RUST if boxes else NO_RUST,
        boxes=boxes,
        annotation_path=annotation.annotation_path,
        source=source,
        source_split=source_split,
        declared_size=annotation.declared_size,
    )


def read_voc(annotation_path: str, root: str, labels: LabelConfig, source: str = "") -> LabelledImage:
    """Read one XML and resolve its image (which must exist inside ``root``)."""
    try:
        data = io_utils.read_bytes(annotation_path)
    except FileNotFoundError as exc:
        raise AnnotationError("missing_file", annotation_path, "annotation file does not exist") from exc
    annotation = parse_voc(data, annotation_path)
    image_path = resolve_image_path(annotation, root)
    if not io_utils.exists(image_path):
        raise AnnotationError("missing_image", annotation_path, f"its image {image_path} does not exist")
    return to_labelled(annotation, image_path, labels, source)
