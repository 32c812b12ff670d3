"""PNG plots for training runs and evaluations, classifier and detector (matplotlib, Agg backend: no display needed).

Each function returns PNG bytes, so the caller writes them locally or to ``gs://`` alike.
"""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from training.classifier import metrics as cm  # noqa: E402


def _png(fig, dpi: int = 110) -> bytes:
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return out.getvalue()


def training_curves(phases: list[tuple[str, dict[str, list[float]]]]) -> bytes:
    """Loss and ROC-AUC per epoch, train and validation, phases side by side on one epoch axis."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    start = 0
    for name, history in phases:
        n = len(history.get("loss", []))
        if n == 0:
            continue
        epochs = np.arange(start + 1, start + n + 1)
        for ax, key in zip(axes, ("loss", "auc"), strict=True):
            if key in history:
                ax.plot(epochs, history[key], marker=".", label=f"{name} train")
            if f"val_{key}" in history:
                ax.plot(epochs, history[f"val_{key}"], marker=".", linestyle="--", label=f"{name} validation")
        if start:
            for ax in axes:
                ax.axvline(start + 0.5, color="grey", linewidth=0.8)
        start += n
    for ax, title in zip(axes, ("binary cross-entropy", "ROC-AUC"), strict=True):
        ax.set_xlabel("epoch")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return _png(fig)


DETECTOR_LOSSES = (
    ("loss", "-"),
    ("val_loss", "--"),
    ("cls_loss", "-"),
    ("val_cls_loss", "--"),
    ("box_loss", "-"),
    ("val_box_loss", "--"),
    ("image_loss", "-"),
)


def detector_curves(history: dict[str, list], validation: list[dict]) -> bytes:
    """The detector's losses per epoch (train solid, validation dashed) and its validation COCO AP."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    epochs = np.arange(1, len(history.get("loss", [])) + 1)
    for key, style in DETECTOR_LOSSES:
        if key in history:
            axes[0].plot(epochs, history[key], style, marker=".", label=key)
    axes[0].set_title("loss (focal + smooth L1 + image cross-entropy)")
    if validation:
        at = [v["epoch"] for v in validation]
        axes[1].plot(at, [v["AP50"] for v in validation], marker="o", label="validation AP50")
        axes[1].plot(at, [v["AP"] for v in validation], marker="o", label="validation AP")
    axes[1].set_title("COCO AP on validation")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return _png(fig, dpi=100)


def roc(curves_by_name: dict[str, tuple[np.ndarray, np.ndarray]]) -> bytes:
    """ROC curves; values are (labels, scores)."""
    fig, ax = plt.subplots(figsize=(5, 5))
    for name, (labels, scores) in curves_by_name.items():
        auc = cm.roc_auc(labels, scores)
        if auc is None:
            continue
        c = cm.curves(labels, scores)
        ax.plot(np.r_[0.0, c.fpr], np.r_[0.0, c.tpr], label=f"{name} (AUC {auc:.3f})")
    ax.plot([0, 1], [0, 1], color="grey", linewidth=0.8, linestyle=":")
    ax.set(xlabel="false positive rate", ylabel="true positive rate (recall)", title="ROC", xlim=(0, 1), ylim=(0, 1.01))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return _png(fig)


def precision_recall(
    curves_by_name: dict[str, tuple[np.ndarray, np.ndarray]], thresholds: dict[str, float] | float | None = None
) -> bytes:
    """Precision-recall curves, each with its operating point (its own threshold, or one for all) marked."""
    fig, ax = plt.subplots(figsize=(5, 5))
    for name, (labels, scores) in curves_by_name.items():
        ap = cm.average_precision(labels, scores)
        if ap is None:
            continue
        c = cm.curves(labels, scores)
        threshold = thresholds.get(name) if isinstance(thresholds, dict) else thresholds
        label = f"{name} (AP {ap:.3f}" + (f", dot: threshold {threshold:.3f})" if threshold is not None else ")")
        (line,) = ax.step(np.r_[0.0, c.tpr], np.r_[1.0, c.precision], where="pre", label=label)
        if threshold is not None:
            s = cm.summarise(labels, scores, threshold)
            if s["precision"] is not None and s["recall"] is not None:
                ax.plot(s["recall"], s["precision"], "o", color=line.get_color())
    ax.set(xlabel="recall", ylabel="precision", title="Precision-recall")
    ax.set(xlim=(0, 1.01), ylim=(0, 1.01))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")
    return _png(fig)


def confusion_matrix(summary: dict, title: str) -> bytes:
    """The 2x2 matrix of ``classification_metrics.summarise`` output, counts and row fractions."""
    matrix = np.asarray(summary["confusion_matrix"]["rows_true_cols_predicted"], dtype=float)
    names = summary["confusion_matrix"]["labels"]
    fig, ax = plt.subplots(figsize=(4.2, 3.8))
    rows = matrix.sum(axis=1, keepdims=True)
    fraction = np.divide(matrix, rows, out=np.zeros_like(matrix), where=rows > 0)
    ax.imshow(fraction, cmap="Blues", vmin=0, vmax=1)
    for i in range(2):
        for j in range(2):
            ax.text(
                j,
                i,
                f"{int(matrix[i, j])}\n({fraction[i, j]:.0%})",
                ha="center",
                va="center",
                color="black" if fraction[i, j] < 0.6 else "white",
            )
    ax.set_xticks([0, 1], [f"pred {n}" for n in names])
    ax.set_yticks([0, 1], [f"true {n}" for n in names])
    ax.set_title(f"{title}\nthreshold {summary['threshold']:.3f}", fontsize=10)
    return _png(fig)
