"""One CSV record per line, RFC 4180, safe to open in a spreadsheet: the one writer of every CSV row.

Results, errors, the data-set manifest and evaluation predictions all carry names that came
from disk or from a user, so a value may hold a newline (which would split the row for every
line-based reader, ``--skip_processed`` included), a quote, a comma, or text a spreadsheet
runs as a formula (``=HYPERLINK(...)``). Here control characters are written escaped
(``paths.display``), quoting follows RFC 4180, and a text value starting with ``= + - @`` (or
a tab / carriage return) gets a leading ``'`` (OWASP's CSV-injection rule), so a
spreadsheet shows it as text.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable

from corrosion.core import paths

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_text(value: str) -> str:
    """A text cell as written: one line, never a formula."""
    if value.startswith(FORMULA_STARTS):
        value = "'" + value
    return paths.display(value)


def record(cells: Iterable[object]) -> str:
    """One CSV record without its line ending. ``str`` cells are made safe; other cells (numbers
    already formatted by the caller are passed as ``Number``) are written as they are."""
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow(
        [safe_text(c) if isinstance(c, str) and not isinstance(c, Number) else str(c) for c in cells]
    )
    return out.getvalue()


class Number(str):
    """A number already formatted as text (``-0.25``): written as it is, never formula-guarded."""


def header(columns: Iterable[str]) -> str:
    return record(columns)
