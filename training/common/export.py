"""Export any model as a SavedModel with the two signatures of ``corrosion.models.serving``.

Both the classifier and the detector go through ``export_model``, so decoding and resizing in the
serving graph are always ``corrosion.imaging.preprocess`` — the very functions training uses.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import tensorflow as tf

from corrosion.core import io_utils
from corrosion.imaging import preprocess
from corrosion.models import lite_runtime, serving

log = logging.getLogger(__name__)


def classifier_predict_fn(model) -> Callable[[tf.Tensor], dict[str, tf.Tensor]]:
    """The classifier's serving function: a Keras model of (N, 1) sigmoid outputs -> ``rust_probability`` [N]."""

    def predict(images: tf.Tensor) -> dict[str, tf.Tensor]:
        return {serving.CLASSIFIER_OUTPUT: tf.reshape(model(images, training=False), [-1])}

    return predict


def restore_exported_weights(model, model_dir: str, advice: str) -> None:
    """Read the weights of an ``export_model`` SavedModel into ``model``, a Keras model rebuilt with
    the same architecture; ValueError naming ``model_dir``, the cause and ``advice`` when it does not fit."""
    checkpoint = io_utils.join(model_dir, "variables", "variables")
    try:
        status = tf.train.Checkpoint(model=model).read(checkpoint)
        status.expect_partial()  # the serving module's own objects (signatures) have no Keras counterpart
        status.assert_existing_objects_matched()
    except (AssertionError, ValueError, tf.errors.OpError) as exc:
        raise ValueError(f"cannot restore the weights of {model_dir} ({exc}): {advice}") from exc


class _ServingModule(tf.Module):
    def __init__(self, predict: Callable[[tf.Tensor], dict[str, tf.Tensor]], input_size: int, trackable) -> None:
        super().__init__()
        self._predict = predict
        self._size = input_size
        self.model = trackable  # tracked so its variables are saved

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=serving.BYTES_INPUT)])
    def serve_bytes(self, image_bytes: tf.Tensor) -> dict[str, tf.Tensor]:
        return self._predict(preprocess.decode_batch(image_bytes, self._size))

    def serve_pixels(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
        return self._predict(tf.cast(images, tf.float32))


def export_model(
    model_dir: str,
    predict: Callable[[tf.Tensor], dict[str, tf.Tensor]],
    trackable: tf.Module,
    metadata: serving.ModelMetadata,
    extra_signatures: dict[str, tf.types.experimental.ConcreteFunction] | None = None,
) -> str:
    """Write ``model_dir`` (SavedModel + metadata.json).

    ``predict`` maps float32 (N, S, S, 3) RGB 0..255 to the output dict; ``trackable`` owns the
    variables it uses (usually the Keras model). ``extra_signatures``: e.g. the detector's decode.
    """
    for kind in lite_runtime.LITE_FILES:
        # a LiteRT copy of the model this export replaces must never be run in its name
        if io_utils.remove_if_exists(lite_runtime.lite_path(model_dir, kind)):
            log.info("removed the %s LiteRT copy of the model exported to %s before", kind, model_dir)
    module = _ServingModule(predict, metadata.input_size, trackable)
    size = metadata.input_size
    pixels_fn = tf.function(
        module.serve_pixels,
        input_signature=[tf.TensorSpec([None, size, size, 3], tf.float32, name=serving.PIXELS_INPUT)],
    )
    signatures = {
        serving.BYTES_SIGNATURE: module.serve_bytes.get_concrete_function(),
        serving.PIXELS_SIGNATURE: pixels_fn.get_concrete_function(),
        **(extra_signatures or {}),
    }
    tf.saved_model.save(module, model_dir, signatures=signatures)
    serving.write_metadata(model_dir, metadata)
    log.info("exported %s %s to %s", metadata.kind, metadata.version, model_dir)
    return model_dir
