"""In-graph post-processing: deltas -> boxes, scores, NMS -> the TF Object Detection API outputs.

This is what the exported SavedModel runs after the network, and what evaluation during
training runs too, so validation figures are those of the exported model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import tensorflow as tf
from keras.utils import bounding_boxes

from corrosion.models import serving
from training.detector.model import BOX_OUTPUT, CLS_OUTPUT, IMAGE_OUTPUT
from training.detector.targets import BOX_FORMAT


@dataclass(frozen=True)
class PostprocessConfig:
    max_detections: int = 100
    pre_nms_top_k: int = 1000  # best-scoring anchors kept before NMS (speed)
    nms_iou: float = 0.5
    min_score: float = 0.01  # boxes below this never leave the model; the user's threshold is in metadata
    # Box score = anchor score^(1 - w) * image score^w, w this weight (0: anchors alone; models
    # without an image head ignore it). A clean photo of red paint may light up a few anchors, but
    # the whole-image view says "no rust" and pulls them down. Used while training (best-epoch
    # choice); training then picks the final weight on validation among choose_image_score_weight.
    image_score_weight: float = 0.5
    choose_image_score_weight: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75)

    def __post_init__(self) -> None:
        for w in (self.image_score_weight, *self.choose_image_score_weight):
            if not 0.0 <= w <= 1.0:
                raise ValueError(f"image score weights must be in [0, 1], got {w}")


def decode(
    outputs: dict[str, tf.Tensor], anchors: tf.Tensor, variance, config: PostprocessConfig
) -> dict[str, tf.Tensor]:
    """Network outputs (B, A, 4) deltas and (B, A) logits -> detection_* tensors, boxes normalised yxyx."""
    boxes = bounding_boxes.decode_deltas_to_boxes(
        anchors, outputs[BOX_OUTPUT], anchor_format=BOX_FORMAT, box_format=BOX_FORMAT, variance=list(variance)
    )
    scores = tf.sigmoid(tf.cast(outputs[CLS_OUTPUT], tf.float32))
    w = config.image_score_weight
    if w > 0.0 and IMAGE_OUTPUT in outputs:
        image = tf.sigmoid(tf.cast(outputs[IMAGE_OUTPUT], tf.float32))  # (B, 1)
        scores = tf.pow(scores, 1.0 - w) * tf.pow(image, w)
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


def make_decode_signature(model, anchors, variance, config: PostprocessConfig):
    """``decode`` as a concrete function of the network's named raw outputs: the SavedModel's
    ``serving_decode``, which runs after the network's LiteRT copy (``corrosion.models.lite_runtime``)."""
    anchors = tf.constant(anchors, tf.float32)
    specs = {
        name: tf.TensorSpec([None, *tensor.shape[1:]], tf.float32, name=name) for name, tensor in model.output.items()
    }
    names = sorted(specs)

    def run(*tensors: tf.Tensor) -> dict[str, tf.Tensor]:
        return decode(dict(zip(names, tensors, strict=True)), anchors, variance, config)

    return tf.function(run, input_signature=[specs[n] for n in names]).get_concrete_function()
