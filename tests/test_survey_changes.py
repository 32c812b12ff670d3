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


# ---------------------------------------------------------------- the pipeline writes them


def photo(path: Path, rust: bool, gps: dict | None = None, when: str | None = None) -> None:
    """A 128x96 JPEG: grey, with a rust-coloured patch (what the colour-rule doubles call rust)."""
    import numpy as np
    from PIL import ExifTags, Image

    pixels = np.full((96, 128, 3), 120, np.uint8)
    if rust:
        pixels[20:60, 30:90] = (170, 90, 40)
    e = Image.Exif()
    e[0x0110] = "Survey Cam 2"
    if gps:
        e[ExifTags.IFD.GPSInfo] = gps
    if when:
        e[ExifTags.IFD.Exif] = {0x9003: when}
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, "JPEG", quality=95, exif=e.tobytes())


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, str]:
    from support import model_doubles as doubles

    root = tmp_path_factory.mktemp("models")
    return {
        "classifier": doubles.export_colour_rule_classifier(str(root / "classifier")),
        "regions": doubles.export_colour_rule_segmenter(str(root / "segmenter"), input_size=64),
    }


def night_run(models: dict, photos: Path, out: Path, day: str, *extra: str) -> dict:
    from pipelines import batch_inference as bi

    return bi.run([
        "--input", f"{photos}/**.jpg", "--classifier", models["classifier"], "--regions", models["regions"],
        "--output", str(out), "--survey_id", "hull-7-nightly", "--run_date", day,
        "--asset_pattern", "{asset}/{zone}/...", *extra,
    ])  # fmt: skip


GPS = {1: "N", 2: (59.0, 26.0, 31.5), 3: "W", 4: (10.0, 45.0, 0.0), 6: 12.5}


def test_two_nights_through_the_pipeline_give_where_columns_changes_csv_and_report(models, tmp_path):
    n1, n2, out = tmp_path / "n1", tmp_path / "n2", tmp_path / "out"
    for rel in ("hull-7/port/a.jpg", "hull-7/port/b.jpg", "hull-7/stbd/d.jpg"):
        photo(n1 / rel, rust=False, gps=GPS, when="2026:12:01 10:00:00")
    photo(n2 / "hull-7/port/a.jpg", rust=True, gps=GPS, when="2026:12:02 10:00:00")
    photo(n2 / "hull-7/port/b.jpg", rust=False)
    (n2 / "loose.jpg").write_bytes((n2 / "hull-7/port/b.jpg").read_bytes())
    first = night_run(models, n1, out, "2026-12-01")
    assert first["changes"] == {"file": f"{out}/date=2026-12-01/hull-7-nightly-changes.csv", "rows": 0,
                                "by_change": {}, "compared_with": {}}  # fmt: skip
    assert first["survey_root"] == str(n1)
    report = tmp_path / "report.html"
    second = night_run(models, n2, out, "2026-12-02", "--report", str(report))

    rows = {Path(r["image_uri"]).relative_to(n2).as_posix(): r for r in results.read_csv_rows(
        [str(p) for p in (out / "date=2026-12-02").glob("hull-7-nightly-results-*.csv")])}  # fmt: skip
    a = rows["hull-7/port/a.jpg"]
    where = {k: a[k] for k in ("capture_time", "gps_latitude", "gps_longitude", "gps_altitude", "camera_model",
                              "location", "asset", "zone")}  # fmt: skip
    lat = round(59 + 26 / 60 + 31.5 / 3600, 7)
    assert where == {
        "capture_time": "2026-12-02 10:00:00.000000 UTC", "gps_latitude": lat, "gps_longitude": -10.75,
        "gps_altitude": 12.5, "camera_model": "Survey Cam 2", "location": f"POINT(-10.75 {lat!r})",
        "asset": "hull-7", "zone": "port",
    }  # fmt: skip
    assert a["is_rust"] and a["rust_grade"] < 10
    b, loose = rows["hull-7/port/b.jpg"], rows["loose.jpg"]
    assert (b["gps_latitude"], b["location"], b["capture_time"], b["camera_model"]) == (
        None,
        None,
        None,
        "Survey Cam 2",
    )
    assert (loose["asset"], loose["zone"]) == (None, None)  # matches no pattern: null, not an error

    changes = sc.read_changes(second["changes"]["file"])
    got = [(c["asset"], c["zone"], c["image_uri"], c["change"], c["previous_night"]) for c in changes]
    assert got == [
        ("hull-7", "port", str(n2 / "hull-7/port/a.jpg"), "new_rust", "2026-12-01"),
        ("hull-7", "port", str(n2 / "hull-7/port/a.jpg"), "worse_zone", "2026-12-01"),
        ("hull-7", "stbd", str(n1 / "hull-7/stbd/d.jpg"), "missing_photo", "2026-12-01"),
    ]
    grade, pct = a["rust_grade"], f"{100 * a['rust_area_fraction']:.1f} %"
    assert (changes[0]["previous_value"], changes[0]["tonight_value"]) == (
        "clean, grade 10, 0.0 %",
        f"rust, grade {grade}, {pct}",
    )
    assert changes[1]["detail"].startswith(f"worst grade 10 -> {grade} (margin 1)")
    assert second["changes"]["by_change"] == {"missing_photo": 1, "new_rust": 1, "worse_zone": 1}
    assert second["changes"]["compared_with"] == {"hull-7": "2026-12-01"}  # loose.jpg: no asset, no earlier group
    html = report.read_text()
    assert 'id="changes"' in html and "hull-7" in html and "stbd" in html and "d.jpg" in html


