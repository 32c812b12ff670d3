"""Anchor assignment: ground-truth rust boxes -> per-anchor class labels and box deltas.

Rust boxes are fuzzy (one annotator draws one box round a streaked area, another three), so the
rule is deliberately tolerant: IoU >= ``positive_iou`` is rust, IoU < ``negative_iou`` is
background, the band between is ignored (neither rewarded nor punished), and every box also
claims its single best anchor so that thin or odd-shaped boxes are never left without a positive.
An image without boxes makes every anchor background: that is how negatives train.
"""

from __future__ import annotations

from dataclasses import dataclass

import tensorflow as tf
from keras.utils import bounding_boxes

POSITIVE = 1.0
BACKGROUND = 0.0
IGNORE = -1.0
BOX_FORMAT = "yxyx"  # normalised (ymin, xmin, ymax, xmax), the schema's and serving's order


@dataclass(frozen=True)
class AssignmentConfig:
    positive_iou: float = 0.5
    negative_iou: float = 0.4
    min_box_size: float = 0.01  # boxes thinner than this (fraction of the side) after augmentation are dropped

    def __post_init__(self) -> None:
        if not 0.0 < self.negative_iou <= self.positive_iou <= 1.0:
            raise ValueError(
                f"need 0 < negative_iou <= positive_iou <= 1, got {self.negative_iou}, {self.positive_iou}"
            )


def valid_boxes(boxes: tf.Tensor, labels: tf.Tensor, min_size: float) -> tf.Tensor:
    """Mask (..., N) of real boxes: a positive label (padding is -1) and not squeezed to a sliver."""
    h = boxes[..., 2] - boxes[..., 0]
    w = boxes[..., 3] - boxes[..., 1]
    return (labels > 0) & (h >= min_size) & (w >= min_size)


def assign(
    anchors: tf.Tensor,
    boxes: tf.Tensor,
    labels: tf.Tensor,
    config: AssignmentConfig,
    variance: tuple[float, ...],
) -> tuple[tf.Tensor, tf.Tensor]:
    """Batched targets.

    anchors (A, 4); boxes (B, N, 4) and labels (B, N) padded with label -1.
    Returns class targets (B, A) in {1, 0, -1 = ignore} and box deltas (B, A, 4) (meaningful
    where the class target is 1).
    """
    anchors = tf.convert_to_tensor(anchors, tf.float32)
    boxes = tf.cast(boxes, tf.float32)
    valid = valid_boxes(boxes, tf.cast(labels, tf.float32), config.min_box_size)  # (B, N)
    iou = bounding_boxes.compute_iou(anchors, boxes, bounding_box_format=BOX_FORMAT)  # (B, A, N)
    iou = tf.where(valid[:, None, :], iou, -1.0)
    n_boxes = tf.shape(boxes)[1]

    best_iou = tf.reduce_max(iou, axis=2)  # (B, A); -1 when the image has no valid box
    best_box = tf.argmax(iou, axis=2, output_type=tf.int32)
    # Each valid box also claims its best anchor (ties beyond the first are rare and harmless).
    best_anchor = tf.argmax(iou, axis=1, output_type=tf.int32)  # (B, N)
    claims = tf.one_hot(best_anchor, tf.shape(anchors)[0], axis=1, dtype=tf.float32)  # (B, A, N)
    claims *= tf.cast(valid & (tf.reduce_max(iou, axis=1) > 0.0), tf.float32)[:, None, :]
    claimed = tf.reduce_max(claims, axis=2) > 0
    best_box = tf.where(claimed, tf.argmax(claims, axis=2, output_type=tf.int32), best_box)

    cls = tf.where(
        best_iou >= config.positive_iou, POSITIVE, tf.where(best_iou < config.negative_iou, BACKGROUND, IGNORE)
    )
    cls = tf.where(claimed, POSITIVE, cls)

    matched = tf.gather(boxes, tf.minimum(best_box, tf.maximum(n_boxes - 1, 0)), batch_dims=1)  # (B, A, 4)
    deltas = bounding_boxes.encode_box_to_deltas(
        anchors, matched, anchor_format=BOX_FORMAT, box_format=BOX_FORMAT, variance=list(variance)
    )
    deltas = tf.where(cls[..., None] == POSITIVE, deltas, 0.0)
    return cls, deltas
