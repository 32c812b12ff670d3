"""Classifiers compared: recall at each model's own operating point, ROC-AUC, precision.

Both models score the same photos through ``training.evaluate`` (each at its shipped threshold);
photos are resampled one by one (the classifier's predictions file names photos, not groups).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

import numpy as np

from corrosion.core import io_utils
from corrosion.models import serving
from training.classifier import metrics as cm
from training.comparison.bootstrap import Figure

FIGURES = (
    Figure("recall", "recall at the operating point", deciding=True),
    Figure("roc_auc", "ROC-AUC", deciding=True),
    Figure("precision", "precision at the operating point"),
)


@dataclass(frozen=True)
class Scored:
    version: str
    threshold: float
    labels: np.ndarray  # 1 = rust
    scores: np.ndarray

    @property
    def photos(self) -> int:
        return int(self.labels.size)

    def figures(self, weights: np.ndarray) -> dict[str, float | None]:
        """The figures on the photos drawn ``weights`` times each (None where a draw has one class)."""
        pick = np.repeat(np.arange(self.labels.size), weights.astype(np.int64))
        y = self.labels[pick]
        if y.min() == y.max():
            return {f.key: None for f in FIGURES}
        s = cm.summarise(y, self.scores[pick], self.threshold)
        return {f.key: s[f.key] for f in FIGURES}


def same_photos(baseline: Scored, candidate: Scored) -> None:
    if baseline.labels.tolist() != candidate.labels.tolist():
        raise ValueError("the two models were not scored on the same photos")


def scored(model_dir: str, data: str, split: str, output: str) -> Scored:
    """The model's scores on ``split`` of ``data`` (a data set, or a raw folder's photos), via training.evaluate."""
    from training import evaluate

    meta = serving.read_metadata(model_dir)
    result = evaluate.evaluate(model_dir, data, output, (split,))
    names = [s for s in result["splits"] if s == split] or list(result["splits"])
    rows = list(csv.DictReader(io.StringIO(io_utils.read_text(io_utils.join(output, f"predictions_{names[0]}.csv")))))
    labels = np.array([r["label"] == "rust" for r in rows], np.int64)
    return Scored(
        meta.version, float(result["threshold"]), labels, np.array([float(r["rust_probability"]) for r in rows])
    )
