"""The report page's sections, as HTML text.

Everything that comes from a file name, EXIF or a change row is either passed through
``html.escape`` here or placed in the page as JSON data (``json_script``) that the inlined script
reads and writes with ``textContent``: a photo named ``<script>...</script>.jpg`` is shown as
that text, never run.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable, Mapping, Sequence
from importlib import resources
from typing import Any

from corrosion.inference.report_data import (
    CHANGE_TAGS,
    Change,
    Photo,
    ReviewItem,
    Zone,
    change_label,
    grade_colour,
    photo_name,
)

esc = html.escape
Href = Callable[[str], str]  # image_uri -> link to its preview ("" when it has none)
FIRST_SCREEN_ITEMS = 5
PRINT_ROWS = 15  # rows of a long table the print view keeps (the rest are in the page and the CSV)
MAX_CHANGE_ROWS = 2000  # a night with 50,000 missing photos lists the first ones; the CSV has all


def static_text(name: str) -> str:
    """A file of ``report_static/``, read at render time so the page inlines it (no CDN, works offline)."""
    return (resources.files("corrosion.inference") / "report_static" / name).read_text(encoding="utf-8")


def json_script(element_id: str, value: Any) -> str:
    """``value`` as inert JSON data in the page; ``<`` is escaped so no name can close the script element."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).replace("<", "\\u003c")
    return f'<script type="application/json" id="{element_id}">{text}</script>'


def grade_badge(grade: int | None) -> str:
    light = " light" if grade is not None and 6 <= grade <= 8 else ""
    return (
        f'<span class="grade{light}" style="background:{grade_colour(grade)}">{"–" if grade is None else grade}</span>'
    )


def pct(fraction: float | None, digits: int = 2) -> str:
    return "–" if fraction is None else f"{100 * fraction:.{digits}f} %"


def photo_link(uri: str, href: Href) -> str:
    """The photo's name, linking to its preview (rust mask and boxes drawn) where it has one."""
    target = href(uri)
    name = f'<span class="name" title="{esc(uri, quote=True)}">{esc(photo_name(uri))}</span>'
    return f'<a href="{esc(target, quote=True)}">{name}</a>' if target else name


def _reason_tags(reason: str) -> str:
    parts = [r.strip() for r in reason.replace(";", ",").split(",") if r.strip()]
    return "".join(f'<span class="tag">{esc(r)}</span>' for r in parts) or '<span class="muted">–</span>'


def answer_worst(zones: Sequence[Zone], href: Href) -> str:
    rusty = [z for z in zones if z.rust_photos or (z.worst_grade is not None and z.worst_grade < 10)]
    if not zones:
        body = '<p class="none">No photos scored tonight.</p>'
    elif not rusty:
        body = f'<p class="none">No rust in any of the {len(zones)} zones.</p>'
    else:
        items = []
        for z in rusty[:FIRST_SCREEN_ITEMS]:
            items.append(
                f"<li>{grade_badge(z.worst_grade)} <b>{esc(z.asset)}</b> / {esc(z.zone)}: up to {pct(z.max_area)} "
                f"rusted, {z.rust_photos} of {z.photos} photos rust"
                + (f" · worst {photo_link(z.worst_uri, href)}" if z.worst_uri else "")
                + "</li>"
            )
        body = f"<ol>{''.join(items)}</ol>"
    return (
        f'<section class="answer" id="answer-worst"><h3>Where is the worst rust</h3>{body}'
        f'<a class="more" href="#zones">All {len(zones)} zones</a></section>'
    )


def answer_changes(changes: Sequence[Change], counts: Mapping[str, int], compared: bool, href: Href) -> str:
    if not compared:
        body = '<p class="none">No earlier night to compare with.</p>'
    elif not changes:
        body = '<p class="none">Nothing got worse since the last night.</p>'
    else:
        summary = " · ".join(f"<b>{n}</b> {esc(change_label(k, n))}" for k, n in counts.items())
        items = []
        for c in changes[:FIRST_SCREEN_ITEMS]:
            items.append(f"<li>{_change_text(c, href)}</li>")
        body = f"<p>{summary}</p><ul>{''.join(items)}</ul>"
    return (
        f'<section class="answer" id="answer-changes"><h3>What got worse since last time</h3>{body}'
        f'<a class="more" href="#changes">All changes</a></section>'
    )


def _change_text(c: Change, href: Href) -> str:
    where = f"<b>{esc(c.asset)}</b> / {esc(c.zone)}"
    prev, now = esc(c.previous_value), esc(c.tonight_value)
    was = f" ({prev} → {now})" if prev and now else f" (was {prev})" if prev else f" ({now})" if now else ""
    photo = f": {photo_link(c.image_uri, href)}" if c.image_uri else ""
    return f'<span class="tag">{esc(CHANGE_TAGS.get(c.change, c.change))}</span> {where}{photo}{was}'


