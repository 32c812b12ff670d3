"""Batch inference end to end on DirectRunner: generated surveys, tiny models that obey the contract.

The classifier is trained by ``training.train_classifier`` on a tiny generated data set (random
weights, one epoch: a real exported model, meaningless scores). Most tests use the colour-rule
detector test double (``tests/support/model_doubles.py``): deterministic boxes, so geometry,
tiling and counts can be asserted exactly. One test runs a tiny trained detector end to end.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from support import model_doubles as doubles

from corrosion.inference import grading, results
from corrosion.models import serving
from corrosion.testing import synthetic
from pipelines import batch_inference as bi
from pipelines.inference import transforms
from pipelines.inference.config import RunInfo

BAD_REASONS = {"truncated": "corrupt_image", "empty": "empty_file", "not_image": "not_an_image", "huge": "too_large"}


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("inference")


@pytest.fixture(scope="module")
def classifier(work) -> str:
    """A classifier exported by the classifier training job (tiny: random weights, one epoch)."""
    from support.datasets import write_dataset

    from training.classifier import train as train_classifier

    data = write_dataset(work / "clf_data", {"train": (4, 4), "validation": (2, 2), "test": (2, 2)}, size=(96, 72))
    config = work / "classifier.yaml"
    config.write_text(
        "backbone: MobileNetV2\nbackbone_kwargs: {alpha: 0.35}\ninput_size: 32\nweights: none\nhead_epochs: 1\n"
        "fine_tune_epochs: 0\nbaseline: false\nfeature_augmented_copies: 0\nbatch_size: 8\n"
    )
    model_dir = work / "classifier"
    assert train_classifier.main(["--data", str(data), "--model_dir", str(model_dir), "--config", str(config)]) == 0
    return str(model_dir)


@pytest.fixture(scope="module")
def detector(work) -> str:
    return doubles.export_colour_rule_detector(str(work / "detector"), input_size=64)


@pytest.fixture(scope="module")
def survey(work) -> synthetic.Survey:
    # No hard negatives: the colour-rule double would call copper paint rust.
    return synthetic.generate_survey(
        work / "survey",
        "flat",
        n_rust=4,
        n_clean=3,
        size=(320, 240),
        hard_negative_fraction=0.0,
        orientations=(1, 6),
        bad_files=tuple(BAD_REASONS),
    )


def run_pipeline(*args: str) -> dict:
    """The job as users run it locally: no --runner, so DirectRunner's in-process engine, threaded."""
    return bi.run(list(args))


def csv_rows(pattern: str) -> list[dict]:
    paths = sorted(str(p) for p in Path("/").glob(pattern.lstrip("/")))
    assert paths, f"no file matches {pattern}"
    return results.read_csv_rows(paths)


def skipped_rows(path: Path) -> list[dict]:
    import csv

    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        assert tuple(reader.fieldnames) == transforms.SKIPPED_COLUMNS
        return list(reader)


def error_rows(pattern: str) -> list[dict]:
    import csv

    out = []
    for p in sorted(Path("/").glob(pattern.lstrip("/"))):
        with open(p, newline="") as handle:
            reader = csv.DictReader(handle)
            assert tuple(reader.fieldnames) == results.ERROR_COLUMNS
            out += list(reader)
    return out


def full_run_args(survey: synthetic.Survey, classifier: str, detector: str, out: Path, report_dir: Path) -> list[str]:
    """Arguments of a full run of ``survey``: classifier + detector, previews and report."""
    return [
        "--input", str(survey.root / "*"),
        "--classifier", classifier,
        "--detector", detector,
        "--output", str(out),
        "--survey_id", "hull-7",
        "--report", str(report_dir / "survey.html"),
    ]  # fmt: skip


@pytest.fixture(scope="module")
def night(work, survey, classifier, detector) -> dict:
    """One full run: classifier + detector, previews and report."""
    summary = run_pipeline(*full_run_args(survey, classifier, detector, work / "out", work / "report"))
    return {
        "summary": summary,
        "rows": csv_rows(summary["results"]),
        "errors": error_rows(summary["errors"]),
        "report": work / "report" / "survey.html",
        "previews": work / "report" / "previews",
    }


def overlaps(box, truth) -> bool:
    return min(box[2], truth.xmax) > max(box[0], truth.xmin) and min(box[3], truth.ymax) > max(box[1], truth.ymin)


