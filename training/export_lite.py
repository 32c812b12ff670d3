"""Write a classifier's LiteRT copy (``corrosion.lite_runtime``) beside its SavedModel, checked first.

``training.train_classifier`` writes it on every export; ``python -m training.export_lite MODEL_DIR``
adds it to a classifier exported before (rebuilt from its metadata and checkpoint). The copy is
float32, never quantised: the check renders synthetic steel photos with and without rust, scores
them with the SavedModel's pixels signature and with the LiteRT copy, and writes nothing when they
differ by more than the tolerance, so the pipeline's scores never depend on the runtime.
"""

from __future__ import annotations

import argparse
import logging

import numpy as np
import tensorflow as tf

from corrosion import config, io_utils, lite_runtime, serving, synthetic
from training.classifier_model import ClassifierConfig, load_exported_classifier

log = logging.getLogger(__name__)


def convert(model, input_size: int) -> bytes:
    """A Keras classifier as LiteRT flatbuffer bytes, with the contract's input and output names.

    Through ``from_keras_model``: converting a ``tf.function`` of the same model
    (``from_concrete_functions``, or the SavedModel's signature) gives a file that scores NaN here.
    """
    import keras

    inputs = keras.Input((input_size, input_size, 3), name=serving.PIXELS_INPUT)
    probability = keras.layers.Reshape((), name=serving.CLASSIFIER_OUTPUT)(model(inputs, training=False))
    wrapper = keras.Model(inputs, {serving.CLASSIFIER_OUTPUT: probability})
    return tf.lite.TFLiteConverter.from_keras_model(wrapper).convert()


def check_pixels(input_size: int, count: int, seed: int = 0) -> np.ndarray:
    """Synthetic photos at the model input: painted and bare steel, half with rust patches."""
    rng = np.random.default_rng(seed)
    renders = [
        synthetic.render(
            rng, input_size, input_size, i % 2 * (1 + i % 3), synthetic.BACKGROUNDS[i % len(synthetic.BACKGROUNDS)]
        )[0]
        for i in range(count)
    ]
    return np.stack(renders).astype(np.float32)


def export_classifier_lite(model_dir: str, model, input_size: int, max_abs_diff: float, check_images: int) -> dict:
    """Convert ``model`` (the Keras model inside ``model_dir``'s SavedModel), check, write; returns the check."""
    lite_bytes = convert(model, input_size)
    pixels = check_pixels(input_size, check_images)
    saved = tf.saved_model.load(model_dir).signatures[serving.PIXELS_SIGNATURE]
    expected = saved(**{serving.PIXELS_INPUT: tf.constant(pixels)})[serving.CLASSIFIER_OUTPUT].numpy().reshape(-1)
    got = lite_runtime.LiteClassifier(lite_bytes, threads=None, source="converted classifier")(pixels)
    diff = float(np.max(np.abs(got - expected)))
    if not diff <= max_abs_diff:  # also catches NaN
        raise RuntimeError(
            f"the LiteRT copy of {model_dir} differs from its SavedModel by {diff:.2e} (allowed {max_abs_diff:.0e}) "
            f"on {len(pixels)} check images; nothing written. The pipeline can run the SavedModel "
            "(classifier_runtime: savedmodel in configs/inference.yaml)"
        )
    path = lite_runtime.lite_path(model_dir)
    io_utils.write_bytes(path, lite_bytes)
    check = {"file": serving.CLASSIFIER_LITE_FILE, "images": len(pixels), "max_abs_difference": diff}
    meta = serving.read_metadata(model_dir)
    serving.write_metadata(
        model_dir, serving.ModelMetadata(**{**meta.__dict__, "extra": {**meta.extra, "lite": check}})
    )
    log.info(
        "wrote %s (%.1f MB): scores on %d check images match the SavedModel (max diff %.1e)",
        path,
        len(lite_bytes) / 1e6,
        len(pixels),
        diff,
    )
    return check


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Add the LiteRT copy to an exported classifier (training.train_classifier)."
    )
    parser.add_argument("model_dir", help="exported classifier directory, local or gs://")
    parser.add_argument(
        "--config", default=str(config.config_path("classifier.yaml")), help="classifier YAML: the check's settings"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    cfg = config.load_config(ClassifierConfig, args.config)
    meta = serving.read_metadata(args.model_dir)
    parts = load_exported_classifier(args.model_dir)
    export_classifier_lite(
        args.model_dir, parts.inference, meta.input_size, cfg.lite_max_abs_diff, cfg.lite_check_images
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
