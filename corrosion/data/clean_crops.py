"""Clean-steel crops: squares cut from region-annotated rust photos away from every annotated region.

Nearly every region-annotated photo shows rust, so a classifier trained on whole photos can learn
"inspection-looking photo -> rust" and still score well on its own split. A square of the same
photo that touches no annotated rust shows the same steel, light and camera without rust: an
honest ``no_rust`` example. Only photos whose every rust pixel was marked (masks, polygons) are
cut; a box-annotated photo's unboxed parts may hold rust no one boxed. Annotated regions (mask
pixels and boxes) are grown by a margin first, so a region's fuzzy edge stays out of the crop.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import ndimage

GRID = 256  # the search runs on the occupancy map shrunk to about this long side (block maximum)


def occupied(mask: np.ndarray, boxes: Sequence[tuple[float, float, float, float]]) -> np.ndarray:
    """(H, W) bool: rust pixels of ``mask`` and every box (xmin, ymin, xmax, ymax in pixels)."""
    out = mask > 0
    height, width = out.shape
    for x0, y0, x1, y1 in boxes:
        out[max(0, math.floor(y0)) : min(height, math.ceil(y1)), max(0, math.floor(x0)) : min(width, math.ceil(x1))] = (
            True
        )
    return out


def _shrunk(busy: np.ndarray) -> tuple[np.ndarray, int]:
    """Block maximum of ``busy`` by a factor k (a cell is busy if any of its pixels is), and k."""
    k = max(1, math.ceil(max(busy.shape) / GRID))
    height, width = (math.ceil(n / k) * k for n in busy.shape)
    padded = np.zeros((height, width), bool)
    padded[: busy.shape[0], : busy.shape[1]] = busy
    return padded.reshape(height // k, k, width // k, k).any(axis=(1, 3)), k


def clean_window(busy: np.ndarray, sides: Sequence[float], margin: float) -> tuple[int, int, int, int] | None:
    """The square (xmin, ymin, xmax, ymax) in pixels that keeps ``margin`` (a fraction of the long
    side) from every busy pixel, of the largest side in ``sides`` (fractions of the short side)
    that fits anywhere; among those, the one whose centre is farthest from any busy pixel.
    None when no such square exists."""
    small, k = _shrunk(busy)
    grow = round(margin * max(busy.shape) / k)
    if grow > 0:
        small = ndimage.maximum_filter(small, size=2 * grow + 1)
    if small.all():
        return None
    rows, cols = small.shape
    integral = np.pad(small.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    distance = ndimage.distance_transform_edt(~small)
    short = min(busy.shape) // k  # the photo's short side in cells, padding excluded
    for side in sorted(sides, reverse=True):
        s = int(side * short)
        if s < 1 or s > min(rows, cols):
            continue
        top = np.arange(0, min(rows, busy.shape[0] // k) - s + 1)
        left = np.arange(0, min(cols, busy.shape[1] // k) - s + 1)
        y, x = np.meshgrid(top, left, indexing="ij")
        inside = integral[y + s, x + s] - integral[y, x + s] - integral[y + s, x] + integral[y, x]
        free = np.argwhere(inside == 0)
        if len(free):
            centres = distance[top[free[:, 0]] + s // 2, left[free[:, 1]] + s // 2]
            row, col = free[int(np.argmax(centres))]
            y0, x0 = int(top[row]) * k, int(left[col]) * k
            return x0, y0, x0 + s * k, y0 + s * k
    return None
