"""YOLO txt labels (Ultralytics / Roboflow export): ``{split}/images/x.jpg`` + ``{split}/labels/x.txt``.

Each line is ``class cx cy w h`` (a box) or ``class x1 y1 x2 y2 x3 y3 ...`` (a YOLO-seg polygon,
at least three points), normalised to the image; the number of values on a line decides which, and
both may mix in one file (Roboflow's ``towers``). A polygon's box is the min / max of its points. A
file of polygons only outlines every rust pixel, so its image gets a rust mask. An empty label file
says "no rust here".
Class ids are named by ``data.yaml``'s ``names``; its split paths are often absolute paths from
the exporting machine, so they are resolved relative to the YAML's folder when they do not exist.
Following ``corrosion.testing.synthetic`` and labelImg, coordinates refer to the stored (raw) pixels.
"""

from __future__ import annotations

import math
import posixpath
from dataclasses import dataclass

import yaml

from corrosion.core import io_utils, paths
from corrosion.core.annotations import Box, LabelledImage
from corrosion.core.labels import NO_RUST, RUST, LabelConfig
from corrosion.core.rejects import AnnotationError, box_class_or_reject, short_repr

DATA_YAML_NAMES = ("data.yaml", "data.yml", "dataset.yaml")


@dataclass(frozen=True)
class YoloDataset:
    yaml_path: str
    names: tuple[str | None, ...]  # indexed by class id; None where data.yaml names no class
    split_dirs: dict[str, str]  # yaml key (train/val/test) -> resolved images folder (may not exist)


@dataclass(frozen=True)
class YoloBox:
    class_name: str  # the source's name from data.yaml
    cx: float
    cy: float
    w: float
    h: float
    polygon: tuple[float, ...] = ()  # normalised x1, y1, x2, y2, ... for a YOLO-seg line


# libyaml's safe loader where PyYAML has it: fast, and it refuses deep nesting at once, where the
# pure-Python parser takes about a second per thousand levels of "[[[[...".
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
MAX_CLASS_ID = 9_999  # a names dict keyed beyond this is refused (it would size the id table)


def read_data_yaml(yaml_path: str) -> YoloDataset:
    """Class names by id and split folders; AnnotationError for anything unusable (never an exception
    of another type: hostile YAML, a folder named data.yaml, a BOM, mixed key types)."""
    try:
        text = io_utils.read_text(yaml_path, io_utils.MAX_DATA_YAML_BYTES)
        if any(isinstance(e, yaml.AliasEvent) for e in yaml.parse(text, Loader=_LOADER)):
            raise AnnotationError(
                "malformed_data_yaml",
                yaml_path,
                "uses YAML aliases (*name); refused (alias bombs expand without bound)",
            )
        data = yaml.load(text, Loader=_LOADER) or {}
    except FileNotFoundError as exc:
        raise AnnotationError("missing_data_yaml", yaml_path, "data.yaml does not exist") from exc
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise AnnotationError("malformed_data_yaml", yaml_path, f"not valid YAML ({_yaml_problem(exc)})") from exc
    except RecursionError as exc:  # [[[[...]]]] deeper than the YAML composer recurses
        raise AnnotationError("malformed_data_yaml", yaml_path, "nested too deeply to read; refused") from exc
    except io_utils.FileTooLarge as exc:
        raise AnnotationError("malformed_data_yaml", yaml_path, str(exc)) from exc
    except OSError as exc:  # a folder named data.yaml, permissions
        raise AnnotationError(
            "malformed_data_yaml", yaml_path, f"cannot be read as a file ({exc.strerror or exc})"
        ) from exc
    if not isinstance(data, dict) or "names" not in data:
        raise AnnotationError("malformed_data_yaml", yaml_path, "needs a 'names' list of class names")
    names = _names_by_id(data["names"], yaml_path)
    yaml_dir = paths.parent(yaml_path)
    split_dirs = {
        key: resolve_split_dir(str(data[key]), yaml_dir)
        for key in ("train", "val", "test")
        if isinstance(data.get(key), str)
    }
    return YoloDataset(yaml_path, names, split_dirs)