# ---------------------------------------------------------------- tests


def test_every_file_is_a_result_or_an_error_row(night, survey):
    rows, errors, counters = night["rows"], night["errors"], night["summary"]["counters"]
    files = [p for p in survey.root.iterdir() if p.is_file()]
    assert len(rows) == len(survey.images) == 7
    assert len(errors) == len(survey.bad_files) == 4
    assert len(rows) + len(errors) == len(files)
    assert sorted(Path(r["image_uri"]).name for r in rows) == sorted(Path(i.path).name for i in survey.images)
    by_name = {Path(e["image_uri"]).name: e for e in errors}
    for bad in survey.bad_files:
        error = by_name[Path(bad.path).name]
        assert error["stage"] == "decode" and error["reason"] == BAD_REASONS[bad.kind]
        assert Path(bad.path).name in error["message"]
    assert counters["files_matched"] == len(files)
    assert counters["images_scored"] == 7 and counters["images_failed"] == 4 and counters["images_skipped"] == 0
    assert night["summary"]["all_inputs_accounted_for"]


def test_result_rows_columns_types_and_geometry(night, survey, classifier, detector):
    rows = night["rows"]
    header = Path(next(iter(Path("/").glob(night["summary"]["results"].lstrip("/"))))).read_text().splitlines()[0]
    assert header.split(",") == list(results.result_columns())
    clf, det = serving.read_metadata(classifier), serving.read_metadata(detector)
    truth = {Path(i.path).name: i for i in survey.images}
    for row in rows:
        t = truth[Path(row["image_uri"]).name]
        assert (row["width"], row["height"]) == (t.width, t.height)  # EXIF orientation honoured
        assert row["image_sha256"] == hashlib.sha256(Path(row["image_uri"]).read_bytes()).hexdigest()
        assert 0.0 <= row["rust_probability"] <= 1.0
        assert row["is_rust"] == (row["rust_probability"] >= clf.threshold)
        assert (row["classifier_version"], row["detector_version"]) == (clf.version, det.version)
        assert row["survey_id"] == "hull-7"
        boxes = json.loads(row["boxes"])
        assert row["num_boxes"] == len(boxes)
        for b in boxes:
            assert len(b) == 5 and 0 <= b[0] < b[2] <= t.width and 0 <= b[1] < b[3] <= t.height and 0 < b[4] <= 1
        fraction = grading.rust_area_fraction([b[:4] for b in boxes], t.width, t.height)
        assert row["rust_area_fraction"] == pytest.approx(fraction, abs=1e-6)
        assert row["rust_grade"] == grading.astm_d610_grade(row["rust_area_fraction"])
        if t.image_class == "rust":  # the colour double finds every patch region, in oriented pixels
            assert boxes and all(any(overlaps(b, tb) for b in boxes) for tb in t.boxes)
        else:
            assert boxes == [] and row["rust_grade"] == 10


def test_bigquery_rows_and_table_settings_without_network(work, survey, classifier, monkeypatch):
    """The rows handed to WriteToBigQuery validate against configs/bigquery_schema.json."""
    import apache_beam as beam

    captured: dict = {}
    real = beam.io.WriteToBigQuery

    class FakeWriteToBigQuery(beam.PTransform):
        Method = real.Method

        def __init__(self, **kwargs):
            super().__init__()
            captured.update(kwargs)

        def expand(self, rows):
            return rows | beam.Map(json.dumps, sort_keys=True) | beam.io.WriteToText(str(work / "bq" / "rows"))

    monkeypatch.setattr(beam.io, "WriteToBigQuery", FakeWriteToBigQuery)
    monkeypatch.setattr(bi, "clear_bigquery_night", lambda *a: captured.setdefault("cleared", True))
    monkeypatch.setattr(bi.cloud_checks, "check_bigquery", lambda table: captured.setdefault("checked", table))
    from corrosion.review import survey_changes

    def load_changes(table, rows, survey_id, night):  # the changes table's load, after the pipeline
        captured["changes"] = (table, list(rows), survey_id)
        return len(rows)

    monkeypatch.setattr(survey_changes, "load_bigquery", load_changes)
    run_pipeline(
        "--input", str(survey.root / "*.jpg"), "--classifier", classifier, "--output", str(work / "bq_out"),
        "--bigquery_table", "proj:surveys.rust", "--survey_id", "hull-7",
    )  # fmt: skip
    assert captured["changes"] == ("proj:surveys.rust", [], "hull-7")  # a first night: nothing changed
    rows = [json.loads(line) for p in (work / "bq").glob("rows*") for line in p.read_text().splitlines()]
    schema = results.load_schema()
    assert len(rows) == len(survey.images)
    for row in rows:
        assert results.validate_row(row, schema) == []
        assert row["num_boxes"] is None and row["detector_version"] is None and row["rust_grade"] is None
    assert captured["cleared"] and captured["table"] == captured["checked"] == "proj:surveys.rust"
    assert captured["method"] == real.Method.FILE_LOADS
    assert captured["additional_bq_parameters"] == {
        "timePartitioning": {"type": "DAY", "field": "processed_at"},
        "clustering": {"fields": ["survey_id"]},
    }
    assert [f.name for f in captured["schema"].fields] == list(results.result_columns())
    sql, params = bi.clear_statement(
        "proj:surveys.rust", bi.InferenceConfig(), _info_for("hull-7", dt.date(2026, 11, 24))
    )
    assert "`proj.surveys.rust`" in sql and params == {"run_date": "2026-11-24", "survey_id": "hull-7"}


