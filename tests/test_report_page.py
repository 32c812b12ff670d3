"""The report page without a browser: what it computes, how it escapes, and that old callers still work."""

from __future__ import annotations

import json
import re

from corrosion.inference import report, report_data, report_plot, report_sample


def _render(sample, path="/tmp/r/index.html", **kw) -> str:
    return report.render_report(
        "harbour", sample.stats, sample.entries, path, {"classifier": "c1"}, "2025-06-12",
        rows=sample.rows, changes=sample.changes, review=sample.review, **kw,
    )  # fmt: skip


def test_zones_worst_first_from_csv_text_rows():
    rows = [
        {"image_uri": "a/1.jpg", "asset": "A", "zone": "z1", "rust_grade": "9", "rust_area_fraction": "0.0002",
         "is_rust": "true", "num_boxes": "1", "rust_probability": "0.9"},
        {"image_uri": "a/2.jpg", "asset": "A", "zone": "z2", "rust_grade": "3", "rust_area_fraction": "0.12",
         "is_rust": "false", "num_boxes": "2", "rust_probability": "0.4"},
        {"image_uri": "b/1.jpg", "asset": "", "zone": None, "rust_grade": "", "rust_probability": "0.1",
         "is_rust": "false", "num_boxes": ""},
    ]  # fmt: skip
    zones = report_data.zones(report_data.photo(r) for r in rows)
    assert [(z.asset, z.zone, z.worst_grade) for z in zones] == [
        ("A", "z2", 3), ("A", "z1", 9), (report_data.NO_ASSET, report_data.NO_ZONE, None)
    ]  # fmt: skip
    assert zones[0].worst_uri == "a/2.jpg" and zones[0].rust_photos == 1 and zones[0].max_area == 0.12


def test_changes_list_worse_zones_first_and_review_by_priority():
    changes = report_data.change_items(
        [{"change": "missing_photo", "asset": "A"}, {"change": "new_rust", "asset": "B"}, {"change": "worse_zone"}]
    )
    assert [c.change for c in changes] == ["worse_zone", "new_rust", "missing_photo"]
    review = report_data.review_items(
        [
            {"image_uri": "x", "priority": 0.5, "reason": "a"},
            {"image_uri": "y", "priority": "1.5", "reason": ["b", "c"]},
        ]
    )
    assert [(r.image_uri, r.reason) for r in review] == [("y", "b, c"), ("x", "a")]


def test_hostile_names_are_escaped_text_and_the_json_cannot_close_its_script(tmp_path):
    sample = report_sample.generate(40, tmp_path, hostile=True)
    page = _render(sample, str(tmp_path / "index.html"))
    assert "<img src=x" not in page and "&lt;img src=x onerror=alert(2)&gt;.jpg" in page
    assert "alert(1)</script>" not in page
    assert "\n" not in "".join(re.findall(r'title="[^"]*"', page))  # the newline name stays one line
    assert "new\\nline &amp;amp; &lt;td&gt;.jpg" in page
    for block in re.findall(r'<script type="application/json" id="([^"]+)">(.*?)</script>', page, re.S):
        assert "<" not in block[1]
        json.loads(block[1])
    rows = json.loads(re.search(r'id="report-rows">(.*?)</script>', page, re.S).group(1))
    assert len(rows) == 40 and "<script>alert(1)<" in rows[0][1]  # data, restored by JSON.parse


def test_first_screen_answers_and_the_page_is_self_contained(tmp_path):
    sample = report_sample.generate(120, tmp_path)
    page = _render(sample, str(tmp_path / "index.html"))
    first = page[: page.index('id="zones"')]
    assert 'id="answer-worst"' in first and 'id="answer-changes"' in first and 'id="answer-review"' in first
    worst = re.search(r'id="answer-worst".*?<li>(.*?)</li>', page, re.S).group(1)
    assert "bridge-north" in worst and "girder-east" in worst
    assert "1</b> zone worse" in first and "2</b> photos missing tonight" in first
    assert report_data.photo_name(sample.review[0]["image_uri"]) in re.search(
        r'id="answer-review".*?<li>(.*?)</li>', page, re.S
    ).group(1)
    assert not re.search(r'(src|href)="(https?:)?//', page)  # no CDN, no tile server
    assert page.count("<circle") == 120  # every photo carries GPS here
    # thumbnails: the gallery's are filled in lazily; only the first screen's few are in the DOM
    assert page.count('<img src="data:') == 4 and page.count("data-thumb=") == len(sample.entries)


def test_old_callers_get_a_page_from_the_cards_alone():
    entry = report.ReportEntry("s/a.jpg", 0.9, True, 2, 3, 0.12, "data:image/jpeg;base64,AA==", "/r/previews/a.jpg")
    page = report.render_report("s", report.SurveyStats(images=3, rust_images=1), [entry], "/r/index.html", {}, "now")
    assert '<a href="previews/a.jpg">' in page and "No earlier night to compare with" in page
    assert "No photo carries GPS" in page


def test_map_bins_a_big_night_into_cells():
    photos = [report_data.photo(r) for r in report_sample.generate(300).rows]
    svg = report_plot.survey_map(photos, max_points=100)
    assert "<circle" not in svg and svg.count("<rect") > 20 and "photos, worst grade" in svg
    assert report_plot.survey_map([report_data.photo({"image_uri": "x"})]) == ""
