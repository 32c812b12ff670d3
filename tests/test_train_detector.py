"""Detector: anchor assignment, in-graph decoding, pixel mapping, a short training run, export, evaluation.

One tiny model (MobileNetV2 alpha 0.35 from scratch at 128 px) is trained once for the module on
generated photos with known rust patches; the other tests read what it wrote.
"""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import tensorflow as tf
from support.datasets import synthetic_records, write_dataset

from corrosion.core.config import ConfigError
from corrosion.data import schema
from corrosion.imaging import preprocess
from corrosion.models import serving
from corrosion.testing import synthetic
from training.common import records
from training.common.records import DatasetError
from training.detector import evaluate as detection_eval
from training.detector import train as train_detector
from training.detector.config import load_detector_config
from training.detector.decode import PostprocessConfig, decode
from training.detector.metrics import ImageResult, coco_metrics
from training.detector.model import DetectorModelConfig, anchor_boxes, level_shapes
from training.detector.targets import AssignmentConfig, assign

TINY = {
    "model": {
        "alpha": 0.35,
        "input_size": 128,
        "fpn_channels": 32,
        "head_depth": 1,
        "anchor_sizes": [0.15, 0.3, 0.6, 0.9],
    },
    "weights": "none",
    "batch_size": 8,
    "head_epochs": 0,
    "fine_tune_epochs": 12,
    "head_learning_rate": 0.003,
    "fine_tune_learning_rate": 0.003,
    "fine_tune_from": None,
    "negatives_per_positive": 0.5,
    "eval_every": 4,
    "ema_momentum": 0.8,  # about 100 steps in all: the production 0.99 would still be averaging the start
    "augment": {"zoom": [0.0, 0.0], "translate": 0.0},
}
# Non-square photos of several shapes, big enough patches to learn in a minute of CPU.
SIZES = [(160, 120), (120, 160), (192, 96)]
PATCHES = {"patch_scale": (0.2, 0.45), "max_patches": 2}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("detector")
    data = write_dataset(
        root / "data",
        {"train": (64, 16), "validation": (10, 4), "test": (16, 4)},
        size=SIZES,
        unlocated={"train": 8},
        **PATCHES,
    )
    config = load_detector_config(None, TINY)
    report = train_detector.train(str(data), str(root / "model"), config)
    return {"data": data, "model_dir": root / "model", "report": report, "root": root}


# ---------------------------------------------------------------- anchors, targets, decoding


def small_model_config(**kw) -> DetectorModelConfig:
    return DetectorModelConfig(input_size=128, anchor_sizes=(0.15, 0.3, 0.6, 0.9), **kw)


def test_anchor_layout_matches_levels():
    cfg = small_model_config()
    anchors = anchor_boxes(cfg)
    sides = level_shapes(cfg)
    assert sides == [16, 8, 4, 2]
    assert anchors.shape == (sum(s * s for s in sides) * cfg.anchors_per_location, 4)
    first_level = anchors[: sides[0] ** 2 * cfg.anchors_per_location]
    centres = (first_level[:, :2] + first_level[:, 2:]) / 2
    np.testing.assert_allclose(centres[0], [0.5 / 16, 0.5 / 16], atol=1e-6)
    np.testing.assert_allclose(centres[cfg.anchors_per_location], [0.5 / 16, 1.5 / 16], atol=1e-6)  # row-major