def _info_for(survey_id: str, day: dt.date) -> RunInfo:
    meta = serving.ModelMetadata("classifier", "v", 32, 0.5, ("no_rust", "rust"), "x", "none")
    return RunInfo(survey_id, day, "", meta, None, "", survey_id)


def test_skip_processed_scores_only_new_images_and_reruns_do_not_duplicate(work, classifier, detector):
    root = work / "nightly"
    first = synthetic.generate_survey(root / "archive", "flat", n_rust=2, n_clean=2, size=(160, 120), seed=5)
    out = str(root / "out")
    common = ["--input", str(root / "archive" / "*.jpg"), "--classifier", classifier, "--output", out]
    common += ["--skip_processed", out, "--survey_id", "tank-3"]

    s1 = run_pipeline(*common, "--run_date", "2026-11-20")
    assert s1["counters"]["images_scored"] == 4 and s1["counters"]["images_skipped"] == 0
    s2 = run_pipeline(*common, "--run_date", "2026-11-21")
    assert s2["counters"]["images_scored"] == 0 and s2["counters"]["images_skipped"] == 4
    assert csv_rows(s2["results"]) == []  # header-only file for the night

    # The archive grows: only the new photos are scored.
    new = synthetic.generate_survey(root / "new", "flat", n_rust=1, n_clean=1, size=(160, 120), seed=9)
    for image in new.images:
        shutil.copy(root / "new" / image.path, root / "archive" / f"new_{Path(image.path).name}")
    s3 = run_pipeline(*common, "--run_date", "2026-11-22")
    rows3 = csv_rows(s3["results"])
    assert sorted(Path(r["image_uri"]).name for r in rows3) == sorted(f"new_{Path(i.path).name}" for i in new.images)
    assert s3["counters"]["images_skipped"] == 4

    # Re-running the same night gives the same rows, not duplicates.
    s3_again = run_pipeline(*common, "--run_date", "2026-11-22")

    def by_uri(rows: list[dict]) -> list[dict]:
        return sorted(rows, key=lambda r: r["image_uri"])

    assert by_uri(csv_rows(s3_again["results"])) == by_uri(rows3)
    shards = sorted(p.name for p in (root / "out" / "date=2026-11-22").glob("tank-3-results-*.csv"))
    assert shards == [f"tank-3-results-{i:05d}-of-{len(shards):05d}.csv" for i in range(len(shards))]  # one run's set

    # Other model versions have not scored anything yet: everything is scored again.
    s4 = run_pipeline(*common, "--detector", detector, "--run_date", "2026-11-23")
    assert s4["counters"]["images_scored"] == 6 and s4["counters"]["images_skipped"] == 0
    all_rows = [r for d in ("20", "21", "22") for r in csv_rows(f"{out}/date=2026-11-{d}/tank-3-results-*.csv")]
    assert len(all_rows) == len({r["image_sha256"] for r in all_rows}) == len(first.images) + len(new.images)


