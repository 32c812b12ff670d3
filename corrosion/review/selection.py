"""Which photos of a night are worth an inspector's minute: a priority per result row, then the top N.

Every reason adds to the priority (each in 0..1), and the queue names the reasons it used:
- ``near_threshold``: the classifier's probability within 0.5 of its threshold, 1 at the threshold;
- ``disagreement``: the classifier says rust and the region model found none, or the reverse;
- ``weak_regions``: regions found with low scores (1 - their mean score);
- ``severe``: ASTM D610 grade 4 or worse (more than 3 % rusted): a wrong call costs most here.
Ties are broken by the photo's sha256, so the same night always gives the same queue.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

SEVERE_GRADE = 4  # ASTM D610 grade 4: 3-10 % of the surface rusted


@dataclass(frozen=True)
class Candidate:
    row: Mapping[str, Any]  # a result row (corrosion.inference.results columns)
    priority: float
    reasons: tuple[str, ...]

    @property
    def boxes(self) -> list[list[float]]:
        """[[xmin, ymin, xmax, ymax, score], ...] in the photo's (EXIF-oriented) pixels."""
        return json.loads(self.row["boxes"]) if self.row.get("boxes") else []


def reasons(row: Mapping[str, Any], threshold: float) -> dict[str, float]:
    """Each reason's weight for one row (only those above zero)."""
    p, boxes = float(row["rust_probability"]), json.loads(row["boxes"]) if row.get("boxes") else []
    out = {"near_threshold": max(0.0, 1.0 - abs(p - threshold) / 0.5)}
    if row.get("num_boxes") is not None:  # a region model ran
        out["disagreement"] = float(bool(row["is_rust"]) != (int(row["num_boxes"]) > 0))
        if boxes:
            out["weak_regions"] = 1.0 - sum(b[4] for b in boxes) / len(boxes)
    grade = row.get("rust_grade")
    out["severe"] = float(grade is not None and int(grade) <= SEVERE_GRADE)
    return {k: round(v, 6) for k, v in out.items() if v > 0}


def select(rows: Iterable[Mapping[str, Any]], threshold: float, budget: int) -> list[Candidate]:
    """The ``budget`` rows of highest priority (ties by sha256), most urgent first."""
    if budget < 0:
        raise ValueError(f"budget must be at least 0, got {budget}")
    scored = []
    for row in rows:
        weights = reasons(row, threshold)
        scored.append(Candidate(row, round(sum(weights.values()), 6), tuple(sorted(weights))))
    scored.sort(key=lambda c: (-c.priority, c.row["image_sha256"]))
    return scored[:budget]
