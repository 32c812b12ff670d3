"""YOLO txt labels (Ultralytics / Roboflow export): ``{split}/images/x.jpg`` + ``{split}/labels/x.txt``.

Each line is ``class cx cy w h`` normalised to the image; an empty label file says "no rust here".
Class ids are named by ``data.yaml``'s ``names``; its split paths are often absolute paths from
the exporting machine, so they are resolved relative to the YAML's folder when they do not exist.
Following ``corrosion.synthetic`` and labelImg, coordinates refer to the stored (raw) pixels.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass

import yaml

from corrosion import io_utils, paths
from corrosion.annotations import Box, LabelledImage
from corrosion.labels import NO_RUST, RUST, LabelConfig
from corrosion.rejects import AnnotationError, box_class_or_reject

DATA_YAML_NAMES = ("data.yaml", "data.yml", "dataset.yaml")


@dataclass(frozen=True)
class YoloDataset:
    yaml_path: str
    names: tuple[str, ...]
    split_dirs: dict[str, str]  # yaml key (train/val/test) -> resolved images folder (may not exist)


@dataclass(frozen=True)
class YoloBox:
    class_name: str  # the source's name from data.yaml
    cx: float
    cy: float
    w: float
    h: float


def read_data_yaml(yaml_path: str) -> YoloDataset:
    try:
        data = yaml.safe_load(io_utils.read_text(yaml_path)) or {}
    except FileNotFoundError as exc:
        raise AnnotationError("missing_data_yaml", yaml_path, "data.yaml does not exist") from exc
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise AnnotationError("malformed_data_yaml", yaml_path, f"not valid YAML ({exc})") from exc
    if not isinstance(data, dict) or "names" not in data:
        raise AnnotationError("malformed_data_yaml", yaml_path, "needs a 'names' list of class names")
    names = data["names"]
    if isinstance(names, dict):  # Ultralytics also writes {0: name, 1: name}
        names = [names[k] for k in sorted(names)]
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise AnnotationError("malformed_data_yaml", yaml_path, f"'names' must be a list of strings, got {names!r}")
    yaml_dir = paths.parent(yaml_path)
    split_dirs = {
        key: resolve_split_dir(str(data[key]), yaml_dir)
        for key in ("train", "val", "test")
        if isinstance(data.get(key), str)
    }
    return YoloDataset(yaml_path, tuple(names), split_dirs)


def resolve_split_dir(declared: str, yaml_dir: str) -> str:
    """A data.yaml split path that exists; else relative to the YAML; else its last two parts there."""
    declared_posix = declared.replace("\\", "/")
    if "://" in declared_posix or declared_posix.startswith("/"):
        if io_utils.exists(declared_posix):
            return declared_posix
    else:
        relative = paths.normalise(paths.join(yaml_dir, declared_posix))
        if io_utils.exists(relative):
            return relative
    tail = "/".join([p for p in declared_posix.split("/") if p and p != ".."][-2:])
    return paths.normalise(paths.join(yaml_dir, tail))


def label_path_for(image_path: str) -> str:
    """``.../images/x.jpg`` -> ``.../labels/x.txt`` (the Ultralytics convention)."""
    folder, name = paths.parent(image_path), paths.name(image_path)
    return paths.join(paths.parent(folder), "labels", posixpath.splitext(name)[0] + ".txt")


def parse_labels(text: str, label_path: str, names: tuple[str, ...]) -> tuple[YoloBox, ...]:
    boxes = []
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 5:
            raise AnnotationError(
                "malformed_yolo", label_path, f"line {number} has {len(fields)} fields, expected 'class cx cy w h'"
            )
        try:
            class_id = int(fields[0])
            cx, cy, w, h = (float(v) for v in fields[1:])
        except ValueError as exc:
            raise AnnotationError("malformed_yolo", label_path, f"line {number} is not numeric: {line!r}") from exc
        if not 0 <= class_id < len(names):
            raise AnnotationError(
                "unknown_label",
                label_path,
                f"line {number}: class id {class_id} is not in data.yaml names {list(names)}",
            )
        boxes.append(YoloBox(names[class_id], cx, cy, w, h))
    return tuple(boxes)


def to_pixel_boxes(
    boxes: tuple[YoloBox, ...], width: int, height: int, labels: LabelConfig, label_path: str
) -> tuple[Box, ...]:
    """Normalised centre boxes -> pixel corner boxes with project box classes."""
    out = []
    for b in boxes:
        cls = box_class_or_reject(labels, b.class_name, label_path)
        out.append(
            Box(
                (b.cx - b.w / 2) * width,
                (b.cy - b.h / 2) * height,
                (b.cx + b.w / 2) * width,
                (b.cy + b.h / 2) * height,
                cls,
            )
        )
    return tuple(out)


def to_labelled(
    image_path: str,
    label_path: str,
    boxes: tuple[YoloBox, ...],
    raw_size: tuple[int, int],
    labels: LabelConfig,
    source: str = "",
    source_split: str | None = None,
) -> LabelledImage:
    """Boxes in pixels of the stored image of ``raw_size`` (width, height); no box means a negative."""
    pixel_boxes = to_pixel_boxes(boxes, raw_size[0], raw_size[1], labels, label_path)
    return LabelledImage(
        image_path=image_path,
        image_class=RUST if pixel_boxes else NO_RUST,
        boxes=pixel_boxes,
        annotation_path=label_path,
        source=source,
        source_split=source_split,
        declared_size=raw_size,
    )


def read_yolo(image_path: str, names: tuple[str, ...], labels: LabelConfig, source: str = "") -> LabelledImage:
    """Read one image's label file, probing the image header for its size."""
    from corrosion import images

    label_path = label_path_for(image_path)
    try:
        text = io_utils.read_text(label_path)
    except FileNotFoundError as exc:
        raise AnnotationError("missing_label_file", image_path, f"no label file {label_path}") from exc
    info = images.probe(io_utils.read_bytes(image_path), image_path)
    raw = (info.height, info.width) if info.orientation in (5, 6, 7, 8) else (info.width, info.height)
    return to_labelled(image_path, label_path, parse_labels(text, label_path, names), raw, labels, source)