def test_skip_processed_skips_a_photo_only_where_its_path_was_scored_with_the_same_bytes(work, classifier):
    """History is joined by path and checked by content (no worker holds every hash): bytes seen at
    another path, or a path whose bytes changed, are scored again."""
    root = work / "by_path"
    survey = synthetic.generate_survey(root / "archive", "flat", n_rust=1, n_clean=2, size=(160, 120), seed=21)
    a, b, c = sorted(root / "archive" / image.path for image in survey.images)
    out = str(root / "out")
    common = ["--input", str(root / "archive" / "*.jpg"), "--classifier", classifier, "--output", out]
    common += ["--skip_processed", out, "--survey_id", "deck-1"]
    assert run_pipeline(*common, "--run_date", "2026-11-20")["counters"]["images_scored"] == 3

    shutil.copy(c, a)  # a's path now holds c's bytes (scored, but at c)
    shutil.copy(b, root / "archive" / "z_copy_of_b.jpg")  # b's bytes at a new path
    night = run_pipeline(*common, "--run_date", "2026-11-21")
    scored = sorted(Path(r["image_uri"]).name for r in csv_rows(night["results"]))
    skipped = [r for p in Path(out, "date=2026-11-21").glob("deck-1-skipped-*.csv") for r in skipped_rows(p)]
    assert scored == [a.name, "z_copy_of_b.jpg"]
    assert sorted(Path(r["image_uri"]).name for r in skipped) == [b.name, c.name]
    assert {r["image_sha256"] for r in skipped} == {hashlib.sha256(p.read_bytes()).hexdigest() for p in (b, c)}
    assert night["counters"]["images_skipped"] == 2 and night["all_inputs_accounted_for"]


def test_the_history_join_hands_each_file_its_own_paths_hashes_and_passes_listing_problems_through():
    from corrosion.core import listing

    found = listing.Found("/survey/deck/a.jpg", 10)
    problem = listing.Problem("/survey/deck/a.jpg", listing.DANGLING_SYMLINK, "dangling")
    assert transforms.listing_key(found) == transforms.row_uri(found.path) == "/survey/deck/a.jpg"  # as rows carry it
    out = list(transforms.with_scored(("/survey/deck/a.jpg", {"tonight": [found, problem], "history": ["s1", "s2"]})))
    assert out[0].scored == frozenset({"s1", "s2"}) and out[0] == found
    assert out[1] is problem  # an error row to be, untouched
    assert list(transforms.with_scored(("/gone.jpg", {"tonight": [], "history": ["s3"]}))) == []  # history only


def test_rerun_removes_stale_shards_of_the_same_night_and_survey_only(tmp_path):
    night = tmp_path / "date=2026-11-24"
    night.mkdir()
    for name in ("s-results-00000-of-00002.csv", "s-results-00001-of-00002.csv", "other-results-00000-of-00001.csv"):
        (night / name).write_text("old\n")
    (night / "s-results-00000-of-00001.csv").write_text("old\n")  # same name and size as this run's shard
    staging = night / ".staging-run"
    staging.mkdir()
    (staging / "s-results-00000-of-00001.csv").write_text("new\n")
    removed = transforms.commit_outputs(
        None, str(staging), str(night), {"s-results": [str(staging / "s-results-00000-of-00001.csv")]}
    )
    assert removed == 2
    assert sorted(p.name for p in night.iterdir()) == [
        "other-results-00000-of-00001.csv",
        "s-results-00000-of-00001.csv",
    ]
    assert (night / "s-results-00000-of-00001.csv").read_text() == "new\n"  # replaced, though the size matched


def test_input_list_dedupes_and_reports_missing_and_oversized_files(work, survey, classifier):
    listed = work / "list.txt"
    images = sorted(p for p in survey.root.glob("*.jpg") if not p.name.startswith("bad_"))
    listed.write_text(f"# tonight\n{images[0]}\n{images[1]}\n{work / 'gone.jpg'}\n")
    big = work / "extra" / "big.jpg"
    big.parent.mkdir()
    big.write_bytes(np.random.default_rng(0).bytes(300_000))
    config = work / "small_files.yaml"
    config.write_text("max_file_bytes: 200000\n")
    summary = run_pipeline(
        "--input", str(work / "extra" / "*"), "--input_list", str(listed), "--classifier", classifier,
        "--output", str(work / "list_out"), "--config", str(config),
    )  # fmt: skip
    rows, errors = csv_rows(summary["results"]), error_rows(summary["errors"])
    assert sorted(r["image_uri"] for r in rows) == [str(images[0]), str(images[1])]
    assert {(Path(e["image_uri"]).name, e["stage"], e["reason"]) for e in errors} == {
        ("gone.jpg", "match", "missing_file"),
        ("big.jpg", "read", "file_too_large"),
    }
    assert summary["all_inputs_accounted_for"] and summary["survey_id"] == "extra"  # the --input folder