def test_assignment_gives_every_box_a_positive_and_negatives_none():
    cfg = small_model_config()
    anchors = anchor_boxes(cfg)
    boxes = tf.constant(
        [
            [[0.1, 0.1, 0.5, 0.35], [0.6, 0.05, 0.62, 0.9], [-1, -1, -1, -1]],  # a normal and a very thin box
            [[-1, -1, -1, -1]] * 3,  # a negative image
        ],
        tf.float32,
    )
    labels = tf.constant([[1, 1, -1], [-1, -1, -1]], tf.float32)
    cls, deltas = assign(anchors, boxes, labels, AssignmentConfig(0.5, 0.4), cfg.box_variance)
    cls = cls.numpy()
    assert cls.shape == (2, len(anchors)) and deltas.shape == (2, len(anchors), 4)
    assert set(np.unique(cls[0])) <= {-1.0, 0.0, 1.0} and (cls[0] == 1).sum() >= 2
    assert (cls[1] == 0).all()  # no box: every anchor is background
    ious = _iou(anchors, np.array([[0.6, 0.05, 0.62, 0.9]]))[:, 0]
    assert cls[0][np.argmax(ious)] == 1  # the thin box claims its best anchor though its IoU is < 0.5
    assert ious.max() < 0.5
    # the ignore band: anchors with 0.4 <= IoU < 0.5 to the normal box are neither positive nor negative
    band = _iou(anchors, np.array([[0.1, 0.1, 0.5, 0.35]]))[:, 0]
    in_band = (band >= 0.4) & (band < 0.5) & (cls[0] != 1)
    assert in_band.any() and (cls[0][in_band] == -1).all()


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    y0 = np.maximum(a[:, None, 0], b[None, :, 0])
    x0 = np.maximum(a[:, None, 1], b[None, :, 1])
    y1 = np.minimum(a[:, None, 2], b[None, :, 2])
    x1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(y1 - y0, 0, None) * np.clip(x1 - x0, 0, None)
    area = lambda z: (z[:, 2] - z[:, 0]) * (z[:, 3] - z[:, 1])  # noqa: E731
    return inter / (area(a)[:, None] + area(b)[None, :] - inter)


def test_rust_photos_without_boxes_train_only_the_image_head(tmp_path):
    from training.detector.data import _to_targets

    config = small_model_config()
    anchors = anchor_boxes(config)
    boxes = tf.constant([[[0.2, 0.2, 0.6, 0.6]], [[-1.0] * 4], [[-1.0] * 4]], tf.float32)
    labels = tf.constant([[1.0], [-1.0], [-1.0]])
    batch = {"images": tf.zeros([3, 128, 128, 3], tf.uint8), "bounding_boxes": {"boxes": boxes, "labels": labels}}
    flags = tf.constant([[1.0, 1.0], [0.0, 1.0], [1.0, 0.0]])  # box image, negative, rust without boxes
    _, targets = _to_targets(anchors, AssignmentConfig(), config.box_variance, image_head=True)(batch, flags)
    cls = targets["cls"].numpy()
    assert (cls[0] == 1.0).sum() >= 1
    assert (cls[1] == 0.0).all()  # every anchor of a clean photo is background
    assert (cls[2] == -1.0).all()  # nobody drew where the rust is: no anchor is judged
    np.testing.assert_array_equal(targets["image"].numpy(), [[1.0], [0.0], [1.0]])


def test_image_score_blends_into_box_scores():
    anchors = tf.constant([[0.1, 0.1, 0.3, 0.3], [0.5, 0.5, 0.9, 0.9]], tf.float32)
    cls = tf.constant([[2.0, -1.0], [2.0, -1.0]])
    outputs = {"box": tf.zeros([2, 2, 4]), "cls": cls, "image": tf.constant([[4.0], [-4.0]])}
    anchor_scores = tf.sigmoid(cls).numpy()[0]
    image_scores = tf.sigmoid(tf.constant([4.0, -4.0])).numpy()
    for w in (0.0, 0.5):
        out = decode(outputs, anchors, (0.1, 0.1, 0.2, 0.2), PostprocessConfig(image_score_weight=w, min_score=0.0))
        for i in range(2):
            expected = np.sort(anchor_scores ** (1 - w) * image_scores[i] ** w)[::-1]
            np.testing.assert_allclose(out["detection_scores"].numpy()[i, :2], expected, rtol=1e-5)
    with pytest.raises(ValueError, match="image score weights"):
        PostprocessConfig(image_score_weight=1.5)


