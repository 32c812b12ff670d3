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
from dataclasses import dataclass

from corrosion.inference.report_data import Photo, grade_colour, photo_name

METRES_PER_DEGREE = 111_320.0


def _nice_length(metres: float) -> float:
    """The largest 1/2/5 x 10^k at or below ``metres``: a scale bar's length."""
    if metres <= 0:
        return 1.0
    base = 10 ** math.floor(math.log10(metres))
    return max(m * base for m in (1, 2, 5) if m * base <= metres)


@dataclass(frozen=True)
class _Frame:
    """The map's projection: metres (x east, y north) to SVG pixels, fitted to the photos' extent."""

    width: int
    height: int
    pad: int
    legend_h: int
    plot_w: int
    plot_h: int
    scale: float
    cx: float
    cy: float

    def to_px(self, x: float, y: float) -> tuple[float, float]:
        return (
            self.pad + self.plot_w / 2 + (x - self.cx) * self.scale,
            self.pad + self.plot_h / 2 - (y - self.cy) * self.scale,
        )


def _project(located: Sequence[Photo]) -> tuple[list[float], list[float]]:
    """The photos' positions in metres on a local equirectangular projection."""
    lat0 = sum(p.lat for p in located) / len(located)
    kx = math.cos(math.radians(lat0)) * METRES_PER_DEGREE
    return [p.lon * kx for p in located], [p.lat * METRES_PER_DEGREE for p in located]


def _frame(xs: Sequence[float], ys: Sequence[float], width: int, height: int) -> _Frame:
    """The projection that fits ``xs``/``ys`` into the plot area above the legend."""
    x_min, x_max, y_min, y_max = min(xs), max(xs), min(ys), max(ys)
    pad, legend_h = 24, 34
    plot_w, plot_h = width - 2 * pad, height - 2 * pad - legend_h
    # a single spot or a straight line of photos still gets a frame of at least 10 m
    scale = min(plot_w / max(x_max - x_min, 10.0), plot_h / max(y_max - y_min, 10.0))
    cx, cy = (x_min + x_max) / 2, (y_min + y_max) / 2
    return _Frame(width, height, pad, legend_h, plot_w, plot_h, scale, cx, cy)


def _svg_open(f: _Frame) -> list[str]:
    return [
        f'<svg class="map" viewBox="0 0 {f.width} {f.height}" width="{f.width}" height="{f.height}" role="img" '
        f'aria-label="Photo positions from EXIF GPS, coloured by ASTM D610 grade" xmlns="http://www.w3.org/2000/svg">',
        f'<rect x="0.5" y="0.5" width="{f.width - 1}" height="{f.height - f.legend_h - 1}" class="map-frame"/>',
    ]


def _points(located: Sequence[Photo], order: Sequence[int], px: Sequence[tuple[float, float]]) -> list[str]:
    """One circle per photo, with its name, asset, zone and grade as the tooltip."""
    parts = []
    for i in order:
        p = located[i]
        x, y = px[i]
        r = 4.5 if p.flagged else 3
        grade = "-" if p.grade is None else p.grade
        tip = f"{photo_name(p.image_uri)} · {p.asset} / {p.zone} · grade {grade}"
        parts.append(
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{r}" fill="{grade_colour(p.grade)}">'
            f"<title>{html.escape(tip)}</title></circle>"
        )
    return parts


def _cells(located: Sequence[Photo], order: Sequence[int], px: Sequence[tuple[float, float]]) -> list[str]:
    """One square per 4 px cell: its worst grade and how many photos it holds."""
    cells: dict[tuple[int, int], list] = {}
    for i in order:
        x, y = px[i]
        cell = cells.setdefault((int(x // 4), int(y // 4)), [located[i].grade, 0])
        cell[0] = located[i].grade
        cell[1] += 1
    parts = []
    for (gx, gy), (grade, n) in cells.items():
        shown = "-" if grade is None else grade
        parts.append(
            f'<rect x="{gx * 4}" y="{gy * 4}" width="4" height="4" fill="{grade_colour(grade)}">'
            f"<title>{n} photos, worst grade {shown}</title></rect>"
        )
    return parts


def _asset_labels(located: Sequence[Photo], xs: Sequence[float], ys: Sequence[float], f: _Frame) -> list[str]:
    """Asset names at their photos' centre."""
    by_asset: dict[str, list[int]] = {}
    for i, p in enumerate(located):
        by_asset.setdefault(p.asset, []).append(i)
    parts = []
    for asset, idx in sorted(by_asset.items()):
        x, y = f.to_px(sum(xs[i] for i in idx) / len(idx), max(ys[i] for i in idx))
        parts.append(f'<text x="{x:.1f}" y="{max(12.0, y - 9):.1f}" class="map-label">{html.escape(asset)}</text>')
    return parts


def _scale_bar(f: _Frame) -> str:
    """A scale bar of a round length in metres or km, and the north arrow."""
    bar_m = _nice_length(f.plot_w / f.scale / 4)
    bar_px = bar_m * f.scale
    y_bar = f.height - f.legend_h - 12
    label = f"{bar_m / 1000:g} km" if bar_m >= 1000 else f"{bar_m:g} m"
    return (
        f'<path d="M{f.pad} {y_bar} h{bar_px:.1f}" class="map-scale"/>'
        f'<text x="{f.pad}" y="{y_bar - 5}" class="map-small">{label}</text>'
        f'<text x="{f.width - f.pad}" y="{f.pad + 4}" class="map-small" text-anchor="end">N ↑</text>'
    )


def _legend(f: _Frame, located: int, photos: int) -> list[str]:
    """The D610 grades' colours, and how many photos carry GPS."""
    lx = f.pad
    ly = f.height - f.legend_h + 12
    parts = [f'<text x="{lx}" y="{ly + 10}" class="map-small">ASTM D610 grade</text>']
    lx += 104
    for grade in range(10, -1, -1):
        parts.append(
            f'<rect x="{lx}" y="{ly}" width="22" height="12" fill="{grade_colour(grade)}"/>'
            f'<text x="{lx + 11}" y="{ly + 24}" class="map-small" text-anchor="middle">{grade}</text>'
        )
        lx += 24
    parts.append(f'<text x="{lx + 8}" y="{ly + 10}" class="map-small">{located} of {photos} photos carry GPS</text>')
    return parts


def survey_map(photos: Sequence[Photo], width: int = 760, height: int = 440, max_points: int = 4000) -> str:
    """SVG markup of the photos that carry GPS (empty when none does)."""
    located = [p for p in photos if p.lat is not None and p.lon is not None]
    if not located:
        return ""
    xs, ys = _project(located)
    frame = _frame(xs, ys, width, height)
    px = [frame.to_px(x, y) for x, y in zip(xs, ys, strict=True)]
    # worst drawn last, so a red spot is never hidden under green ones
    order = sorted(range(len(located)), key=lambda i: -(located[i].grade if located[i].grade is not None else 11))
    marks = _points if len(located) <= max_points else _cells
    parts = [
        *_svg_open(frame),
        *marks(located, order, px),
        *_asset_labels(located, xs, ys, frame),
        _scale_bar(frame),
        *_legend(frame, len(located), len(photos)),
        "</svg>",
    ]
    return "".join(parts)