def test_previews_and_report_name_every_rust_image(night, survey):
    rows = night["rows"]
    html = night["report"].read_text()
    flagged = [r for r in rows if r["is_rust"] or r["num_boxes"]]
    assert {Path(i.path).name for i in survey.rust_images} <= {Path(r["image_uri"]).name for r in flagged}
    positions = []
    for row in flagged:
        assert row["image_uri"] in html
        positions.append(html.index(f'<span class="uri">{row["image_uri"]}</span>'))
    by_probability = [r["image_uri"] for r in sorted(flagged, key=lambda r: (-r["rust_probability"], r["image_uri"]))]
    assert [r["image_uri"] for _, r in sorted(zip(positions, flagged, strict=True))] == by_probability
    links = re.findall(r'<a href="([^"]+)"><img data-thumb=', html)  # the gallery's, filled in lazily
    assert len(links) == len(flagged)
    for link in links:
        preview = night["report"].parent / link
        with Image.open(preview) as img:
            assert img.format == "JPEG" and max(img.size) <= 1600
    assert len(list(night["previews"].glob("*.jpg"))) == len(flagged)
    assert f"<tr><td>Unreadable files (errors)</td><td>{len(survey.bad_files)}</td></tr>" in html


def test_the_command_runs_with_workers_in_other_processes_as_on_dataflow(work, survey, classifier, detector, night):
    """``python -m`` makes the job module ``__main__``; elements crossing to a worker process
    must not refer to classes there (Dataflow workers have their own ``__main__``)."""
    import subprocess
    import sys

    args = [
        *full_run_args(survey, classifier, detector, work / "out_processes", work / "report_processes"),
        "--direct_running_mode=multi_processing",
        "--direct_num_workers=2",
    ]
    repo = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, "-m", "pipelines.batch_inference", *args], cwd=repo, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout[done.stdout.index("{") :])
    assert summary["all_inputs_accounted_for"]
    key = ("image_uri", "rust_probability", "boxes")
    threaded = sorted(tuple(r[k] for k in key) for r in night["rows"])
    assert sorted(tuple(r[k] for k in key) for r in csv_rows(summary["results"])) == threaded
    assert len(error_rows(summary["errors"])) == len(survey.bad_files)
    assert len(list((work / "report_processes" / "previews").glob("*.jpg"))) == len(
        list(night["previews"].glob("*.jpg"))
    )


def test_the_litert_copy_gives_the_rows_of_the_savedmodel(work, survey, night):
    """The classifier's LiteRT copy (the default where present) must not change a decision."""
    assert night["summary"]["classifier_runtime"] == "litert"  # the trained classifier has its copy
    # A random CNN: its scores differ from image to image (the one-epoch trained one is near-constant).
    classifier = doubles.export_tiny_classifier(str(work / "random_lite"), input_size=32, seed=3, lite=True)
    rows = {}
    for runtime in ("litert", "savedmodel"):
        summary = run_pipeline(
            "--input", str(survey.root / "*"), "--classifier", classifier, "--output", str(work / f"out_{runtime}"),
            "--classifier_runtime", runtime,
        )  # fmt: skip
        assert summary["classifier_runtime"] == runtime and summary["all_inputs_accounted_for"]
        rows[runtime] = {r["image_uri"]: r for r in csv_rows(summary["results"])}
    lite, saved = rows["litert"], rows["savedmodel"]
    assert saved.keys() == lite.keys() and len(saved) == len(survey.images)
    assert len({r["rust_probability"] for r in saved.values()}) > 1
    for uri, row in saved.items():
        assert row["rust_probability"] == pytest.approx(lite[uri]["rust_probability"], abs=1e-5), uri
        assert row["is_rust"] == lite[uri]["is_rust"], uri


