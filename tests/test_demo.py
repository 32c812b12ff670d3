"""The reduced demo (tiny sizes, random weights): every output exists and agrees with the others."""

import csv
import json
import os
from pathlib import Path

import pytest

from corrosion.inference import report_browser
from scripts import demo


@pytest.mark.slow
def test_tiny_demo_end_to_end(tmp_path):
    summary = demo.run_demo(tmp_path / "demo", data=None, tiny=True)
    size = demo.load_config(demo.DemoConfig, demo.config_path("demo.yaml")).tiny
    truth = json.loads((tmp_path / "demo" / "survey_night_truth.json").read_text())
    n_bad = 4  # truncated, empty, not_image, huge
    assert len(truth) == size.night_images + size.night_large
    assert summary["images"] == len(truth) + n_bad
    assert summary["errors"] == n_bad and summary["scored"] == len(truth)

    rows = [r for f in summary["results_csv"] for r in csv.DictReader(open(f, newline=""))]
    assert sorted(Path(r["image_uri"]).name for r in rows) == sorted(t["path"] for t in truth)
    errors = [r for f in summary["errors_csv"] for r in csv.DictReader(open(f, newline=""))]
    assert sorted(e["reason"] for e in errors) == ["corrupt_image", "empty_file", "not_an_image", "too_large"]

    report = Path(summary["report"]).read_text()
    # two nights at the same paths, filed ASSET/ZONE with EXIF: tonight's report has where and what changed
    assert {(r["asset"], r["zone"]) for r in rows} <= {(a, z) for a, (_, _, zs) in demo.ASSETS.items() for z in zs}
    assert all(r["gps_latitude"] and r["capture_time"].startswith(demo.NIGHTS[1]) for r in rows)
    changes = [r for f in summary["changes_csv"] for r in csv.DictReader(open(f, newline=""))]
    assert summary["changes"] == len(changes) and "missing_photo" in {c["change"] for c in changes}
    first_screen = report[: report.index('id="zones"')]
    assert "1</b> photo missing tonight" in first_screen and "gone_00.jpg" in report
    assert "<circle" in report  # the photos' GPS positions, drawn
    if not isinstance(report_browser.find_browser(), str):  # the real pipeline's report in Chromium, as the test's
        from test_report_browser import assert_first_screen_answers, assert_sound, chromium_on

        with chromium_on(Path(summary["report"]), tmp_path / "profile") as driver:
            assert_first_screen_answers(driver)
            assert_sound(driver, Path(summary["report"]))
    rust = [r for r in rows if r["is_rust"].lower() == "true"]
    assert summary["rust_images"] == len(rust)
    for row in rust:
        assert Path(row["image_uri"]).name in report
    previews = list(Path(summary["previews"]).glob("*.jpg"))
    assert len(previews) == len(rust)
    # the rust-region model the product ships scored every photo: its version on each row, a mask each
    assert {r["detector_version"].split("-")[0] for r in rows} == {"segmenter"}
    assert len(list(Path(summary["masks"]).glob("*.png"))) == len(rows)
    assert json.loads((tmp_path / "demo" / "demo_summary.json").read_text()) == summary


@pytest.mark.slow
def test_tiny_cloud_demo_runs_the_chain_on_gs_and_loads_bigquery(tmp_path):
    """make demo-cloud, reduced: every input and output on the GCS emulator, rows in the BigQuery emulator."""
    summary = demo.run_demo(tmp_path / "demo", data=None, tiny=True, cloud=True)
    size = demo.load_config(demo.DemoConfig, demo.config_path("demo.yaml")).tiny
    n_truth = size.night_images + size.night_large
    assert summary["scored"] == n_truth and summary["errors"] == 4
    assert summary["bigquery_rows"] == summary["scored"]
    assert all(f.startswith(f"gs://{demo.BUCKET}/results/") for f in summary["results_csv"] + summary["errors_csv"])
    assert summary["report"] == f"gs://{demo.BUCKET}/report/index.html"
    objects = tmp_path / "demo" / "local-cloud" / ".cloudstorage" / demo.BUCKET
    assert (objects / "report" / "index.html").is_file() and (objects / "dataset" / "manifest.csv").is_file()
    assert len(list((objects / "report" / "previews").glob("*.jpg"))) == summary["rust_images"]
    assert "STORAGE_EMULATOR_HOST" not in os.environ  # the demo leaves the caller's environment as it was


@pytest.mark.slow
def test_tiny_cycle_two_nights_with_review_corrections_retraining_and_a_decided_promotion(tmp_path):
    from scripts import demo_cycle

    summary = demo_cycle.run_cycle(tmp_path / "cycle", tiny=True)
    size = demo.load_config(demo.DemoConfig, demo.config_path("demo.yaml")).tiny
    models = summary["models"]
    served_1 = {kind: m["v1"] for kind, m in models.items()}
    assert summary["night_1"] == served_1 | {"scored": size.night_images}
    assert summary["corrected_photos"] == max(2, size.night_images // 2)
    for kind, m in models.items():
        assert m["v1"] != m["v2"] and m["v1"].startswith(kind)
        comparison = json.loads((tmp_path / "cycle" / "compare" / kind / "comparison.json").read_text())
        assert comparison["promote"] == m["promoted"]
        assert comparison["kind"] == ("classifier" if kind == "classifier" else "region model")
    served_2 = {kind: m["v2"] if m["promoted"] else m["v1"] for kind, m in models.items()}
    night_2, diff = summary["night_2"], summary["night_diff"]
    if served_2 != served_1:  # a new version: every photo is scored again, and the two nights compared
        assert night_2 == served_2 | {"scored": size.night_images + 4, "skipped": 0}
        assert diff["photos"] == {"both": size.night_images, "candidate only": 4}
        assert diff["versions"]["candidate"]["classifier_version"] == [served_2["classifier"]]
    else:  # the same versions: only the four new photos, nothing to compare
        assert night_2 == served_2 | {"scored": 4, "skipped": size.night_images}
        assert diff is None
