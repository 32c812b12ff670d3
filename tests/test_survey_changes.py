"""What changed since each asset's last survey: exact change rows on generated nights, the CSV, the
pipeline writing them (with the EXIF and asset columns), and the BigQuery tables on the emulator."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from corrosion.inference import results
from corrosion.review import survey_changes as sc

SHA = {name: f"{i:02d}" * 32 for i, name in enumerate("abcdefkst")}


def row(root: str, rel: str, area: float | None, rust: bool, day: str, **extra) -> dict:
    """A result row as the pipeline writes it (grade from the rusted area, asset/zone from the path)."""
    from corrosion.inference import grading

    asset, zone, name = rel.split("/")
    return {
        "image_uri": f"{root}/{rel}", "image_sha256": SHA[name[0]], "width": 64, "height": 48,
        "rust_probability": 0.9 if rust else 0.1, "is_rust": rust, "num_boxes": 1 if rust else 0,
        "boxes": "[]", "rust_area_fraction": area, "rust_grade": grading.astm_d610_grade(area),
        "classifier_version": "c1", "detector_version": "d1", "survey_id": "nightly",
        "processed_at": f"{day} 01:00:00.000000 UTC", "asset": asset, "zone": zone, **extra,
    }  # fmt: skip


def write_night(out: Path, day: str, root: str, rows: list[dict], errors=(), skipped=(), stem="nightly") -> Path:
    folder = out / f"date={day}"
    folder.mkdir(parents=True, exist_ok=True)
    columns = results.result_columns()
    lines = [results.csv_header(columns), *(results.csv_line(r, columns) for r in rows)]
    (folder / f"{stem}-results-00000-of-00001.csv").write_text("\n".join(lines) + "\n")
    err = [results.csv_header(results.ERROR_COLUMNS), *(results.csv_line(e, results.ERROR_COLUMNS) for e in errors)]
    (folder / f"{stem}-errors-00000-of-00001.csv").write_text("\n".join(err) + "\n")
    if skipped:
        cols = ("image_uri", "image_sha256")
        lines = [results.csv_header(cols), *(results.csv_line(s, cols) for s in skipped)]
        (folder / f"{stem}-skipped-00000-of-00001.csv").write_text("\n".join(lines) + "\n")
    (folder / f"{stem}-summary.json").write_text(json.dumps({"survey_root": root}))
    return folder


def three_nights(out: Path) -> dict:
    n1, n2, n3 = "/s/n1", "/s/n2", "/s/n3"
    write_night(out, "2026-12-01", n1, [
        row(n1, "hull-7/port/a.jpg", 0.0, False, "2026-12-01"),
        row(n1, "hull-7/port/b.jpg", 0.02, True, "2026-12-01"),
        row(n1, "hull-7/port/c.jpg", 0.0002, False, "2026-12-01"),
        row(n1, "hull-7/port/s.jpg", 0.0, False, "2026-12-01"),
        row(n1, "hull-7/stbd/d.jpg", 0.0, False, "2026-12-01"),
        row(n1, "tank-3/roof/t.jpg", 0.0, False, "2026-12-01"),
    ])  # fmt: skip
    # tank-3's last survey is this night, which holds no hull-7: each asset has its own last night
    write_night(out, "2026-12-02", n2, [row(n2, "tank-3/roof/t.jpg", 0.005, True, "2026-12-02")])
    tonight = [
        row(n3, "hull-7/port/a.jpg", 0.05, True, "2026-12-03"),
        row(n3, "hull-7/port/b.jpg", 0.025, True, "2026-12-03"),
        row(n3, "hull-7/port/e.jpg", 0.0, False, "2026-12-03"),
        row(n3, "hull-7/keel/k.jpg", 0.0, False, "2026-12-03"),
        row(n3, "tank-3/roof/t.jpg", 0.005, True, "2026-12-03"),
    ]
    errors = [
        {
            "image_uri": f"{n3}/hull-7/port/c.jpg",
            "stage": "decode",
            "reason": "corrupt_image",
            "message": "c: truncated",
        }
    ]
    skipped = [{"image_uri": f"{n3}/hull-7/port/s.jpg", "image_sha256": SHA["s"]}]
    folder = write_night(out, "2026-12-03", n3, tonight, errors, skipped)
    return {"rows": tonight, "errors": errors, "skipped": skipped, "root": n3, "folder": folder}


EXPECTED = [
    ("hull-7", "keel", "", "new_zone", "2026-12-01", "", "worst grade 10, max 0.0 %, mean 0.0 %, 1 photo",
     "a zone the last survey did not have"),
    ("hull-7", "port", "/s/n3/hull-7/port/a.jpg", "new_rust", "2026-12-01", "clean, grade 10, 0.0 %",
     "rust, grade 4, 5.0 %", "clean in the last survey"),
    ("hull-7", "port", "/s/n3/hull-7/port/c.jpg", "unreadable_tonight", "2026-12-01", "clean, grade 9, 0.0 %",
     "decode: corrupt_image", "c: truncated"),
    ("hull-7", "port", "/s/n3/hull-7/port/a.jpg", "worse_zone", "2026-12-01",
     "worst grade 5, max 2.0 %, mean 0.5 %, 4 photos", "worst grade 4, max 5.0 %, mean 1.9 %, 4 photos",
     "worst grade 5 -> 4 (margin 1)"),
    ("hull-7", "stbd", "/s/n1/hull-7/stbd/d.jpg", "missing_photo", "2026-12-01", "clean, grade 10, 0.0 %", "",
     "in the survey of 2026-12-01, not in tonight's input"),
]  # fmt: skip


def test_changes_against_each_assets_last_survey_are_exact(tmp_path):
    night = three_nights(tmp_path / "out")
    files = sc.previous_nights(str(tmp_path / "out"), "2026-12-03", str(night["folder"]))
    assert [(n.night, n.stem) for n in files] == [("2026-12-01", "nightly"), ("2026-12-02", "nightly")]
    earlier, scored = sc.read_nights(files)
    changes, compared = sc.survey_changes(
        night["rows"], night["errors"], night["root"], earlier, night["skipped"], scored
    )
    assert [tuple(c[k] or "" for k in sc.CHANGE_COLUMNS) for c in changes] == EXPECTED
    assert compared == {"hull-7": "2026-12-01", "tank-3": "2026-12-02"}

    # the same night with a wider grade margin and a 1-point area margin: the zone is worse by its areas
    changes, _ = sc.survey_changes(
        night["rows"], night["errors"], night["root"], earlier, night["skipped"], scored, grade_margin=2,
        area_margin_pct=1.0,
    )  # fmt: skip
    worse = [c["detail"] for c in changes if c["change"] == "worse_zone"]
    assert worse == ["max rusted 2.0 % -> 5.0 % (margin 1 points); mean rusted 0.5 % -> 1.9 % (margin 1 points)"]


def test_no_earlier_night_gives_no_changes_and_the_csv_still_has_its_header(tmp_path):
    night = three_nights(tmp_path / "out")
    changes, compared = sc.survey_changes(night["rows"], night["errors"], night["root"], [])
    assert changes == [] and compared == {}
    text = sc.changes_csv(changes)
    assert text == ",".join(sc.CHANGE_COLUMNS) + "\n"
    path = tmp_path / "c.csv"
    path.write_text(sc.changes_csv([dict(zip(sc.CHANGE_COLUMNS, e, strict=True)) for e in EXPECTED]))
    back = sc.read_changes(str(path))
    assert [tuple(c[k] or "" for k in sc.CHANGE_COLUMNS) for c in back] == EXPECTED


def test_a_night_without_a_summary_takes_its_photos_common_folder_as_root(tmp_path):
    folder = tmp_path / "date=2026-12-01"
    folder.mkdir()
    night = sc.NightFiles("2026-12-01", str(folder), "old", ())
    assert sc.survey_root_of(night, ["/s/n1/hull/port/a.jpg", "/s/n1/hull/stbd/b.jpg"]) == "/s/n1/hull"
    assert sc.survey_root_of(night, ["gs://b/n1/x/a.jpg", "gs://b/n1/y/b.jpg"]) == "gs://b/n1"


def test_previous_glob_names_the_nights_and_must_match(tmp_path):
    night = three_nights(tmp_path / "out")
    glob = str(tmp_path / "out" / "date=2026-12-02" / "*-results-*.csv")
    assert [n.night for n in sc.previous_nights("unused", "2026-12-03", str(night["folder"]), glob)] == ["2026-12-02"]
    with pytest.raises(FileNotFoundError, match="--previous /nowhere/\\*.csv matches no result CSV"):
        sc.previous_nights("unused", "2026-12-03", str(night["folder"]), "/nowhere/*.csv")


def test_the_changes_schema_file_holds_the_change_columns_then_the_night_keys():
    assert [f.name for f in sc.load_schema()] == [*sc.CHANGE_COLUMNS, "survey_id", "night"]
