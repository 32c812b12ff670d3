"""Evaluate a rust detector: COCO AP/AR on TFRecord splits or a raw VOC / YOLO folder, plus a picture.

``evaluate_detector`` works on an exported model directory (what inference will run, through its
bytes-in serving signature); ``evaluate_split`` takes any detect function, so training evaluates
its in-memory model with exactly the same code.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from corrosion.core import io_utils
from corrosion.core.annotations import LabelledImage
from corrosion.core.labels import NO_RUST, load_labels
from corrosion.core.rejects import Reject
from corrosion.models import serving
from training.common import records
from training.common import report as common_report
from training.common.raw_folder import raw_records
from training.common.records import parsed_dataset
from training.detector.metrics import ImageResult, coco_metrics

log = logging.getLogger(__name__)

GRID_FILE = "detections_grid.png"
RAW_SPLIT = "all"

Detect = Callable[[tf.Tensor], dict[str, tf.Tensor]]  # (N,) encoded image bytes -> detector outputs


@dataclass(frozen=True)
class Example:
    """One evaluable image: encoded bytes, its size and true boxes in pixels (xmin, ymin, xmax, ymax)."""

    name: str
    encoded: bytes
    width: int
    height: int
    true_boxes: np.ndarray


def to_pixels(boxes: np.ndarray, width: int, height: int) -> np.ndarray:
    """Normalised (ymin, xmin, ymax, xmax) -> pixel (xmin, ymin, xmax, ymax) of a width x height image.

    The model sees the image squashed to S x S, so normalised coordinates scale back by each side
    separately; that is what keeps boxes right on non-square photos.
    """
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    return np.stack([b[:, 1] * width, b[:, 0] * height, b[:, 3] * width, b[:, 2] * height], axis=-1)


def record_examples(data_dir: str, split: str) -> tuple[list[Example], int]:
    """Evaluable images of a TFRecord split and the number left out (rust images without boxes)."""
    negative = load_labels().image_label_id(NO_RUST)
    examples, skipped = [], 0
    for ex in parsed_dataset(data_dir, split).as_numpy_iterator():
        boxes, label = ex["boxes"], int(ex["label"])
        if len(boxes) == 0 and label != negative:
            skipped += 1
            continue
        w, h = int(ex["width"]), int(ex["height"])
        examples.append(
            Example(ex["filename"].decode() or ex["sha256"].decode(), ex["encoded"], w, h, to_pixels(boxes, w, h))
        )
    return examples, skipped


def raw_examples(root: str, rejects: list[Reject] | None = None) -> tuple[list[Example], int]:
    """Evaluable images of a raw labelled folder (VOC XML, YOLO txt), read and validated as the dataset pipeline does.

    Files the readers or validation refuse go to ``rejects`` with their reason and are counted as
    left out, as are rust images without boxes (nothing to score boxes against).
    """
    rejects = [] if rejects is None else rejects
    unlocated: list[LabelledImage] = []
    examples = []
    for _, record in raw_records(root, load_labels(), rejects, usable=_located, unusable=unlocated):
        boxes = np.array([[b.xmin, b.ymin, b.xmax, b.ymax] for b in record.boxes], np.float64).reshape(-1, 4)
        examples.append(
            Example(record.source_id or record.filename, record.encoded, record.width, record.height, boxes)
        )
    for reject in rejects:
        log.warning("left out %s", reject)
    for labelled in unlocated:
        log.info("left out %s: rust without boxes", labelled.image_path)
    return examples, len(rejects) + len(unlocated)


def _located(labelled: LabelledImage) -> bool:
    """Boxes to score against: rust boxes, or none at all on a no-rust photo."""
    return bool(labelled.boxes) or labelled.image_class == NO_RUST


def detect_examples(detect: Detect, examples: list[Example], batch_size: int = 16) -> list[ImageResult]:
    """Run ``detect`` over the examples in batches; predicted boxes back in each image's pixels."""
    results = []
    for start in range(0, len(examples), batch_size):
        batch = examples[start : start + batch_size]
        out = detect(tf.constant([e.encoded for e in batch]))
        boxes = out["detection_boxes"].numpy()
        scores = out["detection_scores"].numpy()
        counts = out["num_detections"].numpy().astype(int)
        for e, b, s, n in zip(batch, boxes, scores, counts, strict=True):
            results.append(
                ImageResult(e.name, e.width, e.height, e.true_boxes, to_pixels(b[:n], e.width, e.height), s[:n])
            )
    return results


def evaluate_split(
    detect: Detect, examples: list[Example], skipped: int = 0, batch_size: int = 16
) -> tuple[dict, list[ImageResult]]:
    results = detect_examples(detect, examples, batch_size)
    metrics = coco_metrics(results) | {"left_out": skipped}
    if any(len(r.true_boxes) == 0 for r in results):  # the article's setting: rust photos only, no negatives
        only = coco_metrics([r for r in results if len(r.true_boxes)])
        metrics["box_images_only"] = {k: only[k] for k in ("AP", "AP50", "AP75", "AR100", "images")}
    return metrics, results


