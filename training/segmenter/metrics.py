"""How well rust is found pixel by pixel and measured: per photo, then per source and pooled (pandas).

Scored at the model's input size S x S (true masks squashed as the photo is, predictions upsampled
bilinearly from the stride-8 grid): rust-pixel precision / recall / IoU / F1 over region photos and
no_rust photos (every rust pixel on a clean photo is a false positive), the rusted percentage's
absolute error and ASTM D610 grade agreement (exact, within one) on region photos, and COCO AP of
the boxes made from the predicted regions against the sources' boxes (one per polygon: many small
pieces of one rusty surface) and, as ``region_AP50``, against the true mask's regions made the
same way as the predicted ones (region photos; box photos keep their boxes), on every photo with
boxes or none.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import tensorflow as tf

from corrosion.data import regions
from corrosion.inference.grading import astm_d610_grade
from training.detector.metrics import ImageResult, coco_metrics
from training.segmenter.data import BOXES, NEGATIVE, REGIONS, SplitData

THRESHOLDS = np.round(np.arange(0.05, 0.951, 0.05), 2)
POOLED = "pooled"
# The true mask's regions are made with fixed settings, never the model's own (which are tuned on
# validation), so that tuning cannot move the yardstick.
TRUE_REGION_MERGE, TRUE_REGION_MIN_AREA = 0.02, 0.002


def upsample(probabilities: np.ndarray, size: int) -> np.ndarray:
    """(N, M, M) cell probabilities -> (N, S, S), bilinear."""
    return tf.image.resize(probabilities[..., None], (size, size), method="bilinear").numpy()[..., 0]


def pixel_counts(prob: np.ndarray, truth: np.ndarray, thresholds=THRESHOLDS) -> np.ndarray:
    """(len(thresholds), 3) true-positive, false-positive, false-negative pixels of one photo."""
    rust = truth > 0
    out = np.zeros((len(thresholds), 3), np.int64)
    for i, t in enumerate(thresholds):
        pred = prob >= t
        out[i] = ((pred & rust).sum(), (pred & ~rust).sum(), (~pred & rust).sum())
    return out


def choose_threshold(probabilities: np.ndarray, data: SplitData, size: int) -> tuple[float, float]:
    """(threshold, pixel F1) maximising pooled rust-pixel F1 on this split's region and no_rust photos."""
    totals = np.zeros((len(THRESHOLDS), 3), np.int64)
    for prob, kind, truth in zip(upsample(probabilities, size), data.kinds, data.truth, strict=True):
        if kind in (REGIONS, NEGATIVE):
            totals += pixel_counts(prob, truth if truth is not None else np.zeros_like(prob, np.uint8))
    tp, fp, fn = totals.T
    f1 = 2 * tp / np.maximum(2 * tp + fp + fn, 1)
    best = int(np.argmax(f1))
    return float(THRESHOLDS[best]), float(f1[best])


def photo_table(probabilities: np.ndarray, data: SplitData, size: int, threshold: float, merge: float, min_area: float):
    """One row per photo (pandas): source, kind, pixel counts, rusted shares and grades; plus the
    per-photo box results for COCO."""
    rows, boxes = [], []
    true_radius, true_min_pixels = regions.region_settings(size, size, TRUE_REGION_MERGE, TRUE_REGION_MIN_AREA)
    for prob, kind, truth, source, name, true_boxes in zip(
        upsample(probabilities, size), data.kinds, data.truth, data.sources, data.names, data.boxes, strict=True
    ):
        pred = prob >= threshold
        row = {"source": source, "kind": kind, "name": name, "tp": 0, "fp": int(pred.sum()), "fn": 0}
        row["pred_share"] = float(pred.mean())
        if truth is not None:
            tp, fp, fn = pixel_counts(prob, truth, (threshold,))[0]
            row |= {"tp": int(tp), "fp": int(fp), "fn": int(fn), "true_share": float((truth > 0).mean())}
        rows.append(row)
        result = _box_result(name, prob, threshold, true_boxes, size, merge, min_area)
        if truth is not None:  # also against the true mask's own regions, made as the prediction's are
            regions_truth = regions.boxes_from_mask(truth, true_radius, true_min_pixels)
            boxes.append(
                (result, dataclasses.replace(result, true_boxes=np.asarray(regions_truth, np.float64).reshape(-1, 4)))
            )
        else:
            boxes.append((result, result))
    return pd.DataFrame(rows), boxes


def _box_result(name, prob, threshold, true_boxes, size, merge, min_area) -> ImageResult:
    found = regions.scored_regions(prob, threshold, merge, min_area)
    scores = [score for *_, score in found]
    found = [box for *box, _ in found]
    t = np.asarray(true_boxes, np.float64).reshape(-1, 4) * size
    truth = np.stack([t[:, 1], t[:, 0], t[:, 3], t[:, 2]], axis=-1)  # (ymin, xmin, ymax, xmax) -> x/y corners
    return ImageResult(
        name, size, size, truth, np.asarray(found, np.float32).reshape(-1, 4), np.asarray(scores, np.float32)
    )


def summarise(table: pd.DataFrame, boxes: list[ImageResult]) -> dict[str, dict]:
    """Figures per source and pooled: pixel P / R / IoU / F1, rusted-% error, D610 agreement, COCO AP."""
    out = {}
    groups = [(POOLED, table.index)] + [(s, idx) for s, idx in table.groupby("source").groups.items()]
    for name, index in groups:
        part = table.loc[index]
        out[name] = _pixel_figures(part[part.kind.isin([REGIONS, NEGATIVE])]) | _share_figures(
            part[part.kind == REGIONS]
        )
        located = [boxes[i] for i in index if table.kind[i] in (REGIONS, BOXES, NEGATIVE)]
        coco = coco_metrics([source for source, _ in located])
        out[name] |= {k: coco.get(k) for k in ("AP50", "AP", "AR100", "true_boxes")}
        out[name]["region_AP50"] = coco_metrics([own for _, own in located]).get("AP50")
        out[name]["photos"] = part.kind.value_counts().to_dict()
    return out


def _pixel_figures(part: pd.DataFrame) -> dict:
    tp, fp, fn = (int(part[c].sum()) for c in ("tp", "fp", "fn"))
    if tp + fn == 0:
        return {"pixel_precision": None, "pixel_recall": None, "pixel_iou": None, "pixel_f1": None}
    return {
        "pixel_precision": tp / max(tp + fp, 1),
        "pixel_recall": tp / (tp + fn),
        "pixel_iou": tp / (tp + fp + fn),
        "pixel_f1": 2 * tp / (2 * tp + fp + fn),
    }


def _share_figures(part: pd.DataFrame) -> dict:
    if part.empty:
        return {"rusted_pct_mae": None, "rusted_pct_bias": None, "d610_exact": None, "d610_within_1": None,
                "region_photos": 0}  # fmt: skip
    true_grade = part.true_share.map(astm_d610_grade)
    pred_grade = part.pred_share.map(astm_d610_grade)
    return {
        "rusted_pct_mae": float((part.pred_share - part.true_share).abs().mean() * 100),
        # over (+) or under (-) on average: a bias a calibration could remove, unlike the error's spread
        "rusted_pct_bias": float((part.pred_share - part.true_share).mean() * 100),
        "d610_exact": float((true_grade == pred_grade).mean()),
        "d610_within_1": float(((true_grade - pred_grade).abs() <= 1).mean()),
        "region_photos": len(part),
    }
