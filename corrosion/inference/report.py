"""The survey report an inspector opens: one self-contained HTML file.

Its first screen answers the three questions of a survey morning: where is the worst rust (zones
by worst ASTM D610 grade), what got worse since the last night (the change rows), and what to look
at first (the review queue, with its reasons). Below: the asset/zone table, the photos' GPS
positions as an inline SVG, the changes, the queue, a sortable and filterable table of every photo,
and the rust thumbnails linking to their previews (rust mask and boxes drawn). Style, script and
thumbnails (data URIs) are inlined, so the file can be mailed or opened from a bucket without
anything beside it; the table keeps one page of rows in the DOM and thumbnails load as they scroll
into view, so a 50,000-photo night stays usable. Sections: ``report_page``; data: ``report_data``;
the map: ``report_plot``; style and script: ``report_static/``.
"""

from __future__ import annotations

import html
import os
import posixpath
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from corrosion.core import io_utils
from corrosion.inference import report_data as data
from corrosion.inference import report_page as page
from corrosion.inference import report_plot as plot


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


def _entry_row(e: ReportEntry) -> dict:
    """A card as a result row, for a caller that passes no ``rows`` (the page then covers the flagged photos)."""
    return {
        "image_uri": e.image_uri, "rust_probability": e.rust_probability, "is_rust": e.is_rust,
        "num_boxes": e.num_boxes, "rust_grade": e.rust_grade, "rust_area_fraction": e.rust_area_fraction,
    }  # fmt: skip


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
    compared: bool | None = None,
) -> str:
    """HTML text of the report; ``entries`` are shown sorted by rust probability, highest first.

    ``rows`` are all of tonight's result rows (dicts with the ResultRow columns, asset/zone/GPS when
    known), ``changes`` the survey-change rows against the previous night, and ``review`` the photos a
    human should check ({image_uri, priority, reason}); each is optional so a run without them still
    gets a report. ``compared`` says whether an earlier night existed (default: whether ``changes``
    has rows), so "nothing got worse" is told apart from "nothing to compare with".
    """
    entries = sorted(entries, key=lambda e: (-e.rust_probability, e.image_uri))
    photos = [data.photo(r) for r in (rows or [_entry_row(e) for e in entries])]
    by_uri = {p.image_uri: p for p in photos}
    previews = {data.text(e.image_uri): link_target(e.preview_uri, report_path) for e in entries if e.preview_uri}

    def href(uri: str) -> str:
        return previews.get(uri, "")

    zones = data.zones(photos)
    change_items = data.change_items(changes)
    compared = bool(changes) if compared is None else compared
    queue = data.review_items(review)
    queued = {i.image_uri: i for i in queue}
    thumbs = [e.thumbnail for e in entries]
    thumb_index = {data.text(e.image_uri): i for i, e in enumerate(entries)}
    worst = sorted(
        (e for e in entries if e.thumbnail),
        key=lambda e: (11 if e.rust_grade is None else e.rust_grade, -(e.rust_area_fraction or 0), -e.rust_probability),
    )[:4]
    return _page(
        survey_id=survey_id, stats=stats, entries=entries, models=models, generated_at=generated_at,
        listed=total_rust_listed if total_rust_listed is not None else stats.rust_images, photos=photos,
        by_uri=by_uri, href=href, zones=zones, changes=change_items, compared=compared, queue=queue,
        queued=queued, thumbs=thumbs, thumb_index=thumb_index, worst=worst,
    )  # fmt: skip


def _figure(e: ReportEntry, href: str, index: int | None) -> str:
    """A thumbnail card; ``index`` set: the image is filled in lazily from the thumbnails' JSON."""
    esc = html.escape
    src = f'data-thumb="{index}"' if index is not None else f'src="{esc(e.thumbnail, quote=True)}"'
    uri = data.text(e.image_uri)
    img = f'<img {src} alt="{esc(page.photo_name(uri), quote=True)}" width="184" height="138">'
    link = f'<a href="{esc(href, quote=True)}">{img}</a>' if href else img
    # the gallery names the whole path (asset and zone folders); the first screen's strip just the file
    caption = (
        f'<span class="uri">{esc(uri)}</span>'
        if index is not None
        else f'<span class="name">{esc(page.photo_name(uri))}</span>'
    )
    return (
        f"<figure>{link}<figcaption>{page.grade_badge(e.rust_grade)} p={e.rust_probability:.3f} · "
        f"{page.pct(e.rust_area_fraction)} · boxes {e.num_boxes if e.num_boxes is not None else '–'}<br>"
        f"{caption}</figcaption></figure>"
    )


def _chips(v: Mapping) -> str:
    """The first screen's counts: photos, rust, zones, review queue, unreadable files."""
    stats: SurveyStats = v["stats"]
    assets = len({z.asset for z in v["zones"]})
    chips = [
        (stats.images, "photos scored", ""),
        (stats.rust_images, "rust photos", "bad" if stats.rust_images else ""),
        (len(v["zones"]), f"zones on {assets} assets", ""),
        (len(v["queue"]), "to review", ""),
        (stats.errors, "unreadable files", "bad" if stats.errors else ""),
    ]
    return "".join(f'<li class="{c}"><b>{n}</b>{html.escape(label)}</li>' for n, label, c in chips)


