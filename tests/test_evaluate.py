"""training.evaluate on TFRecords and raw labelled folders, and the exact classification metrics."""

from __future__ import annotations

import json
from itertools import product
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from support.datasets import write_dataset

from corrosion.imaging import preprocess
from corrosion.models import serving
from corrosion.testing import synthetic
from training import evaluate as ev
from training.classifier import metrics as cm
from training.common import records
from training.common.export import export_model

SIZE = 48


def _redness_model() -> keras.Model:
    """A fixed, weight-free stand-in classifier: how much redder than blue the image is on average."""
    images = keras.Input((SIZE, SIZE, 3))
    redness = keras.layers.Lambda(lambda t: tf.reduce_mean(t[..., 0] - t[..., 2], axis=[1, 2]) / 20.0 - 1.0)(images)
    return keras.Model(images, keras.layers.Activation("sigmoid")(redness))


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> str:
    model = _redness_model()
    path = str(tmp_path_factory.mktemp("model"))
    meta = serving.ModelMetadata("classifier", "classifier-test", SIZE, 0.5, ("no_rust", "rust"), "none", "none")
    export_model(path, lambda images: {serving.CLASSIFIER_OUTPUT: tf.reshape(model(images), [-1])}, model, meta)
    return path


def _direct_scores(paths: list[Path]) -> np.ndarray:
    """Scores computed without training.evaluate: shared preprocessing + the same fixed model."""
    model = _redness_model()
    pixels = tf.stack([preprocess.decode_and_resize(tf.constant(p.read_bytes()), SIZE) for p in paths])
    return model(pixels).numpy().reshape(-1)


# ---------------------------------------------------------------- raw folders


def test_raw_class_folders_with_bad_files(model_dir, tmp_path):
    survey = synthetic.generate_survey(
        tmp_path / "survey",
        "folders",
        n_rust=5,
        n_clean=4,
        size=(80, 60),
        seed=1,
        bad_files=("truncated", "empty", "not_image"),
    )
    report = ev.evaluate(model_dir, str(survey.root), str(tmp_path / "out"))
    assert set(report["splits"]) == {"all"}
    m = report["splits"]["all"]
    assert (m["n"], m["n_positive"], m["n_negative"]) == (9, 5, 4)
    assert report["rejects"]["count"] == 3
    assert report["rejects"]["by_reason"] == {"corrupt_image": 1, "empty_file": 1, "not_an_image": 1}
    assert {Path(r["path"]).name for r in report["rejects"]["files"]} == {Path(b.path).name for b in survey.bad_files}

    rows = (tmp_path / "out" / "predictions_all.csv").read_text().splitlines()[1:]
    by_name = {Path(r.split(",")[0]).name: (r.split(",")[1], float(r.split(",")[2])) for r in rows}
    truth = {Path(i.path).name: i.image_class for i in survey.images}
    assert {k: v[0] for k, v in by_name.items()} == truth
    names = sorted(truth)
    direct = _direct_scores(
        [survey.root / next(i.path for i in survey.images if Path(i.path).name == n) for n in names]
    )
    np.testing.assert_allclose([by_name[n][1] for n in names], direct, atol=1e-5)
    labels = [1 if truth[n] == "rust" else 0 for n in names]
    expected = cm.summarise(labels, direct, 0.5)
    assert m["confusion_matrix"] == expected["confusion_matrix"]
    assert m["roc_auc"] == pytest.approx(expected["roc_auc"])
    # one source folder here: its per-source row is the pooled figure
    assert m["per_source"] == {
        "survey": {"images": 9, "rust": 5, "no_rust": 4, "recall": m["recall"], "precision": m["precision"],
                   "false_alarm_rate": expected["confusion_matrix"]["fp"] / 4}
    }  # fmt: skip

    saved = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert saved["splits"]["all"]["n"] == 9 and saved["threshold"] == 0.5
    assert len((tmp_path / "out" / "rejects.jsonl").read_text().splitlines()) == 3
    for name in ("roc.png", "precision_recall.png", "confusion_all.png"):
        assert (tmp_path / "out" / "plots" / name).is_file()


def test_raw_voc_and_yolo_layouts(model_dir, tmp_path):
    voc = synthetic.generate_survey(
        tmp_path / "voc", "voc", n_rust=3, n_clean=2, size=(64, 64), seed=2, bad_files=("malformed_xml",)
    )
    report = ev.evaluate(model_dir, str(voc.root), str(tmp_path / "out_voc"))
    assert report["splits"]["all"]["n_positive"] == 3 and report["splits"]["all"]["n_negative"] == 2
    assert report["rejects"]["by_reason"].get("malformed_xml", 0) >= 1  # the XML, and the image it would label

    yolo = synthetic.generate_survey(
        tmp_path / "yolo", "yolo", n_rust=3, n_clean=3, size=(64, 48), seed=3, split="train"
    )
    report = ev.evaluate(model_dir, str(yolo.root), str(tmp_path / "out_yolo"))
    assert (report["splits"]["all"]["n_positive"], report["splits"]["all"]["n_negative"]) == (3, 3)
    assert report["rejects"]["count"] == 0


