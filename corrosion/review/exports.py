"""Pre-annotations in the formats labelling tools open directly, from the model's boxes.

- labelImg: Pascal VOC XML beside a copy of the photo (``voc/``);
- LabelMe: one JSON per photo, ``imagePath`` relative to the JSON (``labelme/``): the rust mask's
  outlines as polygons where the night wrote masks (``--masks``), else the boxes as rectangles;
- CVAT: one COCO instances file, ``bbox`` with a ``score`` (``coco/annotations.json``);
- Label Studio: a tasks JSON whose ``predictions`` carry the model version and scores
  (``rectanglelabels`` in percent of the photo, as Label Studio stores them).
Boxes are in the photo's EXIF-oriented pixels, as the result rows hold them and as the project's
readers read annotations back (``corrosion.data.readers``), so corrected files return through
``build_dataset`` like any labelled folder.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

LABEL = "rust"


@dataclass(frozen=True)
class ReviewItem:
    name: str  # the copy's file name (unique in the queue)
    width: int
    height: int
    boxes: tuple[tuple[float, float, float, float, float], ...]  # xmin, ymin, xmax, ymax, score
    rust_probability: float


def _clip(item: ReviewItem) -> list[tuple[int, int, int, int, float]]:
    """Boxes as whole pixels inside the photo (labelImg writes integers), empty ones dropped."""
    out = []
    for x0, y0, x1, y1, score in item.boxes:
        box = (max(0, round(x0)), max(0, round(y0)), min(item.width, round(x1)), min(item.height, round(y1)))
        if box[2] > box[0] and box[3] > box[1]:
            out.append((*box, float(score)))
    return out


def voc_xml(item: ReviewItem, folder: str) -> str:
    """labelImg's annotation for ``item`` (its copy sits beside it in ``folder``)."""
    root = ET.Element("annotation")
    for tag, text in (("folder", folder), ("filename", item.name), ("path", item.name)):
        ET.SubElement(root, tag).text = text
    ET.SubElement(ET.SubElement(root, "source"), "database").text = "corrosion review queue"
    size = ET.SubElement(root, "size")
    for tag, value in (("width", item.width), ("height", item.height), ("depth", 3)):
        ET.SubElement(size, tag).text = str(value)
    ET.SubElement(root, "segmented").text = "0"
    for x0, y0, x1, y1, _ in _clip(item):
        obj = ET.SubElement(root, "object")
        for tag, text in (("name", LABEL), ("pose", "Unspecified"), ("truncated", "0"), ("difficult", "0")):
            ET.SubElement(obj, tag).text = text
        box = ET.SubElement(obj, "bndbox")
        for tag, value in (("xmin", x0), ("ymin", y0), ("xmax", x1), ("ymax", y1)):
            ET.SubElement(box, tag).text = str(value)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode") + "\n"


def mask_polygons(mask: np.ndarray, width: int, height: int, tolerance: float = 1.0) -> list[list[float]]:
    """Outlines of a rust mask (any scale; nonzero = rust) as polygons in the photo's ``width`` x
    ``height`` pixels, simplified to ``tolerance`` mask pixels (scikit-image's marching squares and
    Douglas-Peucker). Holes come out as polygons of their own, so they read back as rust."""
    from skimage import measure

    padded = np.pad(mask > 0, 1).astype(np.float32)  # regions touching the border close
    sx, sy = width / mask.shape[1], height / mask.shape[0]
    out = []
    for contour in measure.find_contours(padded, 0.5):
        ring = measure.approximate_polygon(contour, tolerance)
        if len(ring) < 4:  # a closed ring repeats its first point: fewer than 3 corners is no area
            continue
        points = [
            (float(np.clip((c - 1 + 0.5) * sx, 0, width)), float(np.clip((r - 1 + 0.5) * sy, 0, height)))
            for r, c in ring[:-1]
        ]
        out.append([v for point in points for v in point])
    return out


def labelme_json(item: ReviewItem, image_path: str, polygons: Sequence[Sequence[float]] | None = None) -> dict:
    """LabelMe's document for ``item``, the photo at ``image_path`` relative to the JSON: ``polygons``
    (flat x, y lists in photo pixels) when given, else the boxes as rectangles."""
    if polygons is not None:
        shapes = [
            {
                "label": LABEL,
                "points": [[p[i], p[i + 1]] for i in range(0, len(p), 2)],
                "group_id": None,
                "description": "rust mask outline",
                "shape_type": "polygon",
                "flags": {},
            }
            for p in polygons
        ]
    else:
        shapes = [
            {
                "label": LABEL,
                "points": [[x0, y0], [x1, y1]],
                "group_id": None,
                "description": f"score {score:.3f}",
                "shape_type": "rectangle",
                "flags": {},
            }
            for x0, y0, x1, y1, score in _clip(item)
        ]
    return {
        "version": "5.4.1",
        "flags": {},
        "shapes": shapes,
        "imagePath": image_path,
        "imageData": None,
        "imageHeight": item.height,
        "imageWidth": item.width,
    }


def coco_document(items: Sequence[ReviewItem], image_folder: str) -> dict:
    """One COCO instances file (CVAT's import), the photos in ``image_folder`` relative to it."""
    images, annotations = [], []
    for image_id, item in enumerate(items, start=1):
        images.append(
            {"id": image_id, "file_name": f"{image_folder}/{item.name}", "width": item.width, "height": item.height}
        )
        for x0, y0, x1, y1, score in _clip(item):
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": 1,
                    "bbox": [x0, y0, x1 - x0, y1 - y0],
                    "area": (x1 - x0) * (y1 - y0),
                    "iscrowd": 0,
                    "segmentation": [],
                    "score": score,
                }
            )
    return {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": LABEL}]}


def label_studio_tasks(items: Sequence[ReviewItem], image_url: str, model_version: str) -> list[dict]:
    """Label Studio tasks (``data.image`` = ``image_url`` + name) with the model's predictions."""
    tasks = []
    for item in items:
        result = [
            {
                "id": f"r{i}",
                "from_name": "label",
                "to_name": "image",
                "type": "rectanglelabels",
                "original_width": item.width,
                "original_height": item.height,
                "image_rotation": 0,
                "value": {
                    "x": 100.0 * x0 / item.width,
                    "y": 100.0 * y0 / item.height,
                    "width": 100.0 * (x1 - x0) / item.width,
                    "height": 100.0 * (y1 - y0) / item.height,
                    "rotation": 0,
                    "rectanglelabels": [LABEL],
                },
                "score": score,
            }
            for i, (x0, y0, x1, y1, score) in enumerate(_clip(item), start=1)
        ]
        prediction = {"model_version": model_version, "score": item.rust_probability, "result": result}
        tasks.append({"data": {"image": image_url + item.name}, "predictions": [prediction]})
    return tasks
