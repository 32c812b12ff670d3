"""The classifier training job on generated TFRecords: tiny backbone, few steps."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from support.datasets import write_dataset

from corrosion.core.config import ConfigError, config_path, load_config
from corrosion.core.labels import load_labels
from corrosion.imaging import preprocess
from corrosion.models import serving
from corrosion.models.weights import resolve_weights
from corrosion.testing import synthetic
from training.classifier.config import ClassifierConfig
from training.classifier.model import load_exported_classifier
from training.classifier.train import Trainer, main
from training.common import records
from training.detector import train as train_detector
from training.detector.backbone_init import init_from_classifier
from training.detector.config import load_detector_config
from training.detector.model import DetectorModelConfig, build_detector, init_backbone_from_classifier

SIZE = 64
SPLITS = {"train": (12, 12), "validation": (6, 6), "test": (6, 6)}
SOURCES = ("yard", "dock")  # photos alternate between two source folders


def tiny_config(**overrides) -> ClassifierConfig:
    base = ClassifierConfig(
        backbone_kwargs={"alpha": 0.35},
        input_size=SIZE,
        weights="none",
        batch_size=16,
        head_epochs=2,
        feature_augmented_copies=1,
        fine_tune_epochs=1,
        baseline_steps=50,
    )
    return dataclasses.replace(base, **overrides)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return str(write_dataset(tmp_path_factory.mktemp("data"), SPLITS, size=(96, 72), masks=True, sources=SOURCES))


@pytest.fixture(scope="module")
def trained(dataset, tmp_path_factory):
    model_dir = str(tmp_path_factory.mktemp("model"))
    metrics = Trainer(dataset, model_dir, tiny_config(), load_labels()).run()
    return model_dir, metrics


def test_trains_evaluates_and_exports(trained):
    model_dir, _ = trained
    root = Path(model_dir)
    for name in (
        "saved_model.pb",
        "metadata.json",
        "metrics.json",
        "model_card.md",
        "predictions_validation.csv",
        "predictions_test.csv",
    ):
        assert (root / name).is_file(), name
    for name in (
        "training_curves.png",
        "roc.png",
        "precision_recall.png",
        "confusion_validation.png",
        "confusion_test.png",
    ):
        assert (root / "plots" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    assert list((root / "logs" / "train").glob("events.out.tfevents.*")) and list(
        (root / "logs" / "validation").glob("events.*")
    )
    assert not (root / "checkpoints").exists()

    on_disk = json.loads((root / "metrics.json").read_text())
    assert on_disk["data"]["counts"] == {
        "train": {"rust": 12, "no_rust": 12},
        "validation": {"rust": 6, "no_rust": 6},
        "test": {"rust": 6, "no_rust": 6},
    }
    for split in ("validation", "test"):
        s = on_disk[split]
        assert (s["n"], s["n_positive"], s["n_negative"]) == (12, 6, 6)
        assert sum(s["confusion_matrix"][k] for k in ("tn", "fp", "fn", "tp")) == 12
        assert s["threshold"] == on_disk["threshold"]
    # the threshold is chosen on validation for the target recall
    assert on_disk["validation"]["recall"] >= 0.95
    # one clean-steel crop per mask-annotated rust photo: no_rust in training (36 images, 24 of them
    # no_rust, weighted so), scored apart on validation and test, never mixed into their figures
    crops = on_disk["clean_crops"]
    assert crops["train_crops"] == 12 and on_disk["training"]["class_weight"] == {"no_rust": 0.75, "rust": 1.5}
    assert (crops["test"]["photos_searched"], crops["test"]["images"]) == (6, 6)
    assert {s: c["images"] for s, c in crops["test"]["per_source"].items()} == {"yard": 3, "dock": 3}
    assert crops["test"]["flagged"] == sum(c["flagged"] for c in crops["test"]["per_source"].values())
    # per source, at the shipped threshold
    for source in SOURCES:
        row = on_disk["per_source"]["test"][source]
        assert (row["images"], row["rust"], row["no_rust"]) == (6, 3, 3)
        assert row["recall"] in {0, 1 / 3, 2 / 3, 1}
    history = on_disk["training"]["history"]
    assert 1 <= len(history["phase 1 (frozen)"]["loss"]) <= 2 and len(history["phase 2 (fine-tune)"]["loss"]) == 1
    assert on_disk["baseline"]["test"]["n"] == 12 and on_disk["beats_baseline"] in (True, False)
    assert on_disk["export_check"]["images"] == 12 and on_disk["export_check"]["max_abs_difference"] < 1e-4
    # the pipeline's LiteRT copy, checked against the SavedModel before it was written
    assert (root / serving.CLASSIFIER_LITE_FILE).stat().st_size > 0
    assert (
        on_disk["export_check"]["lite"]["images"] == 8 and on_disk["export_check"]["lite"]["max_abs_difference"] < 1e-4
    )

    meta = serving.read_metadata(model_dir)
    assert (meta.kind, meta.input_size, meta.class_names, meta.backbone) == (
        "classifier",
        SIZE,
        ("no_rust", "rust"),
        "MobileNetV2",
    )
    assert meta.threshold == pytest.approx(on_disk["threshold"]) and meta.weights.startswith("none")
    assert meta.version.startswith("classifier-")

    rows = (root / "predictions_test.csv").read_text().splitlines()
    assert rows[0] == "filename,label,rust_probability,predicted_rust" and len(rows) == 13
    card = (root / "model_card.md").read_text()
    assert meta.version in card and "Baseline" in card and "| ROC-AUC |" in card
    assert "## Per source, at the shipped threshold" in card and "| test | yard | 6 | 3 / 3 |" in card
    assert "## Clean-steel crops" in card and "12 squares cut" in card


def test_predictions_csv_follows_the_records(trained, dataset):
    model_dir, _ = trained
    rows = open(f"{model_dir}/predictions_test.csv").read().splitlines()[1:]
    expected = records.record_metadata(dataset, "test")
    assert [r.split(",")[0] for r in rows] == [m["filename"] for m in expected]
    assert [r.split(",")[1] for r in rows] == [("rust" if m["label"] else "no_rust") for m in expected]


def test_exported_signature_returns_one_probability_per_image(trained):
    model_dir, _ = trained
    loaded = tf.saved_model.load(model_dir)
    # images of different sizes and both formats in one batch
    encoded = [synthetic.encode_image(p) for p, _ in synthetic.generate_images(2, 1, [(50, 40), (130, 90)], seed=9)]
    encoded.append(synthetic.encode_image(synthetic.generate_images(1, 0, (70, 70), seed=4)[0][0], "PNG"))
    out = loaded.signatures[serving.BYTES_SIGNATURE](image_bytes=tf.constant(encoded))
    probs = out[serving.CLASSIFIER_OUTPUT].numpy()
    assert probs.shape == (4,) and np.all((probs >= 0) & (probs <= 1))


def test_serving_preprocessing_is_training_preprocessing(trained, dataset):
    """The same bytes give the same tensor in the training input pipeline and in the serving graph."""
    model_dir, _ = trained
    encoded = tf.stack([p["encoded"] for p in records.parsed_dataset(dataset, "validation")])
    trained_on = np.concatenate([x.numpy() for x, _ in records.image_dataset(dataset, "validation", SIZE, 5)])
    served_tensor = preprocess.decode_batch(encoded, SIZE).numpy()
    np.testing.assert_array_equal(trained_on, served_tensor)

    loaded = tf.saved_model.load(model_dir)
    by_bytes = loaded.signatures[serving.BYTES_SIGNATURE](image_bytes=encoded)[serving.CLASSIFIER_OUTPUT]
    by_pixels = loaded.signatures[serving.PIXELS_SIGNATURE](images=tf.constant(trained_on))[serving.CLASSIFIER_OUTPUT]
    np.testing.assert_allclose(by_bytes.numpy(), by_pixels.numpy(), rtol=1e-6, atol=1e-7)


def test_an_exported_classifier_restores_to_the_scores_it_serves(trained):
    model_dir, _ = trained
    parts = load_exported_classifier(model_dir)
    pixels = np.random.default_rng(3).uniform(0, 255, (3, SIZE, SIZE, 3)).astype("float32")
    served = tf.saved_model.load(model_dir).signatures[serving.PIXELS_SIGNATURE](images=tf.constant(pixels))
    np.testing.assert_allclose(
        parts.inference.predict(pixels, verbose=0).ravel(), served[serving.CLASSIFIER_OUTPUT].numpy(), atol=1e-6
    )


def test_the_detector_backbone_starts_from_the_classifiers_layer_by_layer(trained):
    model_dir, _ = trained
    classifier_backbone = load_exported_classifier(model_dir).backbone
    config = DetectorModelConfig(alpha=0.35, input_size=96, fpn_channels=16, head_depth=1)
    _, backbone = build_detector(config, resolve_weights("none"))
    weighted = [layer for layer in backbone.layers if layer.weights]

    def same_as_classifier(layer) -> bool:
        theirs = classifier_backbone.get_layer(layer.name).get_weights()
        return all(np.array_equal(a, b) for a, b in zip(layer.get_weights(), theirs, strict=True))

    assert not all(same_as_classifier(layer) for layer in weighted)  # a fresh init differs
    copied = init_backbone_from_classifier(backbone, model_dir, config)
    assert copied == len(weighted) > 50
    assert all(same_as_classifier(layer) for layer in weighted)

    wider = DetectorModelConfig(alpha=0.5, input_size=64, fpn_channels=16, head_depth=1)
    _, other = build_detector(wider, resolve_weights("none"))
    with pytest.raises(ValueError, match=r"weight shapes .*backbones differ \(detector MobileNetV2 alpha 0.5\)"):
        init_backbone_from_classifier(other, model_dir, wider)


@pytest.mark.slow
def test_detector_training_from_a_classifier_records_where_its_backbone_came_from(trained, dataset, tmp_path, caplog):
    model_dir, _ = trained
    overrides = {
        "model": {"alpha": 0.35, "input_size": 96, "fpn_channels": 16, "head_depth": 1},
        "weights": "none",
        "init_from_classifier": model_dir,
        "head_epochs": 1,
        "fine_tune_epochs": 1,
        "eval_every": 1,
    }
    report = train_detector.train(dataset, str(tmp_path / "det"), load_detector_config(None, overrides))
    version = serving.read_metadata(model_dir).version
    assert report["backbone_init"]["version"] == version and report["backbone_init"]["same_data_set"] is True
    assert version in serving.read_metadata(str(tmp_path / "det")).weights
    assert "Backbone started from classifier" in (tmp_path / "det" / "model_card.md").read_text()

    # a classifier trained on another data set may have seen this one's test photos: said, not hidden
    config = load_detector_config(None, overrides)
    _, backbone = build_detector(config.model, resolve_weights("none"))
    info = init_from_classifier(backbone, config, str(tmp_path / "elsewhere"), frozenset())
    assert info["same_data_set"] is False
    assert "may include this data set's validation or test photos" in caplog.text


def test_single_class_data_set_is_a_clear_error(tmp_path):
    one_class = write_dataset(tmp_path / "d", {"train": (6, 0), "validation": (2, 2), "test": (2, 2)}, size=(48, 48))
    with pytest.raises(
        records.DatasetError, match=r"train split .* single class \(0 no_rust, 6 rust\): no no_rust images"
    ):
        Trainer(str(one_class), str(tmp_path / "m"), tiny_config(), load_labels()).run()
    assert not (tmp_path / "m" / "saved_model.pb").exists()


def test_empty_split_and_missing_data_are_clear_errors(tmp_path, caplog):
    empty = write_dataset(tmp_path / "e", {"train": (3, 3), "validation": (0, 0), "test": (2, 2)}, size=(48, 48))
    with pytest.raises(records.DatasetError, match="validation split .* is empty"):
        Trainer(str(empty), str(tmp_path / "m"), tiny_config(), load_labels()).run()
    assert main(["--data", str(tmp_path / "nowhere"), "--model_dir", str(tmp_path / "m2"), "--weights", "none"]) == 2
    assert "no train shards match" in caplog.text and "pipelines.build_dataset" in caplog.text


def test_shipped_config_loads_and_rejects_typos(tmp_path):
    cfg = load_config(ClassifierConfig, config_path("classifier.yaml"))
    assert (cfg.backbone, cfg.input_size, cfg.target_recall) == ("MobileNetV2", 224, 0.95)
    bad = tmp_path / "bad.yaml"
    bad.write_text("head_epoch: 3\n")
    with pytest.raises(ConfigError, match="head_epoch"):
        load_config(ClassifierConfig, bad)


def test_learns_rust_with_pretrained_features(shared_weights_file, tmp_path):
    """With real ImageNet features the head alone separates generated rust from clean steel and paint."""
    ds = write_dataset(
        tmp_path / "d", {"train": (16, 16), "validation": (8, 8), "test": (8, 8)}, size=(128, 96), seed=5
    )
    cfg = tiny_config(
        backbone_kwargs={},
        input_size=96,
        weights=str(shared_weights_file),
        head_epochs=25,
        fine_tune_epochs=0,
        baseline=False,
    )
    metrics = Trainer(str(ds), str(tmp_path / "m"), cfg, load_labels()).run()
    assert metrics["test"]["roc_auc"] >= 0.9


def test_any_keras_applications_backbone_splits_where_config_says():
    """Cached training runs the bottom once and the top many times: together they must be the model."""
    from corrosion.models.weights import resolve_weights
    from training.classifier.model import build_classifier

    cfg = tiny_config(backbone="MobileNetV3Small", backbone_kwargs={}, fine_tune_from="expanded_conv_8_expand")
    parts = build_classifier(cfg, resolve_weights("none"))
    images = np.random.default_rng(0).uniform(0, 255, (2, SIZE, SIZE, 3)).astype("float32")
    np.testing.assert_allclose(parts.top(parts.bottom(images)), parts.inference(images), atol=1e-6)
    np.testing.assert_allclose(parts.head(parts.features(images)), parts.inference(images), atol=1e-6)
    with pytest.raises(ValueError, match="cannot be cut at 'expanded_conv_9_project'"):
        build_classifier(dataclasses.replace(cfg, fine_tune_from="expanded_conv_9_project"), resolve_weights("none"))
    with pytest.raises(ValueError, match="has no layer 'block_13_expand'"):
        build_classifier(dataclasses.replace(cfg, fine_tune_from="block_13_expand"), resolve_weights("none"))
