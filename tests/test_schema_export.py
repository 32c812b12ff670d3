import numpy as np
import tensorflow as tf
from support.datasets import synthetic_records, write_dataset

from corrosion.data import layout, schema
from corrosion.imaging import preprocess
from corrosion.models import serving
from training.common.export import export_model


def test_record_round_trip_python_and_graph(tmp_path):
    record = synthetic_records(1, 0, size=(200, 100), seed=2)[0]
    again = schema.from_example(schema.serialize(record))
    assert (
        again.sha256 == record.sha256 and again.image_class == "rust" and again.box_labels == (1,) * len(record.boxes)
    )
    for a, b in zip(again.boxes, record.boxes, strict=True):
        np.testing.assert_allclose([a.xmin, a.ymin, a.xmax, a.ymax], [b.xmin, b.ymin, b.xmax, b.ymax], atol=1e-3)
    parsed = schema.parse_tf(tf.constant(schema.serialize(record)))
    b = record.boxes[0]
    np.testing.assert_allclose(
        parsed["boxes"][0].numpy(), [b.ymin / 100, b.xmin / 200, b.ymax / 100, b.xmax / 200], atol=1e-6
    )
    assert int(parsed["label"]) == 1


def test_write_dataset_has_all_splits(tmp_path):
    out = write_dataset(tmp_path, {"train": (2, 1), "test": (1, 1)})
    counts = {
        s: sum(1 for _ in tf.data.TFRecordDataset(tf.io.gfile.glob(layout.shard_pattern(str(out), s))))
        for s in ("train", "test")
    }
    assert counts == {"train": 3, "test": 2}


def test_export_model_signatures_agree(tmp_path):
    inputs = tf.keras.Input((32, 32, 3))
    outputs = tf.keras.layers.Dense(1, activation="sigmoid")(tf.keras.layers.GlobalAveragePooling2D()(inputs / 255.0))
    model = tf.keras.Model(inputs, outputs)

    def predict(images):
        return {serving.CLASSIFIER_OUTPUT: tf.reshape(model(images, training=False), [-1])}

    meta = serving.ModelMetadata("classifier", "test-1", 32, 0.5, ("no_rust", "rust"), "none", "none")
    export_model(str(tmp_path / "m"), predict, model, meta)
    loaded = tf.saved_model.load(str(tmp_path / "m"))
    records = synthetic_records(2, 1, size=(64, 48))
    encoded = tf.constant([r.encoded for r in records])
    by_bytes = loaded.signatures[serving.BYTES_SIGNATURE](image_bytes=encoded)[serving.CLASSIFIER_OUTPUT].numpy()
    pixels = tf.stack([preprocess.decode_and_resize(e, 32) for e in encoded])
    by_pixels = loaded.signatures[serving.PIXELS_SIGNATURE](images=pixels)[serving.CLASSIFIER_OUTPUT].numpy()
    assert by_bytes.shape == (3,)
    np.testing.assert_allclose(by_bytes, by_pixels, rtol=1e-6)
    assert serving.read_metadata(str(tmp_path / "m")) == meta


def test_inference_pipelines_compiled_resize_is_the_shared_resize():
    """The batch pipeline's one-call resize gives the very tensor training's resize gives, any shape."""
    rng = np.random.default_rng(3)
    for shape in [(375, 500, 3), (500, 375, 3), (64, 64, 3), (30, 90, 3)]:
        pixels = rng.integers(0, 256, size=shape, dtype=np.uint8)
        np.testing.assert_array_equal(
            preprocess.resize_one(56)(pixels).numpy(), preprocess.resize_pixels(pixels, 56).numpy()
        )
    assert preprocess.resize_one(56) is preprocess.resize_one(56)  # one traced function per size
