"""COCO box metrics through pycocotools' COCOeval, for one class (rust).

Images without ground-truth boxes (negatives) are part of the evaluation: any box predicted on
them is a false positive, so a detector that paints rust on clean paint is penalised.
"""

from __future__ import annotations

import contextlib
import io
import logging
from dataclasses import dataclass, field

import numpy as np

log = logging.getLogger(__name__)

CATEGORY_ID = 1  # rust, as in label_map.pbtxt
# COCOeval.stats positions (bbox): AP@[.5:.95], AP50, AP75, ..., AR@1, AR@10, AR@100.
_STATS = {"AP": 0, "AP50": 1, "AP75": 2, "AR1": 6, "AR10": 7, "AR100": 8}


@dataclass
class ImageResult:
    """Truth and prediction for one image; boxes in pixels (xmin, ymin, xmax, ymax)."""

    name: str
    width: int
    height: int
    true_boxes: np.ndarray  # (n, 4)
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))  # (k, 4)
    scores: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.float32))  # (k,)


def _xywh(boxes: np.ndarray) -> list[list[float]]:
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    return [[x0, y0, x1 - x0, y1 - y0] for x0, y0, x1, y1 in b.tolist()]


def _coco_inputs(results: list[ImageResult]) -> tuple[list, list, list]:
    """COCO images, annotations and detections (one category, image ids from 1 in ``results`` order)."""
    images, annotations, detections = [], [], []
    for image_id, r in enumerate(results, start=1):
        images.append({"id": image_id, "width": int(r.width), "height": int(r.height), "file_name": r.name})
        for box in _xywh(r.true_boxes):
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": CATEGORY_ID,
                    "bbox": box,
                    "area": box[2] * box[3],
                    "iscrowd": 0,
                }
            )
        for box, score in zip(_xywh(r.boxes), np.asarray(r.scores).tolist(), strict=True):
            detections.append({"image_id": image_id, "category_id": CATEGORY_ID, "bbox": box, "score": float(score)})
    return images, annotations, detections


def _evaluated(images: list, annotations: list, detections: list):
    """pycocotools' COCOeval after ``evaluate()`` (per-image matching done), its printing captured."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = {"images": images, "annotations": annotations, "categories": [{"id": CATEGORY_ID, "name": "rust"}]}
        gt.createIndex()
        ev = COCOeval(gt, gt.loadRes(detections), "bbox")
        ev.evaluate()
    return ev


def coco_metrics(results: list[ImageResult]) -> dict:
    """AP, AP50, AP75, AR1/10/100 and the score threshold maximising F1 at IoU 0.5.

    Metrics are None when the set has no true box (COCO AP is undefined there).
    """
    images, annotations, detections = _coco_inputs(results)
    counts = {
        "images": len(results),
        "images_with_boxes": sum(1 for r in results if len(r.true_boxes)),
        "true_boxes": len(annotations),
        "detections": len(detections),
    }
    empty = {name: None for name in _STATS} | {"f1_threshold": None, "f1": None}
    if not annotations:
        log.warning("no true boxes among %d images: COCO AP is undefined", len(results))
        return counts | empty
    if not detections:
        return counts | {name: 0.0 for name in _STATS} | {"f1_threshold": None, "f1": 0.0}

    ev = _evaluated(images, annotations, detections)
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        ev.accumulate()
        ev.summarize()
    log.debug("COCOeval:\n%s", printed.getvalue())
    metrics = {name: float(ev.stats[i]) for name, i in _STATS.items()}
    return counts | metrics | _best_f1(ev)


@dataclass(frozen=True)
class BoxMatches:
    """COCO's matching at IoU 0.5 (all areas, 100 boxes per image), kept per detection: its image,
    score, whether it hit a true box and whether COCO ignores it; and the true boxes per image.
    Matching is per image, so AP50 of any re-weighting of the images (a bootstrap draw) follows
    from these without running COCOeval again (``ap50``)."""

    image: np.ndarray  # (D,) index into the results
    score: np.ndarray
    hit: np.ndarray  # bool
    ignored: np.ndarray  # bool
    true_boxes: np.ndarray  # (images,) boxes COCO does not ignore


def box_matches(results: list[ImageResult]) -> BoxMatches:
    images, annotations, detections = _coco_inputs(results)
    true_boxes = np.array([len(np.asarray(r.true_boxes).reshape(-1, 4)) for r in results], np.float64)
    if not annotations or not detections:
        empty = np.zeros(0)
        return BoxMatches(empty.astype(np.int64), empty, empty.astype(bool), empty.astype(bool), true_boxes)
    ev = _evaluated(images, annotations, detections)
    columns: dict[str, list] = {"image": [], "score": [], "hit": [], "ignored": []}
    max_det, n = ev.params.maxDets[-1], len(results)
    for i, e in enumerate(ev.evalImgs[:n]):  # category 1, area "all": the first n entries, in image order
        if e is None:
            continue
        k = len(e["dtScores"][:max_det])
        columns["image"] += [i] * k
        columns["score"] += list(e["dtScores"][:max_det])
        columns["hit"] += list(e["dtMatches"][0, :max_det] > 0)  # IoU 0.5 is the first threshold
        columns["ignored"] += list(e["dtIgnore"][0, :max_det])
        true_boxes[i] = float(np.count_nonzero(np.asarray(e["gtIgnore"]) == 0))
    image, score, hit, ignored = (np.asarray(columns[c]) for c in ("image", "score", "hit", "ignored"))
    order = np.argsort(-score, kind="mergesort")  # COCO's own order
    return BoxMatches(
        image[order].astype(np.int64), score[order], hit[order].astype(bool), ignored[order].astype(bool), true_boxes
    )


def ap50(matches: BoxMatches, weights: np.ndarray | None = None) -> float | None:
    """COCO AP at IoU 0.5 (101-point interpolated precision) with each image counted ``weights`` times;
    None when the weighted images hold no true box. Equals ``coco_metrics``' AP50 at unit weights."""
    w = np.ones(matches.true_boxes.size) if weights is None else np.asarray(weights, np.float64)
    positives = float(np.dot(w, matches.true_boxes))
    if positives == 0:
        return None
    dw = w[matches.image] * ~matches.ignored
    keep = dw > 0
    if not keep.any():
        return 0.0
    tp = np.cumsum((dw * matches.hit)[keep])
    fp = np.cumsum((dw * ~matches.hit)[keep])
    recall = tp / positives
    precision = np.maximum.accumulate((tp / (tp + fp + np.spacing(1)))[::-1])[::-1]
    at = np.searchsorted(recall, np.linspace(0.0, 1.0, 101), side="left")
    return float(np.where(at < precision.size, precision[np.minimum(at, precision.size - 1)], 0.0).mean())


def _best_f1(ev) -> dict:
    """From COCOeval's own PR curve at IoU 0.5 (all areas, 100 detections): max F1 and its score."""
    precision = ev.eval["precision"][0, :, 0, 0, -1]  # (101 recall points,)
    scores = ev.eval["scores"][0, :, 0, 0, -1]
    recall = ev.params.recThrs
    ok = precision > 0
    if not ok.any():
        return {"f1_threshold": None, "f1": 0.0}
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-9)
    f1 = np.where(ok, f1, -1.0)
    best = int(np.argmax(f1))
    return {
        "f1_threshold": float(scores[best]),
        "f1": float(f1[best]),
        "precision_at_f1": float(precision[best]),
        "recall_at_f1": float(recall[best]),
    }
