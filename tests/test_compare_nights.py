"""A night scored by two versions, photo by photo: flips, grade moves, photos on one side or failed, none lost."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from corrosion.inference import results
from corrosion.review import night_diff
from pipelines import compare_nights


def _row(name: str, p: float, grade: int | None, version: str, at: str = "2026-12-01T02:00:00Z") -> dict:
    return results.ResultRow(
        image_uri=f"/night/{name}.jpg", image_sha256=name * 8, width=64, height=48, rust_probability=p,
        is_rust=p >= 0.5, num_boxes=0, boxes="[]", rust_area_fraction=None if grade is None else (10 - grade) / 20,
        rust_grade=grade, classifier_version=version, detector_version="seg-1", survey_id="hull-7", processed_at=at,
    ).to_bigquery()  # fmt: skip


BASELINE = [
    _row("a", 0.9, 5, "v1"),  # unchanged
    _row("b", 0.2, 10, "v1"),  # becomes rust
    _row("c", 0.8, 7, "v1"),  # three grades worse
    _row("d", 0.7, 9, "v1"),  # not in the candidate's night
    _row("e", 0.6, 9, "v1"),  # fails in the candidate's night
    _row("g", 0.55, 9, "v1"),  # becomes clean, one grade better
]
CANDIDATE = [
    _row("a", 0.9, 5, "v2"),
    _row("b", 0.7, 10, "v2"),
    _row("c", 0.85, 4, "v2"),
    _row("f", 0.1, 10, "v2"),  # new photo
    _row("g", 0.4, 10, "v2", at="2026-12-01T01:00:00Z"),
    _row("g", 0.3, 10, "v2", at="2026-12-01T03:00:00Z"),  # scored twice: the latest row counts
]
CANDIDATE_ERRORS = [{"image_uri": "/night/e.jpg", "stage": "decode", "reason": "truncated", "message": "..."}]


def test_flips_grade_moves_and_one_sided_photos_are_counted_exactly_and_ordered():
    table = night_diff.compare_nights(BASELINE, CANDIDATE, (), CANDIDATE_ERRORS)
    assert len(table) == 7 and list(table.columns) == list(night_diff.COLUMNS)
    by = table.set_index("image_uri")
    assert by.loc["/night/b.jpg", "call_change"] == night_diff.TO_RUST
    assert by.loc["/night/g.jpg", "call_change"] == night_diff.TO_CLEAN
    assert by.loc["/night/g.jpg", "rust_probability_candidate"] == 0.3
    assert by.loc["/night/c.jpg", "grade_change"] == -3 and by.loc["/night/a.jpg", "grade_change"] == 0
    assert by.loc["/night/d.jpg", "presence"] == night_diff.BASELINE_ONLY
    assert by.loc["/night/e.jpg", "presence"] == night_diff.BASELINE_ONLY
    assert by.loc["/night/e.jpg", "error_candidate"] == "decode: truncated"
    assert by.loc["/night/f.jpg", "presence"] == night_diff.CANDIDATE_ONLY
    # flipped calls first (b before g: grade unchanged vs one, then by probability), then one-sided, then grades
    assert list(table.image_uri) == [f"/night/{n}.jpg" for n in ("g", "b", "d", "e", "f", "c", "a")]

    s = night_diff.summary(table, BASELINE, CANDIDATE)
    assert s["photos"] == {"both": 4, "baseline only": 2, "candidate only": 1}
    assert s["calls"] == {"flipped_to_rust": 1, "flipped_to_clean": 1, "rust_baseline": 3, "rust_candidate": 3}
    assert s["grades"] == {"compared": 4, "moved_by_1": 1, "moved_by_2_or_more": 1, "worse": 1, "better": 1}
    assert s["versions"]["baseline"]["classifier_version"] == ["v1"]
    assert s["versions"]["candidate"]["classifier_version"] == ["v2"]
    assert s["mean_abs_probability_change"] == pytest.approx((0 + 0.5 + 0.05 + 0.25) / 4)


def test_the_command_reads_shards_and_their_error_files_and_writes_the_three_outputs(tmp_path):
    columns = results.ROW_COLUMNS
    for side, rows in (("v1", BASELINE), ("v2", CANDIDATE)):
        night = tmp_path / side / "date=2026-12-01"
        night.mkdir(parents=True)
        half = len(rows) // 2
        for i, part in enumerate((rows[:half], rows[half:])):
            lines = [results.csv_header(columns), *(results.csv_line(r, columns) for r in part)]
            (night / f"hull-7-results-0000{i}-of-00002.csv").write_text("\n".join(lines) + "\n")
    lines = [
        results.csv_header(results.ERROR_COLUMNS),
        *(results.csv_line(e, results.ERROR_COLUMNS) for e in CANDIDATE_ERRORS),
    ]
    errors = "\n".join(lines) + "\n"
    (tmp_path / "v2" / "date=2026-12-01" / "hull-7-errors-00000-of-00001.csv").write_text(errors)
    glob = "date=2026-12-01/hull-7-results-*.csv"
    out = tmp_path / "diff"
    assert compare_nights.main(["--baseline", str(tmp_path / "v1" / glob), "--candidate", str(tmp_path / "v2" / glob),
                                "--output", str(out)]) == 0  # fmt: skip
    changes = pd.read_csv(out / "changes.csv")
    assert len(changes) == 7 and changes.error_candidate.dropna().tolist() == ["decode: truncated"]
    assert json.loads((out / "summary.json").read_text())["calls"]["flipped_to_rust"] == 1
    text = (out / "summary.md").read_text()
    assert "Calls flipped: 1 clean -> rust, 1 rust -> clean (rust calls 3 -> 3; each version" in text
    assert "| /night/c.jpg | both |  | 7 -> 4 | 0.800 -> 0.850 |" in text
    with pytest.raises(SystemExit, match="--candidate .* matches no result CSV"):
        compare_nights.main(["--baseline", str(tmp_path / "v1" / glob), "--candidate", str(tmp_path / "none" / glob),
                             "--output", str(out)])  # fmt: skip
