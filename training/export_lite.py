"""Write an exported model's LiteRT copy (``corrosion.models.lite_runtime``) beside its SavedModel, checked first.

The training jobs write it on every export; ``python -m training.export_lite MODEL_DIR`` adds it to
a model exported before (rebuilt from its metadata, config and checkpoint). Copies are float32,
never quantised, and written only after a check on synthetic steel photos with and without rust:
- classifier: the LiteRT file's scores against the SavedModel's pixels signature;
- detector: the LiteRT network's raw outputs against the Keras network's (the decode after it is
  the SavedModel's own ``serving_decode``, the same function its pixels signature ends with).
Nothing is written when they differ by more than the tolerance, so results never depend on the runtime.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging

import numpy as np
import tensorflow as tf

from corrosion.core import config, io_utils
from corrosion.models import lite_runtime, serving
from corrosion.testing import synthetic

log = logging.getLogger(__name__)

# Converting a tf.function of a model (``from_concrete_functions``) or the SavedModel's signature
# gives a file that scores NaN here (TF 2.21); ``from_keras_model`` gives the right one.


def convert_classifier(model, input_size: int) -> bytes:
    """A Keras classifier as LiteRT bytes, with the contract's input and output names."""
    import keras

    inputs = keras.Input((input_size, input_size, 3), name=serving.PIXELS_INPUT)
    probability = keras.layers.Reshape((), name=serving.CLASSIFIER_OUTPUT)(model(inputs, training=False))
    wrapper = keras.Model(inputs, {serving.CLASSIFIER_OUTPUT: probability})
    return tf.lite.TFLiteConverter.from_keras_model(wrapper).convert()


def check_pixels(input_size: int, count: int, seed: int = 0) -> np.ndarray:
    """Synthetic photos at the model input: painted and bare steel, half with rust patches."""
    rng = np.random.default_rng(seed)
    backgrounds = synthetic.BACKGROUNDS
    renders = [
        synthetic.render(rng, input_size, input_size, i % 2 * (1 + i % 3), backgrounds[i % len(backgrounds)])[0]
        for i in range(count)
    ]
    return np.stack(renders).astype(np.float32)


def _require(diff: float, max_abs_diff: float, what: str, model_dir: str, images: int) -> None:
    if not diff <= max_abs_diff:  # also catches NaN
        raise RuntimeError(
            f"the LiteRT copy of {model_dir} differs from {what} by {diff:.2e} (allowed {max_abs_diff:.0e}) on "
            f"{images} check images; nothing written. The pipeline can run the SavedModel "
            "(classifier_runtime / detector_runtime: savedmodel in configs/inference.yaml)"
        )


def _write(model_dir: str, kind: str, lite_bytes: bytes, images: int, diff: float) -> dict:
    path = lite_runtime.lite_path(model_dir, kind)
    io_utils.write_bytes(path, lite_bytes)
    check = {"file": lite_runtime.LITE_FILES[kind], "images": images, "max_abs_difference": diff}
    meta = serving.read_metadata(model_dir)
    serving.write_metadata(model_dir, dataclasses.replace(meta, extra={**meta.extra, "lite": check}))
    log.info("wrote %s (%.1f MB), max difference %.1e on %d check images", path, len(lite_bytes) / 1e6, diff, images)
    return check


def export_classifier_lite(model_dir: str, model, input_size: int, max_abs_diff: float, check_images: int) -> dict:
    """Convert ``model`` (the Keras model inside ``model_dir``'s SavedModel), check, write; returns the check."""
    lite_bytes = convert_classifier(model, input_size)
    pixels = check_pixels(input_size, check_images)
    saved = tf.saved_model.load(model_dir).signatures[serving.PIXELS_SIGNATURE]
    expected = saved(**{serving.PIXELS_INPUT: tf.constant(pixels)})[serving.CLASSIFIER_OUTPUT].numpy().reshape(-1)
    got = lite_runtime.LiteClassifier(lite_bytes, threads=None, source="converted classifier")(pixels)
    diff = float(np.max(np.abs(got - expected)))
    _require(diff, max_abs_diff, "its SavedModel", model_dir, len(pixels))
    return _write(model_dir, "classifier", lite_bytes, len(pixels), diff)


def export_detector_lite(model_dir: str, model, input_size: int, max_abs_diff: float, check_images: int) -> dict:
    """The detector network ``model`` (raw outputs by name) as ``detector.tflite`` in ``model_dir``,
    whose SavedModel must have the decode signature (``training.detector_decode.make_decode_signature``)."""
    lite_bytes = tf.lite.TFLiteConverter.from_keras_model(model).convert()
    pixels = check_pixels(input_size, check_images)
    expected = {k: v.numpy() for k, v in model(tf.constant(pixels), training=False).items()}
    got = lite_runtime.LiteModel(lite_bytes, None, "converted detector", (serving.PIXELS_INPUT,), tuple(expected))(
        **{serving.PIXELS_INPUT: pixels}
    )
    diff = max(float(np.max(np.abs(got[k] - v))) for k, v in expected.items())
    _require(diff, max_abs_diff, "its Keras network", model_dir, len(pixels))
    if serving.DECODE_SIGNATURE not in tf.saved_model.load(model_dir).signatures:
        raise RuntimeError(
            f"{model_dir} has no {serving.DECODE_SIGNATURE} signature to decode the LiteRT network's outputs"
        )
    return _write(model_dir, "detector", lite_bytes, len(pixels), diff)


def add_detector_lite(model_dir: str, detector_config_path: str, max_abs_diff: float, check_images: int) -> dict:
    """The network rebuilt from ``detector_config_path`` and the checkpoint, checked to reproduce the
    SavedModel's detections; re-exported with ``serving_decode`` if it predates it; then its copy."""
    from corrosion.models.weights import WeightSource
    from training.detector_decode import make_decode_signature, make_predict
    from training.detector_model import anchor_boxes, build_detector
    from training.export import export_model, restore_exported_weights
    from training.train_detector import load_detector_config

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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Add the LiteRT copy to an exported classifier or detector.")
    parser.add_argument("model_dir", help="exported model directory (training.train_classifier / train_detector)")
    parser.add_argument("--classifier_config", default=str(config.config_path("classifier.yaml")))
    parser.add_argument(
        "--detector_config",
        default=str(config.config_path("detector.yaml")),
        help="the config the detector was trained with (its architecture; only for detectors exported without serving_decode)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    meta = serving.read_metadata(args.model_dir)
    if meta.kind == "classifier":
        from training.classifier_model import ClassifierConfig, load_exported_classifier

        cfg = config.load_config(ClassifierConfig, args.classifier_config)
        parts = load_exported_classifier(args.model_dir)
        export_classifier_lite(
            args.model_dir, parts.inference, meta.input_size, cfg.lite_max_abs_diff, cfg.lite_check_images
        )
        return 0
    from training.train_detector import load_detector_config

    dcfg = load_detector_config(args.detector_config)
    add_detector_lite(args.model_dir, args.detector_config, dcfg.lite_max_abs_diff, dcfg.lite_check_images)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