def test_where_columns_and_changes_land_in_bigquery_on_the_emulator(models, local_cloud_servers, tmp_path, monkeypatch):
    """GEOGRAPHY round trip and the changes table, on bqemulator (DuckDB's GEOMETRY behind GEOGRAPHY)."""
    from google.cloud import bigquery

    cloud = local_cloud_servers
    for name, value in cloud.environment().items():
        monkeypatch.setenv(name, value)
    cloud.create_bucket("changes-bucket")
    client = bigquery.Client(project=cloud.project)
    client.create_dataset("where_changes", exists_ok=True)  # its own: the emulator serves the whole session
    n1, n2, out = tmp_path / "n1", tmp_path / "n2", tmp_path / "out"
    photo(n1 / "hull-7/port/a.jpg", rust=False, gps=GPS, when="2026:12:01 10:00:00")
    photo(n2 / "hull-7/port/a.jpg", rust=True, gps=GPS, when="2026:12:02 10:00:00")
    flags = ("--bigquery_table", f"{cloud.project}:where_changes.rust", "--temp_location", "gs://changes-bucket/tmp",
             "--project", cloud.project)  # fmt: skip
    night_run(models, n1, out, "2026-12-01", *flags)
    summary = night_run(models, n2, out, "2026-12-02", *flags)
    summary = night_run(models, n2, out, "2026-12-02", *flags)  # a re-run replaces the night's change rows

    csv_rows = results.read_csv_rows([str(p) for p in sorted((out / "date=2026-12-02").glob("*-results-*.csv"))])
    # bqemulator keeps the column as GEOGRAPHY but reports a bare `SELECT location` as BYTES holding the
    # WKT text (which the client then fails to base64-decode), so the point is read with ST_X / ST_Y
    plain = ", ".join(c for c in results.result_columns() if c != "location")
    sql = (
        f"SELECT {plain}, ST_X(location) AS lon, ST_Y(location) AS lat, ST_ASTEXT(location) AS wkt "
        f"FROM `{cloud.project}.where_changes.rust` WHERE DATE(processed_at) = '2026-12-02'"
    )
    landed = [dict(r.items()) for r in client.query(sql).result()]
    assert len(landed) == len(csv_rows) == 1
    got, want = landed[0], csv_rows[0]
    for column in ("capture_time", "processed_at"):
        got[column] = results.format_timestamp(got[column])
    assert (
        (got.pop("lon"), got.pop("lat")) == results.parse_point(want.pop("location")) == (-10.75, want["gps_latitude"])
    )
    assert got.pop("wkt").replace(" (", "(") == f"POINT(-10.75 {want['gps_latitude']!r})"
    assert got == want
    assert [(f.name, f.field_type) for f in client.get_table(f"{cloud.project}.where_changes.rust").schema][-8:] == [
        ("capture_time", "TIMESTAMP"), ("gps_latitude", "FLOAT"), ("gps_longitude", "FLOAT"), ("gps_altitude", "FLOAT"),
        ("camera_model", "STRING"), ("location", "GEOGRAPHY"), ("asset", "STRING"), ("zone", "STRING"),
    ]  # fmt: skip

    table = f"{cloud.project}.where_changes.rust_changes"
    assert summary["changes"]["bigquery_table"] == f"{cloud.project}:where_changes.rust_changes"
    changes = sc.read_changes(summary["changes"]["file"])
    stored = sorted(
        (dict(r.items()) for r in client.query(f"SELECT * FROM `{table}`").result()),
        key=lambda r: (r["zone"], r["change"]),
    )
    assert [{**c, "survey_id": "hull-7-nightly", "night": "2026-12-02"} for c in changes] == [
        {**r, "night": r["night"].isoformat()} for r in stored
    ]
    assert [c["change"] for c in changes] == ["new_rust", "worse_zone"]
    assert [f.name for f in client.get_table(table).schema] == [f.name for f in sc.load_schema()]
