"""Detector losses: sigmoid focal loss on anchors and smooth-L1 on box deltas of positive anchors.

Both are summed over the batch and divided by the batch's number of positive anchors (at least 1),
the RetinaNet normalisation, so a batch of negatives still trains the classifier without its loss
being diluted or inflated.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from training.detector.targets import IGNORE, POSITIVE


def _num_positives(cls_targets: tf.Tensor) -> tf.Tensor:
    return tf.maximum(tf.reduce_sum(tf.cast(cls_targets == POSITIVE, tf.float32)), 1.0)


class FocalLoss(keras.losses.Loss):
    """y_true (B, A) in {1, 0, -1 = ignore}; y_pred (B, A) logits."""

    def __init__(self, alpha: float = 0.25, gamma: float = 2.0, name: str = "focal") -> None:
        super().__init__(name=name, reduction="sum")
        self.alpha = alpha
        self.gamma = gamma

    def call(self, y_true, y_pred):
        y_true = tf.cast(y_true, tf.float32)
        per_anchor = keras.losses.binary_focal_crossentropy(
            tf.maximum(y_true, 0.0)[..., None],
            tf.cast(y_pred, tf.float32)[..., None],
            apply_class_balancing=True,
            alpha=self.alpha,
            gamma=self.gamma,
            from_logits=True,
        )  # (B, A)
        per_anchor = tf.where(y_true == IGNORE, 0.0, per_anchor)
        return tf.reduce_sum(per_anchor, axis=1) / _num_positives(y_true)

    def get_config(self):
        return {"alpha": self.alpha, "gamma": self.gamma, "name": self.name}


class BoxLoss(keras.losses.Loss):
    """y_true (B, A, 5): deltas and the class target; y_pred (B, A, 4) deltas. Huber on positives."""

    def __init__(self, delta: float = 1.0, name: str = "box") -> None:
        super().__init__(name=name, reduction="sum")
        self.delta = delta

    def call(self, y_true, y_pred):
        y_true = tf.cast(y_true, tf.float32)
        cls = y_true[..., 4]
        # keras's Huber averages the four coordinates; times 4 gives the usual smooth-L1 sum.
        huber = 4.0 * keras.losses.huber(y_true[..., :4], tf.cast(y_pred, tf.float32), delta=self.delta)
        per_anchor = huber * tf.cast(cls == POSITIVE, tf.float32)
        return tf.reduce_sum(per_anchor, axis=1) / _num_positives(cls)

    def get_config(self):
        return {"delta": self.delta, "name": self.name}
