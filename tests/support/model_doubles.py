"""Small models that obey the serving contract (``corrosion.models.serving``), for tests and benchmarks.

- ``export_colour_rule_detector``: a deterministic *test double* for tiling geometry. Its one box
  per input is the bounding box of rust-coloured pixels, evaluated in-graph at the resolution
  the pipeline feeds it (a tile resized to the input size), so it sees a small spot in a tile and
  loses it in a downscaled whole image exactly as a real detector would. It is not a detector of
  rust in real photos.
- ``export_colour_rule_classifier`` / ``export_colour_rule_segmenter``: right on generated photos
  (rust-coloured pixels), the known-good side of comparisons; ``everywhere`` makes a wrong segmenter.
- ``export_tiny_classifier``: a seeded random-weight Keras CNN: real SavedModel, meaningless scores.
  Classifiers are exported with their LiteRT copy (``training.export_lite``) when asked (``lite``).
- ``export_mobilenet_classifier``: a MobileNetV2 classifier of the production shape, for speed.
"""

from __future__ import annotations

import tensorflow as tf

from corrosion.models import serving
from training.common.export import classifier_predict_fn, export_model


def rust_colour_mask(images: tf.Tensor) -> tf.Tensor:
    """(N, S, S, 3) 0..255 RGB -> (N, S, S) bool: orange-brown pixels (rust hues, not red paint)."""
    r, g, b = images[..., 0], images[..., 1], images[..., 2]
    return (r - b > 50.0) & (r > 1.4 * g) & (g > 1.15 * b)


def export_colour_rule_detector(
    model_dir: str, input_size: int = 64, min_pixels: int = 2, version: str = "colour-rule-detector-test-double"
) -> str:
    def predict(images: tf.Tensor) -> dict[str, tf.Tensor]:
        mask = rust_colour_mask(images)
        size = tf.cast(tf.shape(images)[1], tf.float32)
        rows = tf.reduce_any(mask, axis=2)
        cols = tf.reduce_any(mask, axis=1)
        ymin = tf.cast(tf.argmax(tf.cast(rows, tf.int32), axis=1), tf.float32)
        ymax = size - tf.cast(tf.argmax(tf.cast(tf.reverse(rows, [1]), tf.int32), axis=1), tf.float32)
        xmin = tf.cast(tf.argmax(tf.cast(cols, tf.int32), axis=1), tf.float32)
        xmax = size - tf.cast(tf.argmax(tf.cast(tf.reverse(cols, [1]), tf.int32), axis=1), tf.float32)
        found = tf.reduce_sum(tf.cast(mask, tf.int32), axis=[1, 2]) >= min_pixels
        boxes = tf.stack([ymin, xmin, ymax, xmax], axis=1) / size
        return {
            "detection_boxes": boxes[:, None, :],
            "detection_scores": tf.where(found, 0.9, 0.0)[:, None],
            "detection_classes": tf.ones_like(boxes[:, :1]),
            "num_detections": tf.cast(found, tf.float32),
        }

    meta = serving.ModelMetadata("detector", version, input_size, 0.5, ("rust",), "colour-rule", "none")
    return export_model(model_dir, predict, tf.Module(), meta)


def export_colour_rule_classifier(
    model_dir: str, input_size: int = 64, version: str = "colour-rule-classifier-test-double"
) -> str:
    """A classifier double that is right on generated photos: rust probability rises with the share
    of rust-coloured pixels (0.5 at 0.2 % of the photo). A known-good model for comparisons."""

    def predict(images: tf.Tensor) -> dict[str, tf.Tensor]:
        share = tf.reduce_mean(tf.cast(rust_colour_mask(images), tf.float32), axis=[1, 2])
        return {serving.CLASSIFIER_OUTPUT: tf.sigmoid(2000.0 * (share - 0.002))}

    meta = serving.ModelMetadata("classifier", version, input_size, 0.5, ("no_rust", "rust"), "colour-rule", "none")
    return export_model(model_dir, predict, tf.Module(), meta)


def export_colour_rule_segmenter(
    model_dir: str, input_size: int = 96, version: str = "colour-rule-segmenter-test-double", everywhere: bool = False
) -> str:
    """A segmenter double that is right on generated photos: a pixel's rust probability is 1 where
    it is rust-coloured (a stride-1 map). ``everywhere``: a wrong one that calls every pixel rust."""

    def predict(images: tf.Tensor) -> dict[str, tf.Tensor]:
        found = tf.cast(rust_colour_mask(images), tf.float32)
        return {serving.SEGMENTER_OUTPUT: tf.fill(tf.shape(found), 0.9) if everywhere else found}

    extra = {"output": serving.SEGMENTER_OUTPUT, "stride": 1, "region_merge_radius": 0.02, "min_region_area": 0.002}
    meta = serving.ModelMetadata("segmenter", version, input_size, 0.5, ("rust",), "colour-rule", "none", extra=extra)
    return export_model(model_dir, predict, tf.Module(), meta)


def tiny_classifier(input_size: int = 32, seed: int = 0):
    """A seeded random-weight Keras CNN of the classifier's input and output shapes."""
    import keras

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((input_size, input_size, 3))
    x = keras.layers.Rescaling(1 / 255.0)(inputs)
    x = keras.layers.Conv2D(4, 3, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(1, activation="sigmoid")(x)
    return keras.Model(inputs, outputs)


def export_tiny_classifier(
    model_dir: str,
    input_size: int = 32,
    threshold: float = 0.5,
    seed: int = 0,
    version: str = "tiny-classifier-test",
    lite: bool = False,
) -> str:
    model = tiny_classifier(input_size, seed)
    meta = serving.ModelMetadata("classifier", version, input_size, threshold, ("no_rust", "rust"), "tiny-cnn", "none")
    return _export_classifier(model_dir, model, meta, lite)


def mobilenet_classifier(input_size: int = 224, weights: str | None = None):
    """The production classifier's shape (MobileNetV2 + pooled logistic head) as a Keras model."""
    import keras

    from corrosion.imaging import preprocess

    inputs = keras.Input((input_size, input_size, 3))
    x = preprocess.normalisation_layer("MobileNetV2")(inputs)
    base = keras.applications.MobileNetV2(input_shape=(input_size, input_size, 3), include_top=False, weights=weights)
    x = keras.layers.GlobalAveragePooling2D()(base(x))
    outputs = keras.layers.Dense(1, activation="sigmoid")(x)
    return keras.Model(inputs, outputs)


def export_keras_classifier(
    model_dir: str, model, input_size: int, threshold: float = 0.5, version: str = "bench", lite: bool = False
) -> str:
    meta = serving.ModelMetadata(
        "classifier", version, input_size, threshold, ("no_rust", "rust"), "MobileNetV2", "none"
    )
    return _export_classifier(model_dir, model, meta, lite)


def _export_classifier(model_dir: str, model, meta: serving.ModelMetadata, lite: bool) -> str:
    """SavedModel, and with ``lite`` its checked LiteRT copy, as ``training.train_classifier`` exports."""
    export_model(model_dir, classifier_predict_fn(model), model, meta)
    if lite:
        from training.classifier.config import ClassifierConfig
        from training.common import lite as lite_copy

        cfg = ClassifierConfig()
        lite_copy.export_classifier_lite(
            model_dir, model, meta.input_size, cfg.lite_max_abs_diff, cfg.lite_check_images
        )
    return model_dir