def test_targets_decode_back_to_the_true_boxes_in_pixels_of_a_non_square_image():
    """Encode -> (perfect network) -> in-graph decode + NMS -> pixels: the annotator's boxes come back."""
    cfg = small_model_config()
    anchors = anchor_boxes(cfg)
    width, height = 300, 100  # 3:1, squashed to 128 x 128 for the model
    true_px = np.array([[30.0, 10.0, 120.0, 70.0], [180.0, 40.0, 290.0, 95.0]])  # xmin, ymin, xmax, ymax
    normalised = np.stack(
        [true_px[:, 1] / height, true_px[:, 0] / width, true_px[:, 3] / height, true_px[:, 2] / width], -1
    )
    cls, deltas = assign(
        anchors, normalised[None].astype(np.float32), np.ones((1, 2), np.float32), AssignmentConfig(), cfg.box_variance
    )
    logits = tf.where(cls == 1, 8.0, -8.0)
    out = decode({"box": deltas, "cls": logits}, tf.constant(anchors), cfg.box_variance, PostprocessConfig(nms_iou=0.5))
    n = int(out["num_detections"][0])
    assert n == 2
    got = detection_eval.to_pixels(out["detection_boxes"][0, :n].numpy(), width, height)
    got = got[np.argsort(got[:, 0])]
    np.testing.assert_allclose(got, true_px, atol=0.5)
    assert set(out["detection_classes"][0, :n].numpy()) == {1.0}


def test_record_boxes_round_trip_to_pixels_for_non_square_images():
    record = synthetic_records(1, 0, size=(240, 80), seed=5, **PATCHES)[0]
    parsed = schema.parse_tf(tf.constant(schema.serialize(record)))
    px = detection_eval.to_pixels(parsed["boxes"].numpy(), record.width, record.height)
    want = np.array([[b.xmin, b.ymin, b.xmax, b.ymax] for b in record.boxes])
    np.testing.assert_allclose(px, want, atol=1e-3)


def test_coco_metrics_perfect_and_empty_and_negatives():
    truth = np.array([[10.0, 10.0, 50.0, 40.0]])
    perfect = coco_metrics([ImageResult("a", 100, 60, truth, truth, np.array([0.9]))])
    assert perfect["AP50"] == pytest.approx(1.0) and perfect["AP"] == pytest.approx(1.0)
    with_false_alarm = coco_metrics(
        [
            ImageResult("a", 100, 60, truth, truth, np.array([0.5])),
            ImageResult("clean", 100, 60, np.zeros((0, 4)), np.array([[0.0, 0.0, 30.0, 30.0]]), np.array([0.9])),
        ]
    )
    assert with_false_alarm["AP50"] < 0.6  # a confident box on a clean image costs precision
    assert coco_metrics([ImageResult("a", 100, 60, truth)])["AP50"] == 0.0  # no detections at all
    assert coco_metrics([ImageResult("clean", 100, 60, np.zeros((0, 4)))])["AP50"] is None  # undefined


def test_config_errors_are_clear(tmp_path):
    with pytest.raises(ConfigError, match="multiple of 32"):
        load_detector_config(None, {"model": {"input_size": 100}})
    with pytest.raises(ConfigError, match="anchor_sizes"):
        load_detector_config(None, {"model": {"anchor_sizes": [0.1, 0.2]}})
    with pytest.raises(ConfigError, match="unknown key"):
        load_detector_config(None, {"epochs": 3})


def test_a_data_set_without_boxes_is_refused_with_a_reason(tmp_path):
    data = write_dataset(tmp_path, {"train": (0, 4), "validation": (1, 1), "test": (1, 1)}, size=(64, 48))
    with pytest.raises(DatasetError, match="no image with rust boxes"):
        train_detector.train(str(data), str(tmp_path / "m"), load_detector_config(None, TINY))


# ---------------------------------------------------------------- the trained model


