"""Rusted-area figures from boxes: union area and the ASTM D610 rust grade.

ASTM D610 grades a coated steel surface 10 (no rust, <= 0.01 % rusted) down to 0 (> 50 %). We
estimate the rusted fraction as the area of the union of the detector's boxes over the image
area. A box encloses a rust patch together with the sound surface around and between its pits,
so this over-estimates the rusted area (typically by 1.5-3x for blotchy patches) and the grade
errs towards worse, the safe side for an inspection. It also counts whatever else the photo
shows (background, sky) as surface, so it is a per-photo figure, not a per-structure one.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence

import numpy as np

# (upper bound of rusted percentage, grade): ASTM D610-08 (2019) Table 1.
D610_SCALE: tuple[tuple[float, int], ...] = (
    (0.01, 10),
    (0.03, 9),
    (0.1, 8),
    (0.3, 7),
    (1.0, 6),
    (3.0, 5),
    (10.0, 4),
    (16.0, 3),
    (33.0, 2),
    (50.0, 1),
)


def astm_d610_grade(rusted_fraction: float) -> int:
    """ASTM D610 grade (10..0) for a rusted-area fraction in [0, 1]; bounds are inclusive."""
    if not 0.0 <= rusted_fraction <= 1.0 or np.isnan(rusted_fraction):
        raise ValueError(f"rusted fraction must be in [0, 1], got {rusted_fraction}")
    percent = rusted_fraction * 100.0
    index = bisect.bisect_left([upper for upper, _ in D610_SCALE], percent)
    return D610_SCALE[index][1] if index < len(D610_SCALE) else 0


def union_area(boxes: Sequence[Sequence[float]] | np.ndarray) -> float:
    """Exact area covered by the union of (xmin, ymin, xmax, ymax) boxes.

    Coordinate compression: the box edges cut the plane into cells that are either wholly
    covered or not, so overlapping boxes are never counted twice.
    """
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    boxes = boxes[(boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])]
    if not len(boxes):
        return 0.0
    xs = np.unique(boxes[:, [0, 2]])
    ys = np.unique(boxes[:, [1, 3]])
    covered = np.zeros((len(ys) - 1, len(xs) - 1), bool)
    for x0, y0, x1, y1 in boxes:
        i0, i1 = np.searchsorted(xs, [x0, x1])
        j0, j1 = np.searchsorted(ys, [y0, y1])
        covered[j0:j1, i0:i1] = True
    cell_areas = np.outer(np.diff(ys), np.diff(xs))
    return float(cell_areas[covered].sum())


def rust_area_fraction(boxes: Sequence[Sequence[float]] | np.ndarray, width: int, height: int) -> float:
    """Union of the boxes (clipped to the image) over the image area."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4).copy()
    boxes[:, [0, 2]] = np.clip(boxes[:, [0, 2]], 0, width)
    boxes[:, [1, 3]] = np.clip(boxes[:, [1, 3]], 0, height)
    return min(1.0, union_area(boxes) / float(width * height))