def test_folder_with_nothing_usable_is_a_clear_error(model_dir, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(records.DatasetError, match="no evaluable labelled images"):
        ev.evaluate(model_dir, str(tmp_path / "empty"), str(tmp_path / "out"))
    assert (
        ev.main(
            ["--model_dir", model_dir, "--data", str(tmp_path / "missing.tfrecord"), "--output", str(tmp_path / "o")]
        )
        == 2
    )


# ---------------------------------------------------------------- TFRecords and dispatch


def test_tfrecord_splits_and_threshold_override(model_dir, tmp_path):
    ds = write_dataset(
        tmp_path / "ds",
        {"train": (2, 2), "validation": (3, 1), "test": (2, 5)},
        size=(64, 48),
        sources=("yard", "dock"),
    )
    report = ev.evaluate(model_dir, str(ds), str(tmp_path / "out"), splits=("validation", "test"), threshold=0.3)
    # rust photos first, the sources taking turns: yard gets rust 0 and clean 1, 3, 5; dock the rest
    per_source = report["splits"]["test"]["per_source"]
    assert {s: (f["images"], f["rust"], f["no_rust"]) for s, f in per_source.items()} == {
        "yard": (4, 1, 3),
        "dock": (3, 1, 2),
    }
    assert set(report["splits"]) == {"validation", "test"}
    assert (report["splits"]["test"]["n_positive"], report["splits"]["test"]["n_negative"]) == (2, 5)
    assert report["threshold"] == 0.3 and report["splits"]["validation"]["threshold"] == 0.3
    assert report["rejects"]["count"] == 0


def test_cli_writes_metrics(model_dir, tmp_path):
    ds = write_dataset(tmp_path / "ds", {"test": (2, 2)}, size=(64, 48))
    assert ev.main(["--model_dir", model_dir, "--data", str(ds), "--output", str(tmp_path / "out")]) == 0
    saved = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert saved["kind"] == "classifier" and saved["splits"]["test"]["n"] == 4


def test_detector_models_go_to_the_detector_evaluation(tmp_path, monkeypatch):
    import sys
    import types

    detection_eval = types.ModuleType("training.detector.evaluate")  # stands in for the detector's module
    monkeypatch.setitem(sys.modules, "training.detector.evaluate", detection_eval)
    meta = serving.ModelMetadata("detector", "detector-test", 64, 0.3, ("rust",), "MobileNetV2", "none")
    serving.write_metadata(str(tmp_path / "det"), meta)
    calls, area_calls = [], []
    detection_eval.evaluate_detector = lambda *args: calls.append(args) or {"kind": "detector"}
    monkeypatch.setattr(ev, "detector_area", lambda *args: area_calls.append(args) or None)
    out = str(tmp_path / "out")
    (tmp_path / "out").mkdir()
    assert ev.evaluate(str(tmp_path / "det"), "DATA", out) == {"kind": "detector", "rusted_area": None}
    assert calls == [(str(tmp_path / "det"), "DATA", out, None)] and area_calls == calls
    assert json.loads((tmp_path / "out" / "metrics.json").read_text()) == {"kind": "detector", "rusted_area": None}


# ---------------------------------------------------------------- metrics


def _pairwise_auc(y: np.ndarray, p: np.ndarray) -> float:
    pos, neg = p[y == 1], p[y == 0]
    wins = sum((a > b) + 0.5 * (a == b) for a, b in product(pos, neg))
    return wins / (len(pos) * len(neg))


def test_roc_auc_matches_pairwise_definition_with_ties():
    rng = np.random.default_rng(0)
    for _ in range(5):
        y = rng.integers(0, 2, 60)
        p = np.round(rng.random(60) + 0.3 * y, 1)  # coarse scores: many ties
        assert cm.roc_auc(y, p) == pytest.approx(_pairwise_auc(y, p))
    assert cm.roc_auc([1, 1], [0.2, 0.9]) is None


def test_average_precision_and_threshold_for_recall():
    y = [0, 0, 1, 1, 1, 0]
    p = [0.1, 0.4, 0.35, 0.8, 0.8, 0.8]
    # thresholds 0.8: P 2/3 R 2/3; 0.4: R unchanged; 0.35: P 3/5 R 1
    assert cm.average_precision(y, p) == pytest.approx(2 / 3 * 2 / 3 + 1 / 3 * 3 / 5)
    assert cm.threshold_for_recall(y, p, 0.6) == 0.8
    assert cm.threshold_for_recall(y, p, 0.95) == 0.35
    s = cm.summarise(y, p, 0.35)
    assert (s["recall"], s["precision"], s["confusion_matrix"]["fp"]) == (1.0, 0.6, 2)
    assert cm.best_recall_at_precision(y, p, 0.65) == {
        "threshold": 0.8,
        "recall": pytest.approx(2 / 3),
        "precision": pytest.approx(2 / 3),
    }
    with pytest.raises(ValueError, match="positive"):
        cm.threshold_for_recall([0, 0], [0.1, 0.2], 0.9)


def test_threshold_reaching_the_recall_target_on_every_large_source():
    # source a: easy, 4 rust photos scored high; source b: 3 rust photos scored lower, 2 clean ones
    y = [1, 1, 1, 1, 1, 1, 1, 0, 0]
    p = [0.9, 0.9, 0.9, 0.9, 0.6, 0.5, 0.3, 0.2, 0.4]
    sources = ["a"] * 4 + ["b"] * 5
    # pooled: recall 6/7 = 0.857 >= 0.8 at 0.5
    assert cm.threshold_for_recall(y, p, 0.8) == 0.5
    # b on its own reaches 0.8 only at 0.3 (2/3 at 0.5); with b counted, it sets the threshold
    assert cm.threshold_for_recall_per_source(y, p, sources, 0.8, min_rust=3) == (0.3, "b")
    # too few rust photos to count on its own (3 < 4): the pooled choice stands
    assert cm.threshold_for_recall_per_source(y, p, sources, 0.8, min_rust=4) == (0.5, None)
    assert cm.threshold_for_recall_per_source(y, p, sources, 0.8, min_rust=0) == (0.5, None)