def answer_review(items: Sequence[ReviewItem], photos: Mapping[str, Photo], href: Href) -> str:
    if not items:
        body = '<p class="none">No photos in tonight\'s review queue.</p>'
    else:
        lis = []
        for it in items[:FIRST_SCREEN_ITEMS]:
            p = photos.get(it.image_uri)
            grade = f" {grade_badge(p.grade)}" if p is not None else ""
            lis.append(
                f"<li>{photo_link(it.image_uri, href)}{grade} <span class='muted'>priority {it.priority:.2f}</span>"
                f"<br>{_reason_tags(it.reason)}</li>"
            )
        body = f"<ol>{''.join(lis)}</ol>"
    return (
        f'<section class="answer" id="answer-review"><h3>What to look at first</h3>{body}'
        f'<a class="more" href="#review">The whole review queue ({len(items)})</a></section>'
    )


def _distribution(z: Zone) -> str:
    """A tiny bar chart of the zone's photos per D610 grade (10 left, 0 right)."""
    peak = max(z.grades.values(), default=0) or 1
    bars = []
    for i, grade in enumerate(range(10, -1, -1)):
        n = z.grades.get(grade, 0)
        h = 0 if n == 0 else max(2, round(18 * (n / peak) ** 0.5))  # square root: a few rust photos still show
        bars.append(
            f'<rect x="{i * 6}" y="{20 - h}" width="5" height="{h}" fill="{grade_colour(grade)}"><title>grade {grade}: {n}</title></rect>'
        )
    return f'<svg class="dist" width="66" height="20" viewBox="0 0 66 20" aria-hidden="true">{"".join(bars)}</svg>'


def zones_table(zones: Sequence[Zone], href: Href) -> str:
    if not zones:
        return "<p class='muted'>No photos scored.</p>"
    rows = []
    for i, z in enumerate(zones):
        extra = ' class="print-extra"' if i >= PRINT_ROWS else ""
        worst = photo_link(z.worst_uri, href) if z.worst_uri else "–"
        rows.append(
            f"<tr{extra}><td><b>{esc(z.asset)}</b></td><td>{esc(z.zone)}</td>"
            f'<td class="num">{z.photos}</td><td class="num">{z.rust_photos}</td>'
            f'<td class="num">{grade_badge(z.worst_grade)}</td>'
            f'<td class="num">{pct(z.quantile(0.5))}</td><td class="num">{pct(z.quantile(0.9))}</td>'
            f'<td class="num">{pct(z.max_area)}</td><td>{_distribution(z)}</td><td>{worst}</td>'
            f'<td class="no-print"><a href="#photos" data-filter-asset="{esc(z.asset, quote=True)}" '
            f'data-filter-zone="{esc(z.zone, quote=True)}">photos</a></td></tr>'
        )
    return (
        '<table class="data" id="zone-table"><thead><tr><th>Asset</th><th>Zone</th><th class="num">Photos</th>'
        '<th class="num">Rust photos</th><th class="num">Worst grade</th><th class="num">Rusted median</th>'
        '<th class="num">90th pct</th><th class="num">Max</th><th>Grades 10 → 0</th><th>Worst photo</th>'
        f'<th class="no-print"></th></tr></thead><tbody>{"".join(rows)}</tbody></table>'
    )