def test_a_model_folder_re_exported_after_launch_fails_the_worker_load_naming_both_versions(
    work, classifier, detector, tmp_path
):
    """Rows are labelled with the version read at launch: a worker must not score them with another model."""
    import dataclasses

    from pipelines.inference.handlers import ClassifierHandler, DetectorHandler, ModelChangedError

    def re_export(source: str, name: str) -> tuple[str, serving.ModelMetadata]:
        """A copy of ``source`` whose metadata.json says another version, as a re-export leaves it."""
        model_dir = str(shutil.copytree(source, tmp_path / name))
        at_launch = serving.read_metadata(model_dir)
        serving.write_metadata(model_dir, dataclasses.replace(at_launch, version=at_launch.version + "-retrained"))
        return model_dir, at_launch

    clf_dir, clf_meta = re_export(classifier, "classifier")
    det_dir, det_meta = re_export(detector, "detector")
    lite_classifier = ClassifierHandler(clf_dir, clf_meta, 8, runtime="litert")
    handlers = (
        (lite_classifier, clf_meta),
        (ClassifierHandler(clf_dir, clf_meta, 8, runtime="savedmodel"), clf_meta),
        (DetectorHandler(det_dir, det_meta, bi.InferenceConfig(), runtime="savedmodel"), det_meta),
    )
    for handler, meta in handlers:
        version = re.escape(meta.version)
        with pytest.raises(
            ModelChangedError, match=f"held {meta.kind} {version} at launch and holds {version}-retrained"
        ):
            handler.load_model()
    # an export in progress has already removed the LiteRT copy: still the same clear error, not a missing file
    (Path(clf_dir) / serving.CLASSIFIER_LITE_FILE).unlink()
    with pytest.raises(ModelChangedError, match="changed during this run"):
        lite_classifier.load_model()
    # the folder as it was at launch loads and scores
    unchanged = ClassifierHandler(classifier, serving.read_metadata(classifier), 8, runtime="litert").load_model()
    assert unchanged(np.zeros((2, clf_meta.input_size, clf_meta.input_size, 3), np.float32)).shape == (2,)


def test_detector_gate_runs_the_detector_only_above_it(work, survey, detector):
    # A random CNN, whose scores differ from image to image (the one-epoch trained one is near-constant).
    classifier = doubles.export_tiny_classifier(str(work / "random_classifier"), input_size=32, seed=3)
    ungated = run_pipeline(
        "--input", str(survey.root / "*.jpg"), "--classifier", classifier, "--output", str(work / "ungated")
    )
    probabilities = sorted(r["rust_probability"] for r in csv_rows(ungated["results"]))
    gate = probabilities[len(probabilities) // 2]  # the median: images on both sides of the gate
    config = work / "gated.yaml"
    config.write_text(f"detector_gate: {gate!r}\n")
    summary = run_pipeline(
        "--input", str(survey.root / "*.jpg"), "--classifier", classifier, "--detector", detector,
        "--output", str(work / "gated_out"), "--config", str(config),
    )  # fmt: skip
    rows = csv_rows(summary["results"])
    truth = {Path(i.path).name: i for i in survey.images}
    below = [r for r in rows if r["rust_probability"] < gate]
    above_rust = [r for r in rows if r["rust_probability"] >= gate and truth[Path(r["image_uri"]).name].boxes]
    assert len(rows) == len(survey.images) and 0 < len(below) < len(rows)
    assert all(r["num_boxes"] == 0 and r["rust_grade"] == 10 for r in below)
    assert all(r["num_boxes"] > 0 for r in above_rust)
    assert summary["counters"]["detector_views"] == len(rows) - len(below)


def test_tiling_finds_a_small_spot_in_a_12_mp_photo_that_one_downscaled_pass_misses(work, classifier, detector):
    rng = np.random.default_rng(11)
    pixels, boxes = synthetic.render(rng, 4000, 3000, 1, "steel", patch_scale=(0.009, 0.011))
    assert max(boxes[0].xmax - boxes[0].xmin, boxes[0].ymax - boxes[0].ymin) < 60  # a spot: < 0.01 % of the photo
    folder = work / "big_photo"
    folder.mkdir()
    (folder / "hull.jpg").write_bytes(synthetic.encode_image(pixels, "JPEG", orientation=6))  # stored as 3000 x 4000
    found = {}
    for name, tiling in (("tiled", "true"), ("single", "false")):
        config = work / f"{name}.yaml"
        config.write_text(f"tiling: {{enabled: {tiling}, tile_size: 512, overlap: 96}}\n")
        summary = run_pipeline(
            "--input", str(folder / "*.jpg"), "--classifier", classifier, "--detector", detector,
            "--output", str(work / f"big_{name}"), "--config", str(config),
        )  # fmt: skip
        (row,) = csv_rows(summary["results"])
        assert (row["width"], row["height"]) == (4000, 3000)
        found[name] = json.loads(row["boxes"])
    assert found["single"] == []
    assert len(found["tiled"]) == 1
    box, truth = found["tiled"][0], boxes[0]
    assert overlaps(box, truth)
    centre = ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)
    assert abs(centre[0] - (truth.xmin + truth.xmax) / 2) < 25 and abs(centre[1] - (truth.ymin + truth.ymax) / 2) < 25