def test_short_run_lowers_the_loss_and_beats_random_boxes(trained):
    report = trained["report"]
    loss = report["training"]["history"]["loss"]
    assert len(loss) == TINY["fine_tune_epochs"]
    assert np.mean(loss[-3:]) < 0.7 * np.mean(loss[:2])
    test = report["splits"]["test"]
    assert test["images"] == 20 and test["images_with_boxes"] == 16
    random_ap50 = _random_boxes_ap50(trained["data"])
    assert random_ap50 < 0.15
    assert test["AP50"] >= 0.3 and test["AP50"] > 3 * random_ap50, (test, random_ap50)
    assert report["splits"]["validation"]["AP50"] >= 0.3


def _random_boxes_ap50(data) -> float:
    """A model that knows nothing: 20 random boxes of plausible size per image, random scores."""
    rng = random.Random(0)
    examples, _ = detection_eval.record_examples(str(data), "test")
    results = []
    for e in examples:
        boxes = []
        for _ in range(20):
            w, h = rng.uniform(0.1, 0.5) * e.width, rng.uniform(0.1, 0.5) * e.height
            x, y = rng.uniform(0, e.width - w), rng.uniform(0, e.height - h)
            boxes.append([x, y, x + w, y + h])
        results.append(
            ImageResult(
                e.name, e.width, e.height, e.true_boxes, np.array(boxes), np.array([rng.random() for _ in boxes])
            )
        )
    return coco_metrics(results)["AP50"]


def same_detections(a: dict, b: dict, min_score: float, slack: float = 0.02) -> None:
    """Every detection of ``a`` scoring >= min_score is in ``b`` (same box, same score), and back.

    The other side is searched down to ``min_score - slack``, so a score a hair either side of the
    cut (float sums differ by CPU) cannot fail it."""
    for x, y in ((a, b), (b, a)):
        for i in range(len(x["num_detections"])):
            nx, ny = int(x["num_detections"][i]), int(y["num_detections"][i])
            keep = y["detection_scores"][i, :ny] >= min_score - slack
            ys, yb = y["detection_scores"][i, :ny][keep], y["detection_boxes"][i, :ny][keep]
            for score, box in zip(x["detection_scores"][i, :nx], x["detection_boxes"][i, :nx], strict=True):
                if score < min_score:
                    continue
                close = (np.abs(yb - box).max(axis=1) < 1e-3) & (np.abs(ys - score) < 1e-3)
                assert close.any(), (i, score, box)


def test_the_network_lite_copy_with_the_saved_decode_gives_the_saved_detections(trained):
    from corrosion.models import lite_runtime

    model_dir = str(trained["model_dir"])
    check = trained["report"]["lite_export"]
    assert check["file"] == serving.DETECTOR_LITE_FILE and check["max_abs_difference"] < 1e-3
    assert serving.read_metadata(model_dir).extra["lite"] == check
    loaded = tf.saved_model.load(model_dir)
    assert serving.DECODE_SIGNATURE in loaded.signatures
    records = synthetic_records(4, 2, size=[(200, 90), (90, 200)], seed=11, **PATCHES)
    pixels = tf.stack([preprocess.decode_and_resize(r.encoded, 128) for r in records]).numpy()
    saved = {k: v.numpy() for k, v in loaded.signatures[serving.PIXELS_SIGNATURE](images=pixels).items()}
    lite = lite_runtime.LiteDetector.from_model_dir(model_dir)(pixels)
    assert set(lite) == set(serving.DETECTOR_OUTPUTS)
    assert (saved["detection_scores"] >= 0.1).sum() >= 3  # a trained model: there is something to compare
    same_detections(saved, lite, min_score=0.1)


