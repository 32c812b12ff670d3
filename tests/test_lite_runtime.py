"""The classifier's LiteRT copy: written only when it scores like the SavedModel, run safely from threads."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
import tensorflow as tf
from support import model_doubles as doubles

from corrosion.core import config
from corrosion.models import lite_runtime, serving
from pipelines.inference.config import InferenceConfig
from training import export_lite
from training.common import lite

SIZE = 32


def saved_scores(model_dir: str, pixels: np.ndarray) -> np.ndarray:
    fn = tf.saved_model.load(model_dir).signatures[serving.PIXELS_SIGNATURE]
    return fn(**{serving.PIXELS_INPUT: tf.constant(pixels)})[serving.CLASSIFIER_OUTPUT].numpy()


@pytest.fixture(scope="module")
def lite_classifier(tmp_path_factory) -> str:
    return doubles.export_tiny_classifier(str(tmp_path_factory.mktemp("lite") / "clf"), input_size=SIZE, lite=True)


def test_the_lite_copy_scores_like_the_saved_model_and_the_check_is_recorded(lite_classifier):
    pixels = np.random.default_rng(5).uniform(0, 255, (12, SIZE, SIZE, 3)).astype(np.float32)
    lite = lite_runtime.LiteClassifier.from_model_dir(lite_classifier)
    got, expected = lite(pixels), saved_scores(lite_classifier, pixels)
    assert got.shape == (12,) and np.ptp(expected) > 0
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert lite(pixels[:3]).shape == (3,)  # any batch size, as RunInference's last batch
    check = serving.read_metadata(lite_classifier).extra["lite"]
    assert check["file"] == serving.CLASSIFIER_LITE_FILE and check["images"] == 8
    assert 0 <= check["max_abs_difference"] < 1e-4


def test_one_model_called_from_several_threads_gives_the_sequential_scores(lite_classifier):
    path = lite_runtime.lite_path(lite_classifier)
    model = lite_runtime.LiteModel(
        open(path, "rb").read(), 1, path, (serving.PIXELS_INPUT,), (serving.CLASSIFIER_OUTPUT,), max_interpreters=3
    )

    def lite(pixels: np.ndarray) -> np.ndarray:
        return model(**{serving.PIXELS_INPUT: pixels})[serving.CLASSIFIER_OUTPUT]

    batches = [np.random.default_rng(i).uniform(0, 255, (8, SIZE, SIZE, 3)).astype(np.float32) for i in range(8)]
    expected = [lite(b) for b in batches]
    got: dict[int, np.ndarray] = {}

    start = threading.Barrier(len(batches))

    def score(i: int) -> None:
        start.wait()
        for _ in range(5):
            got[i] = lite(batches[i])

    threads = [threading.Thread(target=score, args=(i,)) for i in range(len(batches))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, want in enumerate(expected):
        np.testing.assert_array_equal(got[i], want)
    assert 1 <= model.interpreters <= 3  # 8 threads never made more than the limit


def test_a_copy_that_disagrees_with_the_saved_model_is_not_written(tmp_path):
    model_dir = doubles.export_tiny_classifier(str(tmp_path / "clf"), input_size=SIZE, seed=0)
    other = doubles.tiny_classifier(SIZE, seed=1)  # not the model inside the SavedModel
    with pytest.raises(RuntimeError, match="differs from its SavedModel.*nothing written"):
        lite.export_classifier_lite(model_dir, other, SIZE, max_abs_diff=1e-4, check_images=4)
    assert not lite_runtime.has_lite(model_dir)
    assert "lite" not in serving.read_metadata(model_dir).extra


def test_a_file_without_the_contract_names_is_refused_at_load(tmp_path):
    plain = tf.lite.TFLiteConverter.from_keras_model(doubles.tiny_classifier(SIZE)).convert()
    with pytest.raises(ValueError, match=r"must take \['images'\] and give \['rust_probability'\].*export_lite"):
        lite_runtime.LiteClassifier(plain, source="plain.tflite")


def test_runtime_resolution(lite_classifier, tmp_path):
    bare = doubles.export_tiny_classifier(str(tmp_path / "bare"), input_size=SIZE)
    assert lite_runtime.resolve_runtime(lite_classifier, "auto") == "litert"
    assert lite_runtime.resolve_runtime(bare, "auto") == "savedmodel"  # exported before LiteRT copies
    assert lite_runtime.resolve_runtime(lite_classifier, "savedmodel") == "savedmodel"
    with pytest.raises(FileNotFoundError, match=r"classifier\.tflite is missing.*training\.export_lite"):
        lite_runtime.resolve_runtime(bare, "litert")
    with pytest.raises(config.ConfigError, match="classifier_runtime must be one of"):
        config.from_dict(InferenceConfig, {"classifier_runtime": "onnx"}, "inference.yaml")


def test_the_command_adds_the_copy_to_an_earlier_export(tmp_path):
    """``python -m training.export_lite`` on a project classifier exported without one."""
    from corrosion.models.weights import WeightSource
    from training.classifier.config import ClassifierConfig
    from training.classifier.model import build_classifier
    from training.common.export import classifier_predict_fn, export_model

    cfg = ClassifierConfig(input_size=SIZE, backbone_kwargs={"alpha": 0.35}, export_lite=False)
    parts = build_classifier(cfg, WeightSource("none", None, "test"))
    model_dir = str(tmp_path / "old")
    meta = serving.ModelMetadata(
        "classifier",
        "old-export",
        SIZE,
        0.5,
        ("no_rust", "rust"),
        "MobileNetV2",
        "none",
        {"backbone_kwargs": {"alpha": 0.35}},
    )
    export_model(model_dir, classifier_predict_fn(parts.inference), parts.inference, meta)
    assert export_lite.main([model_dir]) == 0
    pixels = lite.check_pixels(SIZE, 4, seed=9)
    np.testing.assert_allclose(
        lite_runtime.LiteClassifier.from_model_dir(model_dir)(pixels), saved_scores(model_dir, pixels), atol=1e-5
    )
    on_disk = json.loads((tmp_path / "old" / serving.METADATA_FILE).read_text())
    assert on_disk["version"] == "old-export" and on_disk["extra"]["lite"]["images"] == 8


def test_a_detector_exported_before_its_decode_signature_gets_it_and_its_copy(tmp_path):
    """``python -m training.export_lite`` on a detector: rebuilt from its config, checked, re-exported."""
    from corrosion.models.weights import WeightSource
    from training.common.export import export_model
    from training.detector.config import load_detector_config
    from training.detector.decode import make_predict
    from training.detector.model import anchor_boxes, build_detector

    tiny = "model: {input_size: 64, alpha: 0.35, fpn_channels: 16, head_depth: 1}\n"
    (tmp_path / "tiny.yaml").write_text(tiny)
    (tmp_path / "wrong.yaml").write_text(tiny.replace("fpn_channels: 16", "fpn_channels: 24"))
    cfg = load_detector_config(str(tmp_path / "tiny.yaml"))
    model, _ = build_detector(cfg.model, WeightSource("none", None, "test"))
    predict = make_predict(model, anchor_boxes(cfg.model), cfg.model.box_variance, cfg.postprocess)
    model_dir = str(tmp_path / "old_detector")
    extra = {"max_detections": 100, "nms_iou": 0.5, "min_score": 0.01, "image_score_weight": 0.5}
    meta = serving.ModelMetadata("detector", "old-det", 64, 0.3, ("rust",), "MobileNetV2", "none", extra)
    export_model(model_dir, predict, model, meta)  # as train_detector did before serving_decode

    with pytest.raises(
        ValueError, match=r"cannot restore the weights.*does not fit.*--detector_config\)\. Nothing changed"
    ):
        export_lite.main([model_dir, "--detector_config", str(tmp_path / "wrong.yaml")])
    assert not lite_runtime.has_lite(model_dir, "detector")
    assert serving.DECODE_SIGNATURE not in tf.saved_model.load(model_dir).signatures

    assert export_lite.main([model_dir, "--detector_config", str(tmp_path / "tiny.yaml")]) == 0
    assert lite_runtime.resolve_runtime(model_dir, "auto", "detector") == "litert"
    loaded = tf.saved_model.load(model_dir)
    assert serving.DECODE_SIGNATURE in loaded.signatures
    meta_after = serving.read_metadata(model_dir)
    assert meta_after.version == "old-det" and meta_after.extra["lite"]["file"] == serving.DETECTOR_LITE_FILE
    pixels = lite.check_pixels(64, 2, seed=4)
    out = lite_runtime.LiteDetector.from_model_dir(model_dir, saved=loaded)(pixels)
    saved = loaded.signatures[serving.PIXELS_SIGNATURE](images=tf.constant(pixels))
    for name in serving.DETECTOR_OUTPUTS:
        assert out[name].shape == tuple(saved[name].shape), name


def test_a_new_export_into_the_same_folder_removes_the_old_copy(tmp_path):
    """A LiteRT file left from the model an export replaces would be run under the new version."""
    model_dir = doubles.export_tiny_classifier(str(tmp_path / "clf"), input_size=SIZE, seed=0, lite=True)
    assert lite_runtime.resolve_runtime(model_dir, "auto") == "litert"
    doubles.export_tiny_classifier(model_dir, input_size=SIZE, seed=1, version="retrained")
    assert not lite_runtime.has_lite(model_dir)
    assert lite_runtime.resolve_runtime(model_dir, "auto") == "savedmodel"
    assert serving.read_metadata(model_dir).version == "retrained"
