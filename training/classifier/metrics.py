"""Binary classification metrics from labels and scores, exact (no threshold binning).

scikit-learn is not a dependency of this project, and these few curves are short in NumPy. Conventions
follow scikit-learn's: ROC-AUC by the trapezoid rule over distinct thresholds (ties handled), PR-AUC as
average precision (step-wise, no interpolation), predictions positive when ``score >= threshold``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Curves:
    """ROC and precision-recall points, one per distinct score (descending thresholds)."""

    thresholds: np.ndarray
    tpr: np.ndarray  # = recall
    fpr: np.ndarray
    precision: np.ndarray


def _check(labels, scores) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(labels).astype(np.int64).ravel()
    p = np.asarray(scores, dtype=np.float64).ravel()
    if y.shape != p.shape:
        raise ValueError(f"{y.size} labels but {p.size} scores")
    if y.size == 0:
        raise ValueError("no examples to evaluate")
    if not np.isin(y, (0, 1)).all():
        raise ValueError(f"labels must be 0/1, got {sorted(set(y.tolist()))}")
    if not np.isfinite(p).all():
        raise ValueError("scores contain NaN or infinity")
    return y, p


def curves(labels, scores) -> Curves:
    """Cumulative counts at every distinct threshold, highest first."""
    y, p = _check(labels, scores)
    order = np.argsort(-p, kind="mergesort")
    y, p = y[order], p[order]
    last_of_tie = np.r_[np.nonzero(np.diff(p))[0], y.size - 1]
    tp = np.cumsum(y)[last_of_tie]
    fp = (last_of_tie + 1) - tp
    n_pos, n_neg = int(y.sum()), int(y.size - y.sum())
    tpr = tp / n_pos if n_pos else np.full(tp.shape, np.nan)
    fpr = fp / n_neg if n_neg else np.full(fp.shape, np.nan)
    precision = tp / (tp + fp)
    return Curves(thresholds=p[last_of_tie], tpr=tpr, fpr=fpr, precision=precision)


def roc_auc(labels, scores) -> float | None:
    """Area under the ROC curve; None when only one class is present (it is undefined)."""
    y, _ = _check(labels, scores)
    if y.min() == y.max():
        return None
    c = curves(labels, scores)
    return float(np.trapezoid(np.r_[0.0, c.tpr], np.r_[0.0, c.fpr]))


def average_precision(labels, scores) -> float | None:
    """PR-AUC as average precision: sum over thresholds of precision x recall gained; None without positives."""
    y, _ = _check(labels, scores)
    if y.sum() == 0:
        return None
    c = curves(labels, scores)
    recall_gain = np.diff(np.r_[0.0, c.tpr])
    return float(np.sum(recall_gain * c.precision))


def threshold_for_recall(labels, scores, target_recall: float) -> float:
    """The highest threshold whose recall reaches ``target_recall``.

    The highest such threshold gives the fewest false alarms, i.e. the best precision, among
    thresholds meeting the recall target; chosen on validation and then applied unchanged to test.
    """
    if not 0.0 < target_recall <= 1.0:
        raise ValueError(f"target recall must be in (0, 1], got {target_recall}")
    y, _ = _check(labels, scores)
    if y.sum() == 0:
        raise ValueError("cannot choose a threshold for a recall target without positive examples")
    c = curves(labels, scores)
    reached = np.nonzero(c.tpr >= target_recall - 1e-12)[0]
    return float(c.thresholds[reached[0]])


def threshold_for_recall_per_source(
    labels, scores, sources, target_recall: float, min_rust: int
) -> tuple[float, str | None]:
    """The highest threshold reaching ``target_recall`` pooled *and* on every source with at least
    ``min_rust`` rust photos; with it, the source that set it (None: the pooled target did).

    A pooled target is met mostly on the sources that dominate validation; a source whose photos
    are harder (web photos beside close-ups of rusted plates) can sit well below it at the same
    threshold. Sources with fewer rust photos are too few to set a threshold on their own.
    """
    threshold, binding = threshold_for_recall(labels, scores, target_recall), None
    y, p = _check(labels, scores)
    names = np.asarray(sources)
    for source in sorted(set(names.tolist())):
        pick = names == source
        if min_rust > 0 and int(y[pick].sum()) >= min_rust:
            own = threshold_for_recall(y[pick], p[pick], target_recall)
            if own < threshold:
                threshold, binding = own, source
    return threshold, binding


def confusion(labels, scores, threshold: float) -> dict[str, int]:
    y, p = _check(labels, scores)
    pred = p >= threshold
    return {
        "tn": int(np.sum(~pred & (y == 0))),
        "fp": int(np.sum(pred & (y == 0))),
        "fn": int(np.sum(~pred & (y == 1))),
        "tp": int(np.sum(pred & (y == 1))),
    }


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def summarise(labels, scores, threshold: float, class_names: tuple[str, str] = ("no_rust", "rust")) -> dict:
    """Every figure the model card reports for one split at one threshold (JSON-ready)."""
    y, p = _check(labels, scores)
    cm = confusion(y, p, threshold)
    precision = _ratio(cm["tp"], cm["tp"] + cm["fp"])
    recall = _ratio(cm["tp"], cm["tp"] + cm["fn"])
    if precision is None or recall is None:
        f1 = None
    else:
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "n": int(y.size),
        "n_positive": int(y.sum()),
        "n_negative": int(y.size - y.sum()),
        "threshold": float(threshold),
        "accuracy": (cm["tp"] + cm["tn"]) / y.size,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "specificity": _ratio(cm["tn"], cm["tn"] + cm["fp"]),
        "roc_auc": roc_auc(y, p),
        "pr_auc": average_precision(y, p),
        "confusion_matrix": {
            "labels": list(class_names),
            "rows_true_cols_predicted": [[cm["tn"], cm["fp"]], [cm["fn"], cm["tp"]]],
            **cm,
        },
    }


def best_recall_at_precision(labels, scores, min_precision: float) -> dict | None:
    """The operating point with the highest recall whose precision is at least ``min_precision``."""
    c = curves(labels, scores)
    ok = np.nonzero(c.precision >= min_precision)[0]
    if ok.size == 0:
        return None
    i = ok[np.argmax(c.tpr[ok])]
    return {"threshold": float(c.thresholds[i]), "recall": float(c.tpr[i]), "precision": float(c.precision[i])}


def per_source(labels, scores, sources, threshold: float) -> dict[str, dict]:
    """Recall, precision and false-alarm rate at ``threshold`` for each source folder.

    A threshold chosen for recall 0.95 on the pooled validation split can land well below it on one
    source's photos; the pooled figure hides that.
    """
    y, p = _check(labels, scores)
    names = np.asarray(sources)
    out = {}
    for source in sorted(set(names.tolist())):
        pick = names == source
        cm = confusion(y[pick], p[pick], threshold)
        out[source] = {
            "images": int(pick.sum()),
            "rust": cm["tp"] + cm["fn"],
            "no_rust": cm["tn"] + cm["fp"],
            "recall": _ratio(cm["tp"], cm["tp"] + cm["fn"]),
            "precision": _ratio(cm["tp"], cm["tp"] + cm["fp"]),
            "false_alarm_rate": _ratio(cm["fp"], cm["tn"] + cm["fp"]),
        }
    return out


def false_alarms(scores, sources, threshold: float) -> dict:
    """Clean-only images (crops away from every rust region): how many score as rust, pooled and per source."""
    p = np.asarray(scores, dtype=np.float64).reshape(-1)
    names = np.asarray(sources)
    flagged = p >= threshold

    def count(pick: np.ndarray) -> dict:
        n = int(pick.sum())
        return {
            "images": n,
            "flagged": int(flagged[pick].sum()),
            "false_alarm_rate": _ratio(int(flagged[pick].sum()), n),
        }

    return count(np.ones(p.size, bool)) | {"per_source": {s: count(names == s) for s in sorted(set(names.tolist()))}}
