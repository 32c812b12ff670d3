"""In-graph post-processing: deltas -> boxes, scores, NMS -> the TF Object Detection API outputs.

This is what the exported SavedModel runs after the network, and what evaluation during
training runs too, so validation figures are those of the exported model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import tensorflow as tf
from keras.utils import bounding_boxes

from corrosion import serving
from training.detector_model import BOX_OUTPUT, CLS_OUTPUT
from training.detector_targets import BOX_FORMAT


@dataclass(frozen=True)
class PostprocessConfig:
    max_detections: int = 100
    pre_nms_top_k: int = 1000  # best-scoring anchors kept before NMS (speed)
    nms_iou: float = 0.5
    min_score: float = 0.01  # boxes below this never leave the model; the user's threshold is in metadata


def decode(
    outputs: dict[str, tf.Tensor], anchors: tf.Tensor, variance, config: PostprocessConfig
) -> dict[str, tf.Tensor]:
    """Network outputs (B, A, 4) deltas and (B, A) logits -> detection_* tensors, boxes normalised yxyx."""
    boxes = bounding_boxes.decode_deltas_to_boxes(
        anchors, outputs[BOX_OUTPUT], anchor_format=BOX_FORMAT, box_format=BOX_FORMAT, variance=list(variance)
    )
    scores = tf.sigmoid(tf.cast(outputs[CLS_OUTPUT], tf.float32))
    k = min(config.pre_nms_top_k, int(anchors.shape[0]))
    top_scores, top_idx = tf.math.top_k(scores, k=k)
    top_boxes = tf.gather(boxes, top_idx, batch_dims=1)
    nms = tf.image.combined_non_max_suppression(
        top_boxes[:, :, None, :],
        top_scores[:, :, None],
        max_output_size_per_class=config.max_detections,
        max_total_size=config.max_detections,
        iou_threshold=config.nms_iou,
        score_threshold=config.min_score,
        pad_per_class=False,
        clip_boxes=True,
    )
    names = serving.DETECTOR_OUTPUTS
    return {
        names[0]: nms.nmsed_boxes,
        names[1]: nms.nmsed_scores,
        names[2]: nms.nmsed_classes + 1.0,  # 1 = rust, as in label_map.pbtxt
        names[3]: tf.cast(nms.valid_detections, tf.float32),
    }


def make_predict(model, anchors, variance, config: PostprocessConfig) -> Callable[[tf.Tensor], dict[str, tf.Tensor]]:
    """float32 (N, S, S, 3) 0..255 RGB -> detection outputs; what export_model wraps."""
    anchors = tf.constant(anchors, tf.float32)

    def predict(images: tf.Tensor) -> dict[str, tf.Tensor]:
        return decode(model(images, training=False), anchors, variance, config)

    return predict