def changes_table(changes: Sequence[Change], href: Href, compared: bool) -> str:
    if not compared:
        return "<p class='muted'>No earlier night of this survey to compare with.</p>"
    if not changes:
        return "<p class='muted'>No change beyond the margins since the last night.</p>"
    rows = []
    for i, c in enumerate(changes[:MAX_CHANGE_ROWS]):
        extra = ' class="print-extra"' if i >= PRINT_ROWS else ""
        photo = photo_link(c.image_uri, href) if c.image_uri else ""
        rows.append(
            f'<tr{extra}><td><span class="tag">{esc(CHANGE_TAGS.get(c.change, c.change))}</span></td>'
            f"<td><b>{esc(c.asset)}</b></td><td>{esc(c.zone)}</td><td>{photo}</td>"
            f'<td>{esc(c.previous_night)}</td><td class="num">{esc(c.previous_value)}</td>'
            f'<td class="num">{esc(c.tonight_value)}</td><td class="reason">{esc(c.detail)}</td></tr>'
        )
    more = (
        f"<p class='muted'>The first {MAX_CHANGE_ROWS} of {len(changes)} changes; the changes CSV lists all.</p>"
        if len(changes) > MAX_CHANGE_ROWS
        else ""
    )
    return (
        f'{more}<table class="data" id="change-table"><thead><tr><th>Change</th><th>Asset</th><th>Zone</th>'
        '<th>Photo</th><th>Previous night</th><th class="num">Then</th><th class="num">Tonight</th><th>Detail</th>'
        f"</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def review_table(items: Sequence[ReviewItem], photos: Mapping[str, Photo], href: Href) -> str:
    if not items:
        return "<p class='muted'>No review queue for this night.</p>"
    rows = []
    for i, it in enumerate(items):
        p = photos.get(it.image_uri)
        extra = ' class="print-extra"' if i >= PRINT_ROWS else ""
        where = f"<b>{esc(p.asset)}</b> / {esc(p.zone)}" if p else "–"
        grade = grade_badge(p.grade) if p else "–"
        prob = f"{p.probability:.3f}" if p else "–"
        rows.append(
            f'<tr{extra}><td class="num">{i + 1}</td><td>{photo_link(it.image_uri, href)}</td><td>{where}</td>'
            f'<td class="num">{it.priority:.2f}</td><td>{_reason_tags(it.reason)}</td>'
            f'<td class="num">{grade}</td><td class="num">{prob}</td><td class="num">{pct(p.area if p else None)}</td></tr>'
        )
    return (
        '<table class="data" id="review-table"><thead><tr><th class="num">#</th><th>Photo</th><th>Asset / zone</th>'
        '<th class="num">Priority</th><th>Why</th><th class="num">Grade</th><th class="num">P(rust)</th>'
        f'<th class="num">Rusted</th></tr></thead><tbody>{"".join(rows)}</tbody></table>'
    )


def table_rows(
    photos: Sequence[Photo], review: Mapping[str, ReviewItem], href: Href, thumb_index: Mapping[str, int]
) -> list[list]:
    """The photo table's data, one compact array a row (positions as report.js's ``C``)."""
    out = []
    for p in photos:
        r = review.get(p.image_uri)
        out.append(
            [
                photo_name(p.image_uri), p.image_uri, p.asset, p.zone, p.grade, round(p.probability, 4),
                None if p.area is None else round(100 * p.area, 3), p.boxes,
                None if r is None else round(r.priority, 3), "" if r is None else r.reason,
                href(p.image_uri), thumb_index.get(p.image_uri, -1), p.captured, p.flagged,
            ]
        )  # fmt: skip
    return out


def photo_table(photos: Sequence[Photo]) -> str:
    """The sortable, filterable table's frame; report.js fills one page of rows from the JSON data."""
    assets = sorted({p.asset for p in photos})
    zones = sorted({p.zone for p in photos})
    opts = "".join(f'<option value="{esc(a, quote=True)}">{esc(a)}</option>' for a in assets)
    zopts = "".join(f'<option value="{esc(z, quote=True)}">{esc(z)}</option>' for z in zones)
    grades = "".join(f'<option value="{g}">{g} or worse</option>' for g in (8, 6, 4, 2, 0))
    cols = [
        ("", None), ("Photo", "name"), ("Asset", "asset"), ("Zone", "zone"), ("Grade", "grade"),
        ("P(rust)", "p"), ("Rusted", "area"), ("Boxes", "boxes"), ("Review", "prio"), ("Captured", "captured"),
    ]  # fmt: skip
    heads = "".join(
        f'<th data-key="{key}"{" aria-sort=ascending" if key == "grade" else ""}><button type="button">{label}</button></th>'
        if key
        else "<th></th>"
        for label, key in cols
    )
    return f"""<div class="controls">
<label>Search <input type="search" id="f-search" placeholder="name, asset or zone"></label>
<label>Asset <select id="f-asset"><option value="">all</option>{opts}</select></label>
<label>Zone <select id="f-zone"><option value="">all</option>{zopts}</select></label>
<label>Grade <select id="f-grade"><option value="">any</option>{grades}</select></label>
<label><input type="checkbox" id="f-rust"> rust only</label>
<label><input type="checkbox" id="f-review"> review queue only</label>
<span id="photo-count" class="muted"></span></div>
<table class="data" id="photo-table"><thead><tr>{heads}</tr></thead><tbody></tbody></table>
<div class="pager"><button type="button" id="page-prev">‹ previous</button><span id="page-label"></span>
<button type="button" id="page-next">next ›</button></div>"""


def histogram(grades: Mapping[int, int]) -> str:
    peak = max(grades.values(), default=0) or 1
    rows = []
    for grade in range(10, -1, -1):
        n = grades.get(grade, 0)
        rows.append(
            f'<tr><td class="num">{grade_badge(grade)}</td><td><div class="bar" style="width:{260 * n / peak:.0f}px;'
            f'background:{grade_colour(grade)}"></div></td><td class="num">{n}</td></tr>'
        )
    return '<table class="hist"><tr><th>Grade</th><th></th><th>photos</th></tr>' + "".join(rows) + "</table>"
