"""A night's review queue: the photos most worth an inspector's minute, as pre-annotations.

    python -m pipelines.review_queue --results 'OUT/date=2026-12-01/hull-7-results-*.csv' \\
        --classifier MODEL --budget 50 --output review/hull-7-2026-12-01

Reads the night's result rows (batch inference's CSV, local or ``gs://``), ranks them
(``corrosion.review.selection``) and writes, for the top ``--budget``:
- ``queue.csv``: rank, photo, priority and the reasons;
- ``voc/``: a copy of each photo with labelImg's VOC XML beside it (open the folder in labelImg);
- ``labelme/``: a copy of each photo with its LabelMe JSON (``labelme labelme/``): with ``--masks``
  (the folder batch inference's ``--masks`` wrote) the rust mask's outlines as polygons;
- ``coco/annotations.json`` with ``coco/images/``: import into CVAT as "COCO 1.0";
- ``label_studio/tasks.json``: import into Label Studio; boxes arrive as predictions with the
  model version and scores (serve ``voc/`` as local files and set ``--image_url`` to its URL).
The corrected folders go back through ``pipelines.build_dataset`` like any labelled folder (with
``--previous_manifest`` so a corrected photo keeps its split).
"""

from __future__ import annotations

import io
import json
import logging
import posixpath
import sys
from collections.abc import Sequence

import numpy as np
from PIL import Image

from corrosion import cli
from corrosion.core import csv_rows, io_utils
from corrosion.inference import previews, results
from corrosion.models import serving, versions
from corrosion.review import exports, selection

log = logging.getLogger("pipelines.review_queue")
QUEUE_COLUMNS = ("rank", "image_uri", "copy", "priority", "reasons", "rust_probability", "num_boxes", "rust_grade")


def copy_name(row: dict) -> str:
    """The photo's name in the queue: its own, plus the start of its sha256 (two folders may share names)."""
    stem, ext = posixpath.splitext(posixpath.basename(row["image_uri"].replace("\\", "/")))
    return f"{stem}_{row['image_sha256'][:8]}{ext.lower() or '.jpg'}"


def review_item(candidate: selection.Candidate) -> exports.ReviewItem:
    row = candidate.row
    boxes = tuple(tuple(float(v) for v in b[:5]) for b in candidate.boxes)
    return exports.ReviewItem(copy_name(row), int(row["width"]), int(row["height"]), boxes, row["rust_probability"])


def mask_outlines(masks_dir: str | None, row: dict) -> list[list[float]] | None:
    """The row's rust mask (written by batch inference's --masks) as polygons in photo pixels; None
    without a masks folder or a mask for this photo."""
    if masks_dir is None:
        return None
    path = io_utils.join(masks_dir, previews.mask_name(row["image_uri"], row["image_sha256"]))
    if not io_utils.exists(path):
        return None
    mask = np.asarray(Image.open(io.BytesIO(io_utils.read_bytes(path))).convert("L"))
    return exports.mask_polygons(mask, int(row["width"]), int(row["height"]))


def write_queue(
    queue: Sequence[selection.Candidate], output: str, image_url: str, masks_dir: str | None = None
) -> None:
    items = [review_item(c) for c in queue]
    for candidate, item in zip(queue, items, strict=True):
        photo = io_utils.read_bytes(candidate.row["image_uri"])
        for folder in ("voc", "labelme", "coco/images"):
            io_utils.write_bytes(io_utils.join(output, folder, item.name), photo)
        stem = posixpath.splitext(item.name)[0]
        io_utils.write_text(io_utils.join(output, "voc", f"{stem}.xml"), exports.voc_xml(item, "voc"))
        labelme = exports.labelme_json(item, item.name, mask_outlines(masks_dir, candidate.row))
        io_utils.write_text(io_utils.join(output, "labelme", f"{stem}.json"), json.dumps(labelme, indent=2) + "\n")
    coco = exports.coco_document(items, "images")
    io_utils.write_text(io_utils.join(output, "coco", "annotations.json"), json.dumps(coco, indent=2) + "\n")
    versions_used = sorted({f"{c.row['classifier_version']}+{c.row.get('detector_version') or 'none'}" for c in queue})
    tasks = exports.label_studio_tasks(items, image_url, ",".join(versions_used))
    io_utils.write_text(io_utils.join(output, "label_studio", "tasks.json"), json.dumps(tasks, indent=2) + "\n")
    io_utils.write_text(io_utils.join(output, "queue.csv"), queue_csv(queue, items))


def queue_csv(queue: Sequence[selection.Candidate], items: Sequence[exports.ReviewItem]) -> str:
    lines = [csv_rows.header(QUEUE_COLUMNS)]
    for rank, (c, item) in enumerate(zip(queue, items, strict=True), start=1):
        r = c.row
        values = (rank, r["image_uri"], item.name, c.priority, " ".join(c.reasons), r["rust_probability"])
        values += (r.get("num_boxes"), r.get("rust_grade"))
        lines.append(csv_rows.record("" if v is None else str(v) for v in values))
    return "".join(line + "\n" for line in lines)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    p = cli.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--results", required=True, help="the night's result CSV shards (a glob)")
    p.add_argument("--classifier", required=True, help="the classifier (folder or model root) that scored them")
    p.add_argument("--budget", type=int, required=True, help="how many photos to queue")
    p.add_argument("--output", required=True, help="folder for the queue and its pre-annotations")
    p.add_argument("--image_url", default="/data/local-files/?d=voc/", help="Label Studio's URL prefix of voc/")
    p.add_argument("--masks", help="the night's masks folder (batch inference --masks): LabelMe gets the outlines")
    args = p.parse_args(argv)
    meta = serving.read_metadata(versions.resolve(args.classifier))
    try:
        rows = results.read_night(args.results)
    except FileNotFoundError as exc:
        raise SystemExit(f"--results {exc}") from None
    other = sorted({r["classifier_version"] for r in rows} - {meta.version})
    if other:
        raise SystemExit(f"--results were scored by {', '.join(other)}, not --classifier's {meta.version}")
    queue = selection.select(rows, meta.threshold, args.budget)
    write_queue(queue, args.output, args.image_url, args.masks)
    log.info("queued %d of %d photos in %s (threshold %.3f)", len(queue), len(rows), args.output, meta.threshold)
    return 0


if __name__ == "__main__":
    sys.exit(main())
