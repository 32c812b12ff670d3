"""Tiling a large photo for the detector, and merging the tiles' boxes back into one image.

A 12-50 MP survey photo squeezed into a 320 px detector input shrinks a 40 px rust spot to one
pixel; cutting the full-resolution image into overlapping tiles keeps it visible. Boxes found
in each tile are mapped to the original pixel grid and merged across tiles, because a patch in
an overlap is seen twice and a patch cut by a tile edge is seen whole by the neighbouring tile.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Tile:
    """A window of the image in original pixels: [x0, x1) x [y0, y1)."""

    x0: int
    y0: int
    x1: int
    y1: int

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    @property
    def height(self) -> int:
        return self.y1 - self.y0


def _starts(length: int, tile: int, overlap: int) -> list[int]:
    """Evenly spaced window starts covering [0, length) with at least ``overlap`` shared pixels."""
    if length <= tile:
        return [0]
    stride = tile - overlap
    count = math.ceil((length - tile) / stride) + 1
    last = length - tile
    return [round(i * last / (count - 1)) for i in range(count)]


def tile_grid(width: int, height: int, tile_size: int, overlap: int) -> list[Tile]:
    """Square windows of ``tile_size`` (clipped to the image) covering it, neighbours sharing
    at least ``overlap`` pixels; all windows have the same shape, so they batch together."""
    if tile_size <= 0:
        raise ValueError(f"tile_size must be positive, got {tile_size}")
    if not 0 <= overlap < tile_size:
        raise ValueError(f"overlap must be in [0, tile_size), got {overlap} for tile_size {tile_size}")
    tw, th = min(tile_size, width), min(tile_size, height)
    return [
        Tile(x, y, x + tw, y + th)
        for y in _starts(height, tile_size, overlap)
        for x in _starts(width, tile_size, overlap)
    ]


def tile_boxes_to_image(boxes: np.ndarray, tile: Tile, image_width: int, image_height: int) -> np.ndarray:
    """Normalised (ymin, xmin, ymax, xmax) boxes in ``tile`` -> pixel (xmin, ymin, xmax, ymax) in
    the image, clipped to it. Resizing a tile to the model input does not change normalised
    coordinates, so this is exact whatever the model's input size."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    out = np.stack(
        [
            tile.x0 + boxes[:, 1] * tile.width,
            tile.y0 + boxes[:, 0] * tile.height,
            tile.x0 + boxes[:, 3] * tile.width,
            tile.y0 + boxes[:, 2] * tile.height,
        ],
        axis=1,
    )
    out[:, [0, 2]] = np.clip(out[:, [0, 2]], 0, image_width)
    out[:, [1, 3]] = np.clip(out[:, [1, 3]], 0, image_height)
    return out


def merge_boxes(
    boxes: np.ndarray,
    scores: np.ndarray,
    iou_threshold: float = 0.5,
    containment_threshold: float = 0.8,
    max_boxes: int = 100,
) -> tuple[np.ndarray, np.ndarray]:
    """Greedy cross-tile NMS on pixel (xmin, ymin, xmax, ymax) boxes.

    Besides the usual IoU test, a box counts as the same patch when ``containment_threshold`` of
    its area lies inside the other: that is the truncated view of a patch cut by a tile edge, which
    plain IoU keeps because the two boxes differ in size. The kept box then grows to cover both
    (keeping the higher score), so a confident fragment never replaces the whole patch.
    Returns kept boxes and scores, best first.
    """
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    scores = np.asarray(scores, np.float64).reshape(-1)
    valid = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    boxes, scores = boxes[valid], scores[valid]
    order = np.argsort(-scores, kind="stable")
    boxes, scores = boxes[order].copy(), scores[order]
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    alive = np.ones(len(boxes), bool)
    keep: list[int] = []
    for i in range(len(boxes)):
        if not alive[i]:
            continue
        alive[i] = False
        keep.append(i)
        changed = True
        while changed:  # a grown box may now cover more fragments
            changed = False
            rest = np.nonzero(alive)[0]
            if not len(rest):
                break
            b = boxes[i]
            area_i = (b[2] - b[0]) * (b[3] - b[1])
            iw = np.clip(np.minimum(b[2], boxes[rest, 2]) - np.maximum(b[0], boxes[rest, 0]), 0, None)
            ih = np.clip(np.minimum(b[3], boxes[rest, 3]) - np.maximum(b[1], boxes[rest, 1]), 0, None)
            inter = iw * ih
            iou = inter / (area_i + areas[rest] - inter)
            rest_inside = inter / areas[rest] >= containment_threshold
            kept_inside = inter / area_i >= containment_threshold
            same = (iou >= iou_threshold) | rest_inside | kept_inside
            alive[rest[same]] = False
            grow = rest[kept_inside & ~rest_inside]
            if len(grow):
                boxes[i, :2] = np.minimum(boxes[i, :2], boxes[grow, :2].min(axis=0))
                boxes[i, 2:] = np.maximum(boxes[i, 2:], boxes[grow, 2:].max(axis=0))
                changed = True
        if len(keep) >= max_boxes:
            break
    return boxes[keep], scores[keep]


def stitch_maps(maps: Sequence[np.ndarray], views: Sequence[Tile], width: int, height: int) -> np.ndarray:
    """Per-view probability maps (any grid) -> one (height, width) map of the decoded image.

    Each view's map is upsampled bilinearly onto its own pixels; where views overlap (tile margins,
    the whole-image pass) their probabilities are averaged, so a patch cut by a tile edge is seen
    whole by its neighbour and by the whole-image view.
    """
    from PIL import Image

    total = np.zeros((height, width), np.float32)
    count = np.zeros((height, width), np.float32)
    for m, v in zip(maps, views, strict=True):
        up = Image.fromarray(np.asarray(m, np.float32)).resize((v.width, v.height), Image.Resampling.BILINEAR)
        total[v.y0 : v.y1, v.x0 : v.x1] += np.asarray(up, np.float32)
        count[v.y0 : v.y1, v.x0 : v.x1] += 1.0
    return total / np.maximum(count, 1.0)


def quiet_tiles(coarse: np.ndarray, tiles: Sequence[Tile], width: int, height: int, below: float) -> list[bool]:
    """For each tile: does the whole-image pass's map (``coarse``, any grid stretched over the
    ``width`` x ``height`` image) stay below ``below`` everywhere the tile covers?

    The footprint is widened by one map cell each way, since bilinear upsampling spreads a cell's
    value into its neighbours' pixels: a tile called quiet is quiet in the stitched map too.
    """
    coarse = np.asarray(coarse, np.float32)
    mh, mw = coarse.shape[:2]
    out = []
    for t in tiles:
        c0, c1 = max(0, math.floor(t.x0 * mw / width) - 1), min(mw, math.ceil(t.x1 * mw / width) + 1)
        r0, r1 = max(0, math.floor(t.y0 * mh / height) - 1), min(mh, math.ceil(t.y1 * mh / height) + 1)
        out.append(bool(coarse[r0:r1, c0:c1].max() < below))
    return out
