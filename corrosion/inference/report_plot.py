"""Where the photos were taken: an inline SVG of their GPS positions, coloured by grade.

No tile server and no JS library: the page must open offline and from a bucket. Positions are
drawn on a local equirectangular projection (longitude scaled by cos(latitude)) fitted to the
survey's own extent, with a scale bar in metres, which is what an inspector needs to tell the east
girder from the west one. A big night (more points than ``max_points``) is drawn as a grid of cells
holding their worst grade, so the page stays a few hundred KB instead of one element per photo.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence

from corrosion.inference.report_data import Photo, grade_colour, photo_name

METRES_PER_DEGREE = 111_320.0


def _nice_length(metres: float) -> float:
    """The largest 1/2/5 x 10^k at or below ``metres``: a scale bar's length."""
    if metres <= 0:
        return 1.0
    base = 10 ** math.floor(math.log10(metres))
    return max(m * base for m in (1, 2, 5) if m * base <= metres)


def survey_map(photos: Sequence[Photo], width: int = 760, height: int = 440, max_points: int = 4000) -> str:
    """SVG markup of the photos that carry GPS (empty when none does)."""
    located = [p for p in photos if p.lat is not None and p.lon is not None]
    if not located:
        return ""
    esc = html.escape
    lat0 = sum(p.lat for p in located) / len(located)
    kx = math.cos(math.radians(lat0)) * METRES_PER_DEGREE
    xs = [p.lon * kx for p in located]
    ys = [p.lat * METRES_PER_DEGREE for p in located]
    x_min, x_max, y_min, y_max = min(xs), max(xs), min(ys), max(ys)
    pad, legend_h = 24, 34
    plot_w, plot_h = width - 2 * pad, height - 2 * pad - legend_h
    # a single spot or a straight line of photos still gets a frame of at least 10 m
    scale = min(plot_w / max(x_max - x_min, 10.0), plot_h / max(y_max - y_min, 10.0))
    cx, cy = (x_min + x_max) / 2, (y_min + y_max) / 2

    def to_px(x: float, y: float) -> tuple[float, float]:
        return pad + plot_w / 2 + (x - cx) * scale, pad + plot_h / 2 - (y - cy) * scale

    parts = [
        f'<svg class="map" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
        f'aria-label="Photo positions from EXIF GPS, coloured by ASTM D610 grade" xmlns="http://www.w3.org/2000/svg">',
        f'<rect x="0.5" y="0.5" width="{width - 1}" height="{height - legend_h - 1}" class="map-frame"/>',
    ]
    # worst drawn last, so a red spot is never hidden under green ones
    order = sorted(range(len(located)), key=lambda i: -(located[i].grade if located[i].grade is not None else 11))
    if len(located) <= max_points:
        for i in order:
            p = located[i]
            x, y = to_px(xs[i], ys[i])
            r = 4.5 if p.flagged else 3
            grade = "-" if p.grade is None else p.grade
            tip = f"{photo_name(p.image_uri)} · {p.asset} / {p.zone} · grade {grade}"
            parts.append(
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{r}" fill="{grade_colour(p.grade)}">'
                f"<title>{esc(tip)}</title></circle>"
            )
    else:  # one square per 4 px cell: its worst grade and how many photos it holds
        cells: dict[tuple[int, int], list] = {}
        for i in order:
            x, y = to_px(xs[i], ys[i])
            cell = cells.setdefault((int(x // 4), int(y // 4)), [located[i].grade, 0])
            cell[0] = located[i].grade
            cell[1] += 1
        for (gx, gy), (grade, n) in cells.items():
            shown = "-" if grade is None else grade
            parts.append(
                f'<rect x="{gx * 4}" y="{gy * 4}" width="4" height="4" fill="{grade_colour(grade)}">'
                f"<title>{n} photos, worst grade {shown}</title></rect>"
            )
    # asset names at their photos' centre
    by_asset: dict[str, list[int]] = {}
    for i, p in enumerate(located):
        by_asset.setdefault(p.asset, []).append(i)
    for asset, idx in sorted(by_asset.items()):
        x, y = to_px(sum(xs[i] for i in idx) / len(idx), max(ys[i] for i in idx))
        parts.append(f'<text x="{x:.1f}" y="{max(12.0, y - 9):.1f}" class="map-label">{esc(asset)}</text>')
    # scale bar and north
    bar_m = _nice_length(plot_w / scale / 4)
    bar_px = bar_m * scale
    y_bar = height - legend_h - 12
    label = f"{bar_m / 1000:g} km" if bar_m >= 1000 else f"{bar_m:g} m"
    parts.append(
        f'<path d="M{pad} {y_bar} h{bar_px:.1f}" class="map-scale"/>'
        f'<text x="{pad}" y="{y_bar - 5}" class="map-small">{label}</text>'
        f'<text x="{width - pad}" y="{pad + 4}" class="map-small" text-anchor="end">N ↑</text>'
    )
    # legend: the D610 grades
    lx = pad
    ly = height - legend_h + 12
    parts.append(f'<text x="{lx}" y="{ly + 10}" class="map-small">ASTM D610 grade</text>')
    lx += 104
    for grade in range(10, -1, -1):
        parts.append(
            f'<rect x="{lx}" y="{ly}" width="22" height="12" fill="{grade_colour(grade)}"/>'
            f'<text x="{lx + 11}" y="{ly + 24}" class="map-small" text-anchor="middle">{grade}</text>'
        )
        lx += 24
    parts.append(
        f'<text x="{lx + 8}" y="{ly + 10}" class="map-small">{len(located)} of {len(photos)} photos carry GPS</text>'
    )
    parts.append("</svg>")
    return "".join(parts)