def exported_detect(model_dir: str) -> tuple[Detect, serving.ModelMetadata]:
    metadata = serving.read_metadata(model_dir)
    if metadata.kind != "detector":
        raise ValueError(f"{model_dir} holds a {metadata.kind}, not a detector")
    signature = tf.saved_model.load(model_dir).signatures[serving.BYTES_SIGNATURE]
    return (lambda encoded: signature(**{serving.BYTES_INPUT: encoded})), metadata


def box_union_maps(model_dir: str, size: int, batch_size: int = 16) -> Callable[[list[bytes]], np.ndarray]:
    """Photos -> (N, size, size) 0/1 maps: the union of the detector's boxes at its shipped score
    threshold. That union is the rusted area batch inference reports with a detector, so scored
    as a rust map it gives the detector's rusted-% error and D610 agreement, comparable to a
    segmenter's."""
    detect, metadata = exported_detect(model_dir)

    def maps(encoded: list[bytes]) -> np.ndarray:
        out = np.zeros((len(encoded), size, size), np.float32)
        for start in range(0, len(encoded), batch_size):
            found = detect(tf.constant(encoded[start : start + batch_size]))
            for i, (boxes, scores, n) in enumerate(
                zip(found["detection_boxes"].numpy(), found["detection_scores"].numpy(),
                    found["num_detections"].numpy().astype(int), strict=True)
            ):  # fmt: skip
                for ymin, xmin, ymax, xmax in boxes[:n][scores[:n] >= metadata.threshold]:
                    rows = slice(int(np.floor(ymin * size)), int(np.ceil(ymax * size)))
                    out[start + i, rows, int(np.floor(xmin * size)) : int(np.ceil(xmax * size))] = 1.0
        return out

    return maps


def evaluate_detector(model_dir: str, data: str, output_dir: str, splits: tuple[str, ...] | None = None) -> dict:
    """COCO metrics of an exported detector on the splits (default: all) of a TFRecord data set, or on a raw folder.

    Writes ``metrics.json`` (with ``rejects``: each file of a raw folder that could not be evaluated,
    and why) and a PNG grid of images with predicted (score >= the model's threshold) and true
    boxes to ``output_dir``, and returns the metrics.
    """
    detect, metadata = exported_detect(model_dir)
    splits = [s for s in records.available_splits(data) if splits is None or s in splits]
    rejects: list[Reject] = []
    sets = {s: record_examples(data, s) for s in splits} if splits else {RAW_SPLIT: raw_examples(data, rejects)}
    report: dict = {
        "kind": "detector",
        "model_version": metadata.version,
        "data": data,
        "score_threshold": metadata.threshold,
        "splits": {},
        "rejects": [{"path": r.path, "stage": r.stage, "reason": r.reason, "detail": r.detail} for r in rejects],
    }
    shown: list[ImageResult] = []
    encoded: list[bytes] = []
    for name, (examples, skipped) in sets.items():
        if not examples:
            log.warning("%s: no evaluable images (%d left out)", name, skipped)
            report["splits"][name] = {"images": 0, "left_out": skipped}
            continue
        metrics, results = evaluate_split(detect, examples, skipped)
        log.info("%s: AP50 %s, AP %s on %d images", name, metrics["AP50"], metrics["AP"], metrics["images"])
        report["splits"][name] = metrics
        shown, encoded = results, [e.encoded for e in examples]  # the last split (test) is drawn
    io_utils.make_dirs(output_dir)
    io_utils.write_text(io_utils.join(output_dir, common_report.METRICS_FILE), json.dumps(report, indent=2) + "\n")
    if shown:
        draw_grid(shown, encoded, io_utils.join(output_dir, GRID_FILE), metadata.threshold)
    return report


def _pick(results: list[ImageResult], n: int) -> list[int]:
    """Box images first, then negatives that drew the strongest false alarms: the informative ones."""
    ranked = sorted(
        range(len(results)),
        key=lambda i: (-(len(results[i].true_boxes) > 0), -float(np.max(results[i].scores, initial=0.0)), i),
    )
    return ranked[:n]


def draw_grid(results: list[ImageResult], encoded: list[bytes], path: str, threshold: float, n: int = 16) -> None:
    """PNG grid: true boxes green, predicted boxes (score >= threshold) red with their scores."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    chosen = _pick(results, n)
    cols = min(4, len(chosen))
    rows = int(np.ceil(len(chosen) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 4 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, i in zip(axes.ravel(), chosen, strict=False):
        r = results[i]
        ax.imshow(Image.open(io.BytesIO(encoded[i])).convert("RGB"))
        for x0, y0, x1, y1 in r.true_boxes:
            ax.add_patch(plt.Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, color="lime", linewidth=2))
        for (x0, y0, x1, y1), s in zip(r.boxes, r.scores, strict=True):
            if s >= threshold:
                ax.add_patch(plt.Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, color="red", linewidth=1.5))
                ax.text(x0, y0, f"{s:.2f}", color="white", fontsize=7, backgroundcolor="red")
        ax.set_title(r.name[-32:], fontsize=8)
    fig.suptitle(f"green: true rust boxes, red: predicted (score >= {threshold:.2f})")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    plt.close(fig)
    io_utils.write_bytes(path, buf.getvalue())
