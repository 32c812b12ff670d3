"""Write an exported model's LiteRT copy (``corrosion.models.lite_runtime``) beside its SavedModel, checked first.

The training jobs write it on every export; ``python -m training.export_lite MODEL_DIR`` adds it to
a model exported before (rebuilt from its metadata, config and checkpoint). Copies are float32
(the segmenter's int8 copy is ``training.segmenter.quantised``, checked on its figures), written
only after a check on synthetic steel photos with and without rust:
- classifier: the LiteRT file's scores against the SavedModel's pixels signature;
- detector: the LiteRT network's raw outputs against the Keras network's (the decode after it is
  the SavedModel's own ``serving_decode``, the same function its pixels signature ends with);
- segmenter: the LiteRT file's rust maps against the SavedModel's pixels signature, on the
  synthetic photos and on photos of the data set it trained on.
Nothing is written when they differ by more than the tolerance, so results never depend on the runtime.
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import tensorflow as tf

from corrosion.core import io_utils
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
    whose SavedModel must have the decode signature (``training.detector.decode.make_decode_signature``)."""
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


def convert_segmenter(network, input_size: int, representative: np.ndarray | None = None) -> bytes:
    """The Keras segmenter as LiteRT bytes with the contract's names: float32, or with ``representative``
    photos (0..255 RGB at the input) full-integer int8 inside, float32 pixels in and maps out."""
    import keras

    inputs = keras.Input((input_size, input_size, 3), name=serving.PIXELS_INPUT)
    maps = keras.layers.Identity(name=serving.SEGMENTER_OUTPUT)(network(inputs, training=False))
    converter = tf.lite.TFLiteConverter.from_keras_model(keras.Model(inputs, {serving.SEGMENTER_OUTPUT: maps}))
    if representative is not None:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        photos = np.asarray(representative, np.float32)
        converter.representative_dataset = lambda: ([photo[None]] for photo in photos)
    return converter.convert()


def export_segmenter_lite(model_dir: str, network, input_size: int, max_abs_diff: float, check_images: int,
                          photos: np.ndarray | None = None) -> dict:  # fmt: skip
    """The Keras segmenter ``network`` (0..255 RGB -> rust maps, as exported in ``model_dir``) as
    ``segmenter.tflite``, checked against the SavedModel's maps on synthetic ``check_images`` and
    ``photos`` (real ones at the model input); returns the check."""
    lite_bytes = convert_segmenter(network, input_size)
    pixels = check_pixels(input_size, check_images)
    if photos is not None and len(photos):
        pixels = np.concatenate([pixels, np.asarray(photos, np.float32)])
    saved = tf.saved_model.load(model_dir).signatures[serving.PIXELS_SIGNATURE]
    expected = saved(**{serving.PIXELS_INPUT: tf.constant(pixels)})[serving.SEGMENTER_OUTPUT].numpy()
    got = lite_runtime.LiteSegmenter(lite_bytes, threads=None, source="converted segmenter")(pixels)
    diff = float(np.max(np.abs(got - expected)))
    _require(diff, max_abs_diff, "its SavedModel", model_dir, len(pixels))
    return _write(model_dir, "segmenter", lite_bytes, len(pixels), diff)