def _header(v: Mapping) -> str:
    """Doctype, head with the inlined style, and the page's title bar."""
    esc = html.escape
    model_text = " · ".join(f"{esc(k)} <code>{esc(m)}</code>" for k, m in v["models"].items() if m)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>Corrosion survey {esc(v["survey_id"])}</title>
<style>{page.static_text("report.css")}</style></head><body><main>
<header class="top"><h1>Corrosion survey <code>{esc(v["survey_id"])}</code></h1>
<span class="meta">Generated {esc(v["generated_at"])}{" · " + model_text if model_text else ""}</span></header>
"""


def _first_screen(v: Mapping) -> str:
    """The counts, the three answers and the strip of the worst photos."""
    href = v["href"]
    counts = data.change_counts(v["changes"])
    worst = "".join(_figure(e, href(data.text(e.image_uri)), None) for e in v["worst"])
    return f"""<ul class="chips">{_chips(v)}</ul>
<div class="answers">
{page.answer_worst(v["zones"], href)}
{page.answer_changes(v["changes"], counts, v["compared"], href)}
{page.answer_review(v["queue"], v["by_uri"], href)}
</div>
{f'<p class="strip-title">Worst photos tonight</p><div class="worst-strip" id="worst-photos">{worst}</div>' if worst else ""}
"""


def _sections(v: Mapping) -> str:
    """Zones, map, changes, review queue, the photo table and the gallery."""
    href = v["href"]
    svg = plot.survey_map(v["photos"])
    map_html = svg or "<p class='muted'>No photo carries GPS (EXIF GPS is read when the camera records it).</p>"
    return f"""<section id="zones"><h2>Assets and zones, worst first</h2>{page.zones_table(v["zones"], href)}</section>
<section id="map"><h2>Where the photos were taken</h2>{map_html}</section>
<section id="changes"><h2>What changed since the last night</h2>
{page.changes_table(v["changes"], href, v["compared"])}</section>
<section id="review"><h2>Review queue: what a person should check, and why</h2>
{page.review_table(v["queue"], v["by_uri"], href)}</section>
<section id="photos"><h2>All photos</h2>{page.photo_table(v["photos"])}</section>
{_gallery(v)}"""


def _gallery(v: Mapping) -> str:
    """The rust thumbnails, most probable first, saying when the list is cut short."""
    entries = v["entries"]
    gallery = "".join(_figure(e, v["href"](data.text(e.image_uri)), i) for i, e in enumerate(entries))
    more = (
        f"<p class='muted'>Showing the {len(entries)} most probable of {v['listed']} rust photos; the CSV lists all.</p>"
        if len(entries) < v["listed"]
        else ""
    )
    return f"""<section id="gallery"><h2>Rust photos, most probable first</h2>{more}
<div class="gallery worst-strip">{gallery or "<p class='muted'>No rust found.</p>"}</div></section>
"""


def _details(stats: SurveyStats) -> str:
    """The grade histogram, unreadable files by reason, and the run's counts."""
    errors = "".join(
        f'<tr><td>{html.escape(r)}</td><td class="num">{n}</td></tr>' for r, n in sorted(stats.errors_by_reason.items())
    )
    return f"""<section id="details"><h2>Grades and errors</h2><div class="side">
<div><h3>ASTM D610 grade (from the rusted area; errs towards worse)</h3>{page.histogram(stats.grades)}</div>
<div><h3>Unreadable files by reason</h3><table class="data">{errors or "<tr><td>none</td></tr>"}</table>
<h3 style="margin-top:14px">Counts</h3><table class="data counts">
<tr><td>Images scored</td><td>{stats.images}</td></tr>
<tr><td>Rust images (classifier or boxes)</td><td>{stats.rust_images}</td></tr>
<tr><td>Classified rust</td><td>{stats.classified_rust}</td></tr>
<tr><td>Rust boxes</td><td>{stats.boxes}</td></tr>
<tr><td>Unreadable files (errors)</td><td>{stats.errors}</td></tr></table></div></div></section>
"""


def _scripts(v: Mapping) -> str:
    """The page's data as JSON (grade colours, table rows, thumbnails) and its inlined script."""
    table_data = page.table_rows(v["photos"], v["queued"], v["href"], v["thumb_index"])
    colours = [data.grade_colour(g) for g in range(11)]
    return f"""{page.json_script("report-colours", colours)}
{page.json_script("report-rows", table_data)}
{page.json_script("report-thumbs", v["thumbs"])}
<script>{page.static_text("report.js")}</script>
</body></html>
"""


def _page(**v) -> str:
    return _header(v) + _first_screen(v) + _sections(v) + _details(v["stats"]) + "</main>\n" + _scripts(v)


def write_report(path: str, text: str) -> None:
    io_utils.write_text(path, text)


def preview_uri(previews_dir: str, name: str) -> str:
    return io_utils.join(previews_dir, name) if io_utils.is_remote(previews_dir) else posixpath.join(previews_dir, name)