def test_export_reloads_with_detection_outputs(trained):
    model_dir = str(trained["model_dir"])
    meta = serving.read_metadata(model_dir)
    assert (meta.kind, meta.input_size, meta.class_names) == ("detector", 128, ("rust",))
    assert 0.0 < meta.threshold < 1.0 and meta.version.startswith("detector-")
    loaded = tf.saved_model.load(model_dir)
    records = synthetic_records(2, 1, size=[(200, 90), (90, 200)], seed=9, **PATCHES)
    encoded = tf.constant([r.encoded for r in records])
    by_bytes = loaded.signatures[serving.BYTES_SIGNATURE](image_bytes=encoded)
    assert set(by_bytes) == set(serving.DETECTOR_OUTPUTS)
    k = PostprocessConfig().max_detections
    assert by_bytes["detection_boxes"].shape == (3, k, 4)
    assert by_bytes["detection_scores"].shape == (3, k) and by_bytes["detection_classes"].shape == (3, k)
    assert by_bytes["num_detections"].shape == (3,)
    boxes = by_bytes["detection_boxes"].numpy()
    assert boxes.min() >= 0.0 and boxes.max() <= 1.0
    assert (boxes[..., 2] >= boxes[..., 0]).all() and (boxes[..., 3] >= boxes[..., 1]).all()
    n = by_bytes["num_detections"].numpy().astype(int)
    scores = by_bytes["detection_scores"].numpy()
    for i in range(3):
        assert (by_bytes["detection_classes"].numpy()[i, : n[i]] == 1.0).all()
        assert (np.diff(scores[i, : n[i]]) <= 1e-6).all()  # sorted best first
        assert (scores[i, n[i] :] == 0).all()
    pixels = tf.stack([preprocess.decode_and_resize(e, 128) for e in encoded])
    by_pixels = loaded.signatures[serving.PIXELS_SIGNATURE](images=pixels)
    np.testing.assert_allclose(by_pixels["detection_scores"].numpy(), scores, atol=1e-5)
    np.testing.assert_allclose(by_pixels["detection_boxes"].numpy(), boxes, atol=1e-5)


def test_training_writes_metrics_card_grid_and_tensorboard_logs(trained):
    model_dir = trained["model_dir"]
    metrics = json.loads((model_dir / "metrics.json").read_text())
    assert set(metrics["splits"]) == {"validation", "test"}
    for key in ("AP", "AP50", "AP75", "AR1", "AR10", "AR100"):
        assert 0.0 <= metrics["splits"]["test"][key] <= 1.0
    assert metrics["data_counts"]["train"] == {
        "images": 88,
        "box_images": 64,
        "boxes": metrics["data_counts"]["train"]["boxes"],
        "negatives": 16,
        "skipped": 8,
    }
    training = metrics["training"]
    tried = training["validation_AP50_by_image_score_weight"]
    assert set(tried) == {"0.0", "0.25", "0.5", "0.75"}
    assert tried[str(training["image_score_weight"])] == max(tried.values())
    assert serving.read_metadata(str(model_dir)).extra["image_score_weight"] == training["image_score_weight"]
    assert len(training["history"]["image_loss"]) == TINY["fine_tune_epochs"]
    card = (model_dir / "model_card.md").read_text()
    assert "Fuzzy rust boxes" in card and f"{metrics['splits']['test']['AP50']:.3f}" in card
    assert (model_dir / "detections_grid.png").read_bytes()[:4] == b"\x89PNG"
    assert (model_dir / "training_curves.png").stat().st_size > 0
    assert list((model_dir / "logs" / "train").glob("events.out.tfevents*"))
    assert list((model_dir / "logs" / "validation").glob("events.out.tfevents*"))


def test_evaluate_on_a_raw_voc_folder_and_through_training_evaluate(trained, tmp_path):
    survey = synthetic.generate_survey(tmp_path / "raw", "voc", n_rust=6, n_clean=2, size=SIZES, seed=21, **PATCHES)
    report = detection_eval.evaluate_detector(str(trained["model_dir"]), str(survey.root), str(tmp_path / "eval"))
    raw = report["splits"][detection_eval.RAW_SPLIT]
    assert raw["images"] == 8 and raw["images_with_boxes"] == 6
    assert raw["true_boxes"] == sum(len(i.boxes) for i in survey.images)
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text()) == report
    assert (tmp_path / "eval" / "detections_grid.png").exists()

    from training import evaluate

    again = evaluate.evaluate(str(trained["model_dir"]), str(trained["data"]), str(tmp_path / "eval2"), ("test",))
    assert again["splits"]["test"]["AP50"] == pytest.approx(trained["report"]["splits"]["test"]["AP50"], abs=1e-6)


