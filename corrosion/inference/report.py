"""The survey report an inspector opens: one self-contained HTML file.

Counts, the ASTM D610 grade histogram, the errors by reason, and thumbnails of the rust images
sorted by rust probability, each linking to its full preview. Thumbnails are embedded as data
URIs, so the file can be mailed or opened from a bucket without anything beside it.
"""

from __future__ import annotations

import html
import os
import posixpath
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from corrosion.core import io_utils


@dataclass(frozen=True)
class ReportEntry:
    """One rust image as the report shows it."""

    image_uri: str
    rust_probability: float
    is_rust: bool
    num_boxes: int | None
    rust_grade: int | None
    rust_area_fraction: float | None
    thumbnail: str  # data: URI
    preview_uri: str


@dataclass
class SurveyStats:
    """What the report and the end-of-run log count."""

    images: int = 0
    rust_images: int = 0  # is_rust or boxes found: what the report lists
    classified_rust: int = 0
    boxes: int = 0
    errors: int = 0
    grades: dict[int, int] = field(default_factory=dict)
    errors_by_reason: dict[str, int] = field(default_factory=dict)

    def merge(self, other: SurveyStats) -> SurveyStats:
        self.images += other.images
        self.rust_images += other.rust_images
        self.classified_rust += other.classified_rust
        self.boxes += other.boxes
        self.errors += other.errors
        for k, v in other.grades.items():
            self.grades[k] = self.grades.get(k, 0) + v
        for k, v in other.errors_by_reason.items():
            self.errors_by_reason[k] = self.errors_by_reason.get(k, 0) + v
        return self


def link_target(preview_uri: str, report_path: str) -> str:
    """How the report links to a preview: relative when both are local, else a browser URL."""
    if preview_uri.startswith("gs://"):
        return "https://storage.cloud.google.com/" + preview_uri[len("gs://") :]
    if not io_utils.is_remote(preview_uri) and not io_utils.is_remote(report_path):
        return os.path.relpath(preview_uri, os.path.dirname(os.path.abspath(report_path))).replace(os.sep, "/")
    return preview_uri


def _histogram(grades: Mapping[int, int]) -> str:
    peak = max(grades.values(), default=0) or 1
    rows = []
    for grade in range(10, -1, -1):
        n = grades.get(grade, 0)
        rows.append(
            f'<tr><td class="g">{grade}</td><td><div class="bar" style="width:{300 * n / peak:.0f}px"></div></td>'
            f"<td>{n}</td></tr>"
        )
    return '<table class="hist"><tr><th>ASTM D610 grade</th><th></th><th>images</th></tr>' + "".join(rows) + "</table>"


def render_report(
    survey_id: str,
    stats: SurveyStats,
    entries: Sequence[ReportEntry],
    report_path: str,
    models: Mapping[str, str],
    generated_at: str,
    total_rust_listed: int | None = None,
    *,
    rows: Sequence[Mapping] = (),
    changes: Sequence[Mapping] = (),
    review: Sequence[Mapping] = (),
) -> str:
    """HTML text of the report; ``entries`` are shown sorted by rust probability, highest first.

    ``rows`` are all of tonight's result rows (dicts with the ResultRow columns, asset/zone/GPS when
    known), ``changes`` the survey-change rows against the previous night, and ``review`` the photos a
    human should check ({image_uri, priority, reason}); each is optional so a run without them still
    gets a report.
    """
    esc = html.escape
    entries = sorted(entries, key=lambda e: (-e.rust_probability, e.image_uri))
    cards = []
    for e in entries:
        href = esc(link_target(e.preview_uri, report_path), quote=True)
        grade = "-" if e.rust_grade is None else str(e.rust_grade)
        area = "-" if e.rust_area_fraction is None else f"{100 * e.rust_area_fraction:.2f}%"
        cards.append(
            f'<figure><a href="{href}"><img src="{e.thumbnail}" alt="{esc(e.image_uri, quote=True)}"></a>'
            f"<figcaption><b>p={e.rust_probability:.3f}</b> · boxes {e.num_boxes if e.num_boxes is not None else '-'}"
            f' · grade {grade} · area {area}<br><span class="uri">{esc(e.image_uri)}</span></figcaption></figure>'
        )
    errors = "".join(f"<tr><td>{esc(r)}</td><td>{n}</td></tr>" for r, n in sorted(stats.errors_by_reason.items()))
    model_lines = "".join(f"<li>{esc(k)}: <code>{esc(v)}</code></li>" for k, v in models.items() if v)
    shown = len(entries)
    listed = total_rust_listed if total_rust_listed is not None else stats.rust_images
    more = (
        f"<p>Showing the {shown} most probable of {listed} rust images; the CSV lists all.</p>"
        if shown < listed
        else ""
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Corrosion survey {esc(survey_id)}</title>
<style>
body{{font-family:system-ui,sans-serif;margin:1.5em;color:#222}} .counts td{{padding:2px 12px}}
.hist td{{padding:1px 6px}} .hist .g{{text-align:right}} .bar{{height:14px;background:#b5521c}}
.grid{{display:flex;flex-wrap:wrap;gap:12px}} figure{{margin:0;width:200px}} figure img{{max-width:200px;border:1px solid #999}}
figcaption{{font-size:12px}} .uri{{color:#555;word-break:break-all}}
</style></head><body>
<h1>Corrosion survey <code>{esc(survey_id)}</code></h1>
<p>Generated {esc(generated_at)}.</p><ul>{model_lines}</ul>
<h2>Counts</h2>
<table class="counts">
<tr><td>Images scored</td><td>{stats.images}</td></tr>
<tr><td>Rust images (classifier or boxes)</td><td>{stats.rust_images}</td></tr>
<tr><td>Classified rust</td><td>{stats.classified_rust}</td></tr>
<tr><td>Rust boxes</td><td>{stats.boxes}</td></tr>
<tr><td>Unreadable files (errors)</td><td>{stats.errors}</td></tr>
</table>
<h2>Rust grade (ASTM D610, from box area: errs towards worse)</h2>
{_histogram(stats.grades)}
<h2>Errors by reason</h2>
<table class="counts">{errors or "<tr><td>none</td></tr>"}</table>
<h2>Rust images, most probable first</h2>
{more}<div class="grid">
{"".join(cards) or "<p>No rust found.</p>"}
</div></body></html>
"""


def write_report(path: str, text: str) -> None:
    io_utils.write_text(path, text)


def preview_uri(previews_dir: str, name: str) -> str:
    return io_utils.join(previews_dir, name) if io_utils.is_remote(previews_dir) else posixpath.join(previews_dir, name)
