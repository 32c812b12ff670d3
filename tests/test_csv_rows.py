"""corrosion.core.csv_rows: one RFC 4180 record per line, safe to open in a spreadsheet."""

from __future__ import annotations

import csv
import io

from corrosion.core import csv_rows
from corrosion.inference import results


def test_a_name_with_a_newline_stays_one_record_on_one_line():
    line = csv_rows.record(["/s/a\nb.jpg", 'quote"d,comma', csv_rows.Number("-0.5")])
    assert "\n" not in line
    assert next(csv.reader(io.StringIO(line))) == ["/s/a\\nb.jpg", 'quote"d,comma', "-0.5"]


def test_text_that_a_spreadsheet_would_run_is_written_as_text():
    cells = next(csv.reader([csv_rows.record(['=HYPERLINK("x")', "+1", "@sum", "-x", "ok=1"])]))
    assert cells == ['\'=HYPERLINK("x")', "'+1", "'@sum", "'-x", "ok=1"]


def test_result_rows_guard_text_but_not_numbers():
    row = {"image_uri": "=cmd|' /C calc'!A0", "rust_probability": -0.25, "num_boxes": -1, "is_rust": False}
    line = results.csv_line(row, ("image_uri", "rust_probability", "num_boxes", "is_rust"))
    assert next(csv.reader([line])) == ["'=cmd|' /C calc'!A0", "-0.25", "-1", "false"]