def test_the_detectors_rusted_area_is_its_box_union_scored_as_a_rust_map(trained, tmp_path):
    """Batch inference reports a detector's rusted area as the union of its boxes; training.evaluate
    scores that union against true masks exactly as it scores a segmenter's map."""
    from training import evaluate

    model_dir = str(trained["model_dir"])
    data = write_dataset(tmp_path / "masked", {"test": (6, 2)}, size=SIZES, seed=5, masks=True, **PATCHES)
    out = evaluate.evaluate(model_dir, str(data), str(tmp_path / "eval"), ("test",))
    area = out["rusted_area"]["test"]["pooled"]
    assert area["photos"] == {"regions": 6, "negative": 2} and area["region_photos"] == 6
    assert 0 <= area["pixel_f1"] <= 1 and area["rusted_pct_mae"] >= 0 and 0 <= area["d610_within_1"] <= 1
    assert (tmp_path / "eval" / "rusted_area" / "metrics.json").is_file()
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["rusted_area"] == out["rusted_area"]

    detect, meta = detection_eval.exported_detect(model_dir)
    encoded = [p["encoded"] for p in records.parsed_dataset(str(data), "test").as_numpy_iterator()]
    maps = detection_eval.box_union_maps(model_dir, 32)(encoded)
    found = detect(tf.constant(encoded))
    for m, boxes, scores, n in zip(
        maps, found["detection_boxes"].numpy(), found["detection_scores"].numpy(), found["num_detections"].numpy(),
        strict=True,
    ):  # fmt: skip
        kept = boxes[: int(n)][scores[: int(n)] >= meta.threshold]
        assert set(np.unique(m)) <= {0.0, 1.0} and (m.sum() > 0) == (len(kept) > 0)
        for ymin, xmin, ymax, _ in kept:  # every kept box is covered (its left column)
            row, col = min(int(ymin * 32), 31), min(int(xmin * 32), 31)
            assert m[row : max(int(np.ceil(ymax * 32)), row + 1), col].all()
    # no box: no rusted area
    assert not detection_eval.box_union_maps(model_dir, 32)([]).size


def _kernel_seen_at_last_epoch_end(selector_after_swap: bool) -> tuple[np.ndarray, np.ndarray]:
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    seen: list[np.ndarray] = []
    selector = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: seen.append(model.get_weights()[0]))
    for phase in range(2):  # two phases, as in training: a fresh optimizer and swapper each
        model.compile(keras.optimizers.SGD(0.1, use_ema=True, ema_momentum=0.8), "mse")
        swap = train_detector.ema_swap(0.8)
        callbacks = [*swap, selector] if selector_after_swap else [selector, *swap]
        x = np.random.default_rng(phase).random((64, 3)).astype(np.float32)
        model.fit(x, x.sum(1, keepdims=True), epochs=3, batch_size=8, verbose=0, callbacks=callbacks)
    return seen[-1], model.get_weights()[0]


def test_the_validation_selector_sees_and_keeps_the_averaged_weights():
    """After ``ema_swap`` the selector judges and snapshots the averaged weights, which are also what
    fit ends on (and what is exported); placed before it, it would judge the raw last step."""
    seen, final = _kernel_seen_at_last_epoch_end(selector_after_swap=True)
    np.testing.assert_allclose(seen, final, rtol=1e-6)
    seen_raw, final_raw = _kernel_seen_at_last_epoch_end(selector_after_swap=False)
    assert np.abs(seen_raw - final_raw).max() > 1e-4
    assert train_detector.ema_swap(None) == []
