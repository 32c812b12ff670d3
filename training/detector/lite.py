"""The LiteRT copy of a detector exported before its job wrote one: the network rebuilt from its
config and checkpoint, checked to reproduce the SavedModel, then converted and checked again."""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

from corrosion.models import serving
from corrosion.models.weights import WeightSource
from training.common.export import export_model, restore_exported_weights
from training.common.lite import check_pixels, export_detector_lite
from training.detector.config import load_detector_config
from training.detector.decode import make_decode_signature, make_predict
from training.detector.model import anchor_boxes, build_detector


def add_detector_lite(model_dir: str, detector_config_path: str, max_abs_diff: float, check_images: int) -> dict:
    """The network rebuilt from ``detector_config_path`` and the checkpoint, checked to reproduce the
    SavedModel's detections; re-exported with ``serving_decode`` if it predates it; then its copy."""
    meta = serving.read_metadata(model_dir)
    cfg = load_detector_config(detector_config_path)
    m = cfg.model
    if m.input_size != meta.input_size or m.backbone != meta.backbone:
        raise ValueError(
            f"{detector_config_path} describes a {m.backbone} at {m.input_size} px, {model_dir} holds a "
            f"{meta.backbone} at {meta.input_size} px: give the config it was trained with (--detector_config)"
        )
    model, _ = build_detector(m, WeightSource("none", None, f"detector {meta.version}"))
    restore_exported_weights(
        model,
        model_dir,
        f"the network described by {detector_config_path} does not fit; give the config it was trained with "
        "(--detector_config). Nothing changed",
    )
    keys = ("max_detections", "nms_iou", "min_score", "image_score_weight")
    post = dataclasses.replace(cfg.postprocess, **{k: meta.extra[k] for k in keys if k in meta.extra})
    anchors = anchor_boxes(m)
    predict = make_predict(model, anchors, m.box_variance, post)
    pixels = check_pixels(meta.input_size, check_images, seed=1)
    loaded = tf.saved_model.load(model_dir)
    before = loaded.signatures[serving.PIXELS_SIGNATURE](**{serving.PIXELS_INPUT: tf.constant(pixels)})
    after = predict(tf.constant(pixels))
    diff = max(float(np.max(np.abs(before[k].numpy() - after[k].numpy()))) for k in serving.DETECTOR_OUTPUTS)
    if not diff <= max_abs_diff:
        raise ValueError(
            f"rebuilt from {detector_config_path}, {model_dir} gives other detections (difference {diff:.2e}); "
            "give the config it was trained with (--detector_config). Nothing changed"
        )
    if serving.DECODE_SIGNATURE not in loaded.signatures:
        decode = make_decode_signature(model, anchors, m.box_variance, post)
        export_model(model_dir, predict, model, meta, {serving.DECODE_SIGNATURE: decode})
    return export_detector_lite(model_dir, model, meta.input_size, max_abs_diff, check_images)