def _yaml_problem(exc: Exception) -> str:
    """What the YAML parser objected to, and where, on one short line."""
    problem = getattr(exc, "problem", None) or (str(exc).splitlines() or [type(exc).__name__])[0]
    mark = getattr(exc, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return f"{problem[:120]}{where}"


def _names_by_id(names: object, yaml_path: str) -> tuple[str | None, ...]:
    """``names`` as a table indexed by class id (None where an id has no name).

    A list names ids 0, 1, ...; Ultralytics also writes ``{0: name, 2: name}``, whose keys are the
    ids themselves, so a dict is mapped by key, never by position.
    """
    if isinstance(names, list) and all(isinstance(n, str) for n in names):
        return tuple(names)
    if isinstance(names, dict):
        table: dict[int, str] = {}
        for key, name in names.items():
            class_id = key if isinstance(key, int) and not isinstance(key, bool) else None
            if isinstance(key, str) and key.strip().isascii() and key.strip().isdigit():  # not "²", which int() refuses
                class_id = int(key)
            if class_id is None or not 0 <= class_id <= MAX_CLASS_ID or not isinstance(name, str):
                raise AnnotationError(
                    "malformed_data_yaml",
                    yaml_path,
                    f"'names' entry {short_repr(key)}: {short_repr(name)} is not 'class id (0..{MAX_CLASS_ID}): name'",
                )
            table[class_id] = name
        return tuple(table.get(i) for i in range(max(table, default=-1) + 1))
    raise AnnotationError(
        "malformed_data_yaml",
        yaml_path,
        f"'names' must be a list of strings or an id: name map, got {short_repr(names)}",
    )


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


def parse_labels(text: str, label_path: str, names: tuple[str | None, ...]) -> tuple[YoloBox, ...]:
    boxes = []
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 5 and (len(fields) < 7 or len(fields) % 2 == 0):
            raise AnnotationError(
                "malformed_yolo",
                label_path,
                f"line {number} has {len(fields)} fields, expected 'class cx cy w h' or a polygon 'class x1 y1 x2 y2 x3 y3 ...'",
            )
        try:
            class_id = int(fields[0])
            values = tuple(float(v) for v in fields[1:])
        except ValueError as exc:
            raise AnnotationError(
                "malformed_yolo", label_path, f"line {number} is not numeric: {short_repr(line)}"
            ) from exc
        if not all(math.isfinite(v) for v in values):
            raise AnnotationError(
                "malformed_yolo",
                label_path,
                f"line {number} has a value that is not a finite number: {short_repr(line)}",
            )
        boxes.append(_line_box(_class_name(names, class_id, number, label_path), values))
    return tuple(boxes)


def _class_name(names: tuple[str | None, ...], class_id: int, number: int, label_path: str) -> str:
    name = names[class_id] if 0 <= class_id < len(names) else None
    if name is None:
        known = {i: n for i, n in enumerate(names) if n is not None}
        raise AnnotationError(
            "unknown_label",
            label_path,
            f"line {number}: class id {class_id} is not in data.yaml names {short_repr(known)}",
        )
    return name


def _line_box(name: str, values: tuple[float, ...]) -> YoloBox:
    if len(values) == 4:
        return YoloBox(name, *values)
    xs, ys = values[0::2], values[1::2]
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    return YoloBox(name, (x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0, values)


def to_pixel_boxes(
    boxes: tuple[YoloBox, ...], width: int, height: int, labels: LabelConfig, label_path: str
) -> tuple[Box, ...]:
    """Normalised centre boxes -> pixel corner boxes with project box classes."""
    out = []
    for b in boxes:
        cls = box_class_or_reject(labels, b.class_name, label_path)
        polygon = tuple(v * (width if i % 2 == 0 else height) for i, v in enumerate(b.polygon))
        out.append(
            Box(
                (b.cx - b.w / 2) * width,
                (b.cy - b.h / 2) * height,
                (b.cx + b.w / 2) * width,
                (b.cy + b.h / 2) * height,
                cls,
                polygons=(polygon,) if polygon else (),
                state=labels.condition_state(b.class_name),
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
        regions=bool(pixel_boxes) and all(b.polygons for b in pixel_boxes),
    )


def read_yolo(image_path: str, names: tuple[str, ...], labels: LabelConfig, source: str = "") -> LabelledImage:
    """Read one image's label file, probing the image header for its size."""
    from corrosion.imaging import images

    label_path = label_path_for(image_path)
    try:
        text = io_utils.read_text(label_path, io_utils.MAX_ANNOTATION_BYTES)
    except FileNotFoundError as exc:
        raise AnnotationError("missing_label_file", image_path, f"no label file {label_path}") from exc
    info = images.probe(io_utils.read_bytes(image_path), image_path)
    raw = info.raw_size
    return to_labelled(image_path, label_path, parse_labels(text, label_path, names), raw, labels, source)
