"""The review queue: deterministic selection within the budget, and pre-annotations that the project's
own readers (what build_dataset runs on corrected folders) read back to the same boxes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support import model_doubles as doubles

from corrosion.core.labels import load_labels
from corrosion.data import discovery
from corrosion.inference import results
from corrosion.review import selection
from corrosion.testing import synthetic
from pipelines import batch_inference as bi
from pipelines import review_queue


def _row(sha: str, p: float, boxes: list | None = None, grade: int | None = None, is_rust: bool | None = None) -> dict:
    return {
        "image_uri": f"/night/{sha}.jpg", "image_sha256": sha, "rust_probability": p,
        "is_rust": p >= 0.5 if is_rust is None else is_rust, "num_boxes": None if boxes is None else len(boxes),
        "boxes": None if boxes is None else json.dumps(boxes), "rust_grade": grade,
    }  # fmt: skip


def test_selection_ranks_by_reasons_breaks_ties_by_sha_and_keeps_the_budget():
    rows = [
        _row("e" * 64, 0.95, [[0, 0, 10, 10, 0.9]], grade=9),  # confident, agreeing, mild: nothing to review
        _row("d" * 64, 0.50, [[0, 0, 10, 10, 0.9]], grade=9),  # at the threshold
        _row("c" * 64, 0.90, [], grade=10),  # the classifier sees rust, the region model none
        _row("b" * 64, 0.90, [[0, 0, 50, 50, 0.3]], grade=2),  # weak regions, severe grade
        _row("a" * 64, 0.50, [[0, 0, 10, 10, 0.9]], grade=9),  # the same as d: the sha decides
    ]
    queue = selection.select(rows, threshold=0.5, budget=4)
    # b: 0.2 + 1 + 0.7; c: 0.2 + 1 (disagreement); a and d: 1 + 0.1 each, a first by sha
    assert [c.row["image_sha256"][0] for c in queue] == ["b", "c", "a", "d"]
    assert queue[0].reasons == ("near_threshold", "severe", "weak_regions") and queue[0].priority == pytest.approx(
        (1 - 0.4 / 0.5) + 1 + 0.7
    )
    assert queue[1].reasons == ("disagreement", "near_threshold") and queue[1].priority == pytest.approx(1.2)
    assert selection.select(list(reversed(rows)), 0.5, 4) == queue  # input order does not matter
    assert selection.select(rows, 0.5, 0) == [] and len(selection.select(rows, 0.5, 99)) == 5
    with pytest.raises(ValueError, match="budget"):
        selection.select(rows, 0.5, -1)


@pytest.fixture(scope="module")
def night(tmp_path_factory) -> dict:
    """A scored night: rust photos with boxes from the colour-rule detector double."""
    work = tmp_path_factory.mktemp("review")
    survey = synthetic.generate_survey(
        work / "night", "flat", n_rust=4, n_clean=2, size=(240, 180), hard_negative_fraction=0.0, seed=4
    )
    classifier = doubles.export_tiny_classifier(str(work / "classifier"))
    detector = doubles.export_colour_rule_detector(str(work / "detector"), input_size=64)
    args = ["--input", str(work / "night" / "*"), "--classifier", classifier, "--detector", detector]
    summary = bi.run([*args, "--output", str(work / "out"), "--survey_id", "s"])
    return {"work": work, "survey": survey, "classifier": classifier, "results": summary["results"]}


def _queue(night: dict, out: Path, budget: int) -> list[dict]:
    argv = ["--results", night["results"], "--classifier", night["classifier"], "--budget", str(budget)]
    assert review_queue.main([*argv, "--output", str(out)]) == 0
    import csv

    return list(csv.DictReader((out / "queue.csv").open()))


def _read_back(folder: Path) -> dict[str, list[tuple[float, ...]]]:
    scan = discovery.scan(str(folder), load_labels())
    assert scan.rejects == []
    return {Path(i.image_path).name: sorted((b.xmin, b.ymin, b.xmax, b.ymax) for b in i.boxes) for i in scan.images}


def test_the_queue_is_deterministic_and_every_format_reads_back_to_the_models_boxes(night, tmp_path):
    queue = _queue(night, tmp_path / "q1", budget=4)
    assert len(queue) == 4 and [int(r["rank"]) for r in queue] == [1, 2, 3, 4]
    again = _queue(night, tmp_path / "q2", budget=4)
    assert again == queue
    for name in ("voc", "labelme", "coco/annotations.json", "label_studio/tasks.json"):
        a, b = tmp_path / "q1" / name, tmp_path / "q2" / name
        if a.is_file():
            assert a.read_bytes() == b.read_bytes()
        else:
            assert sorted(p.name for p in a.iterdir()) == sorted(p.name for p in b.iterdir())

    by_uri = {
        r["image_uri"]: r
        for r in results.read_csv_rows(sorted(str(p) for p in Path("/").glob(night["results"].lstrip("/"))))
    }
    expected = {q["copy"]: sorted(tuple(b[:4]) for b in json.loads(by_uri[q["image_uri"]]["boxes"])) for q in queue}
    assert any(expected.values())  # some queued photo has boxes to compare
    for folder in ("voc", "labelme", "coco"):
        found = _read_back(tmp_path / "q1" / folder)
        assert sorted(found) == sorted(expected), folder
        for name, boxes in expected.items():
            assert len(found[name]) == len(boxes), (folder, name)
            for got, want in zip(found[name], boxes, strict=True):
                assert max(abs(g - w) for g, w in zip(got, want, strict=True)) <= 1.0, (folder, name, got, want)


def test_label_studio_tasks_carry_predictions_with_version_and_scores_in_percent(night, tmp_path):
    queue = _queue(night, tmp_path / "q", budget=6)
    tasks = json.loads((tmp_path / "q" / "label_studio" / "tasks.json").read_text())
    assert len(tasks) == len(queue) == 6
    for task, q in zip(tasks, queue, strict=True):
        assert task["data"]["image"] == "/data/local-files/?d=voc/" + q["copy"]
        (prediction,) = task["predictions"]
        assert prediction["model_version"] == "tiny-classifier-test+colour-rule-detector-test-double"
        assert prediction["score"] == pytest.approx(float(q["rust_probability"]))
        assert len(prediction["result"]) == int(q["num_boxes"])
        for r in prediction["result"]:
            assert r["type"] == "rectanglelabels" and r["value"]["rectanglelabels"] == ["rust"]
            v = r["value"]
            assert 0 <= v["x"] and 0 <= v["y"] and v["x"] + v["width"] <= 100 and v["y"] + v["height"] <= 100
            assert 0 < r["score"] <= 1 and r["original_width"] == 240 and r["original_height"] == 180


def test_rows_of_another_classifier_are_refused(night, tmp_path):
    other = doubles.export_tiny_classifier(str(tmp_path / "other"), version="another-classifier")
    argv = ["--results", night["results"], "--classifier", other, "--budget", "2", "--output", str(tmp_path / "q")]
    with pytest.raises(SystemExit, match="scored by tiny-classifier-test, not --classifier's another-classifier"):
        review_queue.main(argv)


def test_corrections_replace_the_labels_of_their_photos_and_keep_their_splits(tmp_path):
    """The loop's return leg: reviewed pre-annotations go back through build_dataset as a corrections
    folder; each corrected photo keeps its split (--previous_manifest) and carries the reviewed labels."""
    import csv
    import shutil

    import tensorflow as tf

    from corrosion.data import layout, schema
    from corrosion.review import exports
    from pipelines import build_dataset

    survey = synthetic.generate_survey(
        tmp_path / "survey", "voc", n_rust=10, n_clean=6, size=(120, 90), seed=8, hard_negative_fraction=0.0
    )
    build_dataset.run(["--input", str(tmp_path / "survey"), "--output_dir", str(tmp_path / "d1")])
    first = {r["path"]: r for r in csv.DictReader((tmp_path / "d1" / "manifest.csv").open()) if r["status"] == "kept"}
    rust = sorted(i.path for i in survey.images if i.image_class == "rust")
    # the inspector redraws one photo's rust as one box, and finds no rust at all on another
    redrawn, cleared = rust[0], rust[1]
    fixes = tmp_path / "corrections"
    fixes.mkdir()
    for name, boxes in ((redrawn, ((10.0, 12.0, 50.0, 40.0, 1.0),)), (cleared, ())):
        shutil.copy(tmp_path / "survey" / name, fixes / name)
        item = exports.ReviewItem(name, 120, 90, boxes, 0.5)
        (fixes / name).with_suffix(".xml").write_text(exports.voc_xml(item, "corrections"))
    argv = ["--input", str(tmp_path / "survey"), "--corrections", str(fixes), "--output_dir", str(tmp_path / "d2")]
    stats = build_dataset.run([*argv, "--previous_manifest", str(tmp_path / "d1" / "manifest.csv")])

    assert stats["records_total"] == len(first) and stats["rejects_by_reason"] == {}
    second = {
        r["sha256"]: r for r in csv.DictReader((tmp_path / "d2" / "manifest.csv").open()) if r["status"] == "kept"
    }
    records = {}
    for split in layout.SPLITS:
        for raw in tf.data.TFRecordDataset(sorted(str(p) for p in (tmp_path / "d2").glob(f"{split}-*.tfrecord"))):
            record = schema.from_example(raw.numpy())
            records[record.sha256] = (split, record)
    for name in (redrawn, cleared):
        before = first[str(tmp_path / "survey" / name)]
        after = second[before["sha256"]]
        assert after["path"] == str(fixes / name) and after["split"] == before["split"]
        assert records[before["sha256"]][0] == before["split"]
    split, record = records[first[str(tmp_path / "survey" / redrawn)]["sha256"]]
    assert [(b.xmin, b.ymin, b.xmax, b.ymax) for b in record.boxes] == [pytest.approx((10, 12, 50, 40), abs=1e-4)]
    assert records[first[str(tmp_path / "survey" / cleared)]["sha256"]][1].image_class == "no_rust"


def test_labelme_polygons_from_a_nights_mask_read_back_to_the_same_rust_pixels(tmp_path):
    """A mask at the scale the night scored it (half the photo) -> polygons in photo pixels -> the LabelMe
    reader -> rasterised: the same rust pixels as the mask upscaled (IoU >= 0.9), a hole included."""
    import numpy as np
    from PIL import Image

    from corrosion.data import regions
    from corrosion.inference import previews

    width, height = 200, 120
    mask = np.zeros((60, 100), np.uint8)
    mask[10:40, 5:45] = 255
    mask[20:30, 15:30] = 0  # a hole
    yy, xx = np.mgrid[:60, :100]
    mask[(yy - 35) ** 2 + (xx - 75) ** 2 <= 15**2] = 255  # a disc
    mask[55:60, 90:100] = 255  # touching the corner
    row = {"image_uri": "/night/deck 3.jpg", "image_sha256": "ab" * 32, "width": width, "height": height}
    masks = tmp_path / "masks"
    masks.mkdir()
    png = masks / previews.mask_name(row["image_uri"], row["image_sha256"])
    Image.fromarray(mask).save(png)

    polygons = review_queue.mask_outlines(str(masks), row)
    assert review_queue.mask_outlines(None, row) is None and len(polygons) == 4  # 3 regions and the hole
    folder = tmp_path / "labelme"
    folder.mkdir()
    Image.new("RGB", (width, height), (90, 90, 90)).save(folder / "deck.jpg")
    item = review_queue.exports.ReviewItem("deck.jpg", width, height, (), 0.9)
    (folder / "deck.json").write_text(json.dumps(review_queue.exports.labelme_json(item, "deck.jpg", polygons)))
    (image,) = _scan(folder)
    read = regions.rasterise([p for b in image.boxes for p in b.polygons], width, height) > 0
    truth = np.asarray(Image.fromarray(mask).resize((width, height), Image.Resampling.NEAREST)) > 0
    truth_filled = truth.copy()
    truth_filled[40:60, 30:60] = True  # the hole reads back as rust: polygons have no holes
    iou = (read & truth_filled).sum() / (read | truth_filled).sum()
    assert iou >= 0.9, iou


def _scan(folder: Path):
    scan = discovery.scan(str(folder), load_labels())
    assert scan.rejects == []
    return scan.images


def test_every_pre_annotation_file_has_its_tools_documented_shape(night, tmp_path):
    from support import tool_formats as tf

    queue = _queue(night, tmp_path / "q", budget=6)
    tasks = [
        tf.LabelStudioTask.model_validate(t) for t in json.loads((tmp_path / "q/label_studio/tasks.json").read_text())
    ]
    assert len(tasks) == len(queue) and sum(len(t.predictions[0].result) for t in tasks) > 0
    labelme = sorted((tmp_path / "q" / "labelme").glob("*.json"))
    assert len(labelme) == len(queue)
    for path in labelme:
        document = tf.LabelMeFile.model_validate(json.loads(path.read_text()))
        assert (path.parent / document.imagePath).is_file()
    coco = tf.CocoFile.model_validate(json.loads((tmp_path / "q" / "coco" / "annotations.json").read_text()))
    assert len(coco.images) == len(queue) and all((tmp_path / "q/coco" / i.file_name).is_file() for i in coco.images)
    assert {a.image_id for a in coco.annotations} <= {i.id for i in coco.images}
    boxed = next(
        t for t in json.loads((tmp_path / "q/label_studio/tasks.json").read_text()) if t["predictions"][0]["result"]
    )
    boxed["predictions"][0]["result"][0]["type"] = "rectangle"  # Label Studio's tag name, not its result type
    with pytest.raises(ValueError, match="rectanglelabels"):  # the models do catch a wrong file
        tf.LabelStudioTask.model_validate(boxed)
    boxed["predictions"][0]["result"][0] |= {"type": "rectanglelabels", "orig_width": 240}
    with pytest.raises(ValueError, match="orig_width"):
        tf.LabelStudioTask.model_validate(boxed)