def test_end_to_end_with_a_tiny_trained_detector(work, survey, classifier):
    from support.datasets import write_dataset

    from training.detector import train as train_detector
    from training.detector.config import load_detector_config

    data = write_dataset(work / "det_data", {"train": (2, 1), "validation": (1, 1), "test": (1, 1)}, size=(96, 72))
    config = load_detector_config(
        None,
        {
            "model": {"input_size": 64, "alpha": 0.35, "fpn_channels": 16, "head_depth": 1},
            "weights": "none",
            "head_epochs": 1,
            "fine_tune_epochs": 0,
            "batch_size": 4,
            "eval_every": 1,
        },
    )
    train_detector.train(str(data), str(work / "trained_detector"), config)
    meta = serving.read_metadata(str(work / "trained_detector"))
    summary = run_pipeline(
        "--input", str(survey.root / "*"), "--classifier", classifier, "--detector", str(work / "trained_detector"),
        "--output", str(work / "trained_out"),
    )  # fmt: skip
    rows, errors = csv_rows(summary["results"]), error_rows(summary["errors"])
    assert len(rows) == 7 and len(errors) == 4
    assert summary["detector_runtime"] == "litert"  # train_detector exports the network's LiteRT copy
    schema = results.load_schema()
    for row in rows:
        assert results.validate_row(row, schema) == []
        assert row["detector_version"] == meta.version
        for b in json.loads(row["boxes"]):
            assert (
                0 <= b[0] <= b[2] <= row["width"]
                and 0 <= b[1] <= b[3] <= row["height"]
                and b[4] >= meta.threshold - 1e-6
            )
    # The SavedModel alone finds the same boxes (a box a hair either side of the threshold aside).
    saved = run_pipeline(
        "--input", str(survey.root / "*"), "--classifier", classifier, "--detector", str(work / "trained_detector"),
        "--output", str(work / "trained_out_savedmodel"), "--detector_runtime", "savedmodel",
    )  # fmt: skip
    assert saved["detector_runtime"] == "savedmodel"
    by_uri = {r["image_uri"]: json.loads(r["boxes"]) for r in csv_rows(saved["results"])}
    assert by_uri.keys() == {r["image_uri"] for r in rows}
    for row in rows:
        for x, y in (
            (json.loads(row["boxes"]), by_uri[row["image_uri"]]),
            (by_uri[row["image_uri"]], json.loads(row["boxes"])),
        ):
            for b in x:
                if b[4] >= meta.threshold + 0.01:
                    close = [c for c in y if np.abs(np.subtract(b[:4], c[:4])).max() < 0.5 and abs(b[4] - c[4]) < 1e-3]
                    assert close, (row["image_uri"], b, y)


def _threads_after(code: str) -> str:
    import subprocess
    import sys

    script = (
        "import tensorflow as tf\n"
        "from pipelines.inference.handlers import limit_tf_threads\n"
        f"{code}\n"
        "limit_tf_threads(1)\n"
        "print('THREADS', tf.config.threading.get_intra_op_parallelism_threads())\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    return done.stdout.split("THREADS")[-1].strip()


def test_tf_threads_per_call_applies_before_the_first_op_and_is_left_alone_after():
    assert _threads_after("") == "1"
    # A worker whose TensorFlow already ran keeps its setting instead of failing.
    assert _threads_after("tf.constant(1.0) + 1.0") == "0"
