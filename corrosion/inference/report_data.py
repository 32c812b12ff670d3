"""What the report page shows, computed from the night's rows: zones, changes, the review queue.

Rows arrive either typed (the pipeline's dicts) or as CSV text (``"true"``, ``"0.53"``, ``""``),
so every value goes through the tolerant readers here; a column a run did not have (no GPS, no
asset pattern) is simply absent and the page leaves that part out instead of failing.
"""

from __future__ import annotations

import math
import posixpath
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from corrosion.core import paths

NO_ASSET = "(no asset)"
NO_ZONE = "(no zone)"
# the order "what got worse" lists change kinds in: a worse zone is the inspector's first question
CHANGE_ORDER = ("worse_zone", "new_rust", "new_zone", "unreadable_tonight", "missing_photo")
CHANGE_TAGS = {  # one change row's label
    "worse_zone": "worse zone",
    "new_rust": "new rust",
    "new_zone": "new zone",
    "unreadable_tonight": "unreadable tonight",
    "missing_photo": "missing tonight",
}
CHANGE_LABELS = {  # the counts' labels: one, several
    "worse_zone": ("zone worse", "zones worse"),
    "new_rust": ("new rust photo", "new rust photos"),
    "new_zone": ("new zone", "new zones"),
    "unreadable_tonight": ("photo unreadable tonight", "photos unreadable tonight"),
    "missing_photo": ("photo missing tonight", "photos missing tonight"),
}


def change_label(kind: str, n: int) -> str:
    one, many = CHANGE_LABELS.get(kind, (kind, kind))
    return one if n == 1 else many


def as_float(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def as_int(value: Any) -> int | None:
    f = as_float(value)
    return None if f is None else int(f)


def as_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return bool(value)


def text(value: Any) -> str:
    """A value as the page shows it: one line, control characters escaped (as the CSVs write names)."""
    return "" if value is None else paths.display(str(value))


def photo_name(uri: str) -> str:
    """The file's name, which is what an inspector recognises (the full URI stays in the title)."""
    return posixpath.basename(uri.rstrip("/")) or uri


@dataclass(frozen=True)
class Photo:
    """One result row as the page uses it."""

    image_uri: str
    asset: str
    zone: str
    probability: float
    is_rust: bool
    grade: int | None
    area: float | None  # rusted fraction 0..1
    boxes: int | None
    captured: str
    lat: float | None
    lon: float | None

    @property
    def flagged(self) -> bool:
        """What the report calls a rust photo: classified rust or rust regions found (as SurveyStats counts)."""
        return self.is_rust or bool(self.boxes)


def photo(row: Mapping[str, Any]) -> Photo:
    lat, lon = as_float(row.get("gps_latitude")), as_float(row.get("gps_longitude"))
    if lat is None or lon is None or not (-90 <= lat <= 90 and -180 <= lon <= 180):
        lat = lon = None
    return Photo(
        image_uri=text(row.get("image_uri")),
        asset=text(row.get("asset")) or NO_ASSET,
        zone=text(row.get("zone")) or NO_ZONE,
        probability=as_float(row.get("rust_probability")) or 0.0,
        is_rust=as_bool(row.get("is_rust")),
        grade=as_int(row.get("rust_grade")),
        area=as_float(row.get("rust_area_fraction")),
        boxes=as_int(row.get("num_boxes")),
        captured=text(row.get("capture_time")).removesuffix(" UTC")[:16],
        lat=lat,
        lon=lon,
    )


@dataclass
class Zone:
    """One asset/zone of the survey: how bad its worst photo is and how its rusted % spreads."""

    asset: str
    zone: str
    photos: int = 0
    rust_photos: int = 0
    worst_grade: int | None = None
    worst_uri: str = ""
    areas: list[float] = field(default_factory=list)
    grades: dict[int, int] = field(default_factory=dict)
    gps_photos: int = 0

    @property
    def max_area(self) -> float | None:
        return max(self.areas) if self.areas else None

    def quantile(self, q: float) -> float | None:
        if not self.areas:
            return None
        ordered = sorted(self.areas)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    def severity(self) -> tuple:
        """Sort key, worst first: lowest D610 grade, then the most rusted photo, then the rust photo count."""
        grade = 11 if self.worst_grade is None else self.worst_grade
        return (grade, -(self.max_area or 0.0), -self.rust_photos, self.asset, self.zone)


def zones(photos: Iterable[Photo]) -> list[Zone]:
    """The survey's zones, worst first."""
    out: dict[tuple[str, str], Zone] = {}
    for p in photos:
        z = out.setdefault((p.asset, p.zone), Zone(p.asset, p.zone))
        z.photos += 1
        z.rust_photos += int(p.flagged)
        z.gps_photos += int(p.lat is not None)
        if p.area is not None:
            z.areas.append(p.area)
        if p.grade is not None:
            z.grades[p.grade] = z.grades.get(p.grade, 0) + 1
            if z.worst_grade is None or p.grade < z.worst_grade:
                z.worst_grade, z.worst_uri = p.grade, p.image_uri
    return sorted(out.values(), key=Zone.severity)


@dataclass(frozen=True)
class ReviewItem:
    image_uri: str
    priority: float
    reason: str


def review_items(review: Sequence[Mapping[str, Any]]) -> list[ReviewItem]:
    """The review queue, most urgent first (ties by name, so the page is the same each time)."""
    items = []
    for r in review:
        reason = r.get("reason", r.get("reasons", ""))
        if isinstance(reason, (list, tuple)):
            reason = ", ".join(map(str, reason))
        items.append(ReviewItem(text(r.get("image_uri")), as_float(r.get("priority")) or 0.0, text(reason)))
    return sorted(items, key=lambda i: (-i.priority, i.image_uri))


@dataclass(frozen=True)
class Change:
    asset: str
    zone: str
    image_uri: str
    change: str
    previous_night: str
    previous_value: str
    tonight_value: str
    detail: str


def change_items(changes: Sequence[Mapping[str, Any]]) -> list[Change]:
    """Change rows in the order the page lists them: kind (worse zones first), then asset, zone, photo."""
    items = [
        Change(
            text(c.get("asset")) or NO_ASSET,
            text(c.get("zone")) or NO_ZONE,
            text(c.get("image_uri")),
            text(c.get("change")),
            text(c.get("previous_night")),
            text(c.get("previous_value")),
            text(c.get("tonight_value")),
            text(c.get("detail")),
        )
        for c in changes
    ]
    rank = {k: i for i, k in enumerate(CHANGE_ORDER)}
    return sorted(items, key=lambda c: (rank.get(c.change, len(rank)), c.asset, c.zone, c.image_uri))


def change_counts(items: Iterable[Change]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for c in items:
        counts[c.change] = counts.get(c.change, 0) + 1
    rank = {k: i for i, k in enumerate(CHANGE_ORDER)}
    return dict(sorted(counts.items(), key=lambda kv: (rank.get(kv[0], len(rank)), kv[0])))


def grade_colour(grade: int | None) -> str:
    """ASTM D610 grade as a colour: green (sound) through amber to dark red (more than a third rusted)."""
    if grade is None:
        return "#9aa0a6"
    return (
        "#7a0c0c", "#a3150f", "#c8281a", "#de4a1f", "#ea6c22", "#f08c2a",
        "#f2b134", "#d7c63c", "#a9c34a", "#6fae52", "#3f9150",
    )[max(0, min(10, grade))]  # fmt: skip
