"""A generated survey night as the report takes it: rows, change rows, review queue, preview cards.

The report's tests, its browser test and its benchmark render the page from this (500 or 50,000
rows) without running a model: three assets with zones, EXIF-like GPS positions and capture
times, rust that is worse in one zone than the last night, and optionally hostile file names.
Preview JPEGs are written for the flagged photos, as the pipeline's WritePreview does.
"""

from __future__ import annotations

import datetime as dt
import io
import posixpath
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from corrosion.inference import grading, previews
from corrosion.inference.report import ReportEntry, SurveyStats
from corrosion.review import selection

ASSETS = {  # asset -> (latitude, longitude) of its middle, a few hundred metres apart, and its zones
    "bridge-north": ((53.5461, 9.9665), ("deck", "girder-east", "girder-west")),
    "tank-7": ((53.5440, 9.9712), ("roof", "shell")),
    "jetty-2": ((53.5425, 9.9640), ("piles", "fenders")),
}
# the first holds a slash, so its photo is "script>.jpg" in a folder "<script>alert(1)<", as on disk
HOSTILE_NAMES = (
    "<script>alert(1)</script>.jpg", "<img src=x onerror=alert(2)>.jpg", "quote\"s and 'apostrophes'.jpg",
    "new\nline &amp; <td>.jpg",
)  # fmt: skip


@dataclass
class Sample:
    rows: list[dict]
    changes: list[dict]
    review: list[dict]
    entries: list[ReportEntry]
    stats: SurveyStats


def _thumbnail(rng: np.random.Generator, grade: int, side: int = 184) -> Image.Image:
    """A steel-grey picture with rust-brown blobs, more of them the worse the grade."""
    img = Image.new("RGB", (side, round(side * 0.75)), tuple(int(c) for c in rng.integers(105, 150, 3)))
    draw = ImageDraw.Draw(img)
    for _ in range(max(1, 11 - grade)):
        x, y, r = int(rng.integers(0, side)), int(rng.integers(0, side)), int(rng.integers(4, 22))
        draw.ellipse((x - r, y - r, x + r, y + r), fill=(int(rng.integers(120, 170)), 60, 25))
    return img


NIGHT = dt.datetime(2025, 6, 12, 21, 0, tzinfo=dt.UTC)


def _row(rng: np.random.Generator, i: int, asset: str, zone: str, hostile: bool) -> dict:
    """Photo ``i`` of ``asset``/``zone``: its score, rust, grade, boxes, capture time and GPS position."""
    (lat, lon), _ = ASSETS[asset]
    zi = ASSETS[asset][1].index(zone)
    worse = (asset, zone) == ("bridge-north", "girder-east")
    p = float(rng.beta(0.6, 1.4))
    area = float(rng.uniform(0.02, 0.4) if worse and p > 0.5 else (rng.uniform(0.0005, 0.05) if p > 0.5 else 0))
    grade = grading.astm_d610_grade(area)
    name = f"IMG_{i:05d}.jpg"
    if hostile and i < len(HOSTILE_NAMES):  # rust, so their names reach every section of the page
        name, p, area = HOSTILE_NAMES[i], 0.97, 0.2
        grade = grading.astm_d610_grade(area)
    boxes = [[10, 10, 60, 50, round(float(rng.uniform(0.4, 0.95)), 3)]] if area > 0 else []
    return {
        "image_uri": f"/survey/night-2/{asset}/{zone}/{name}",
        "image_sha256": f"{i:064x}",
        "width": 4000, "height": 3000,
        "rust_probability": round(p, 4), "is_rust": p >= 0.5,
        "num_boxes": len(boxes), "boxes": repr(boxes).replace("'", '"'),
        "rust_area_fraction": round(area, 5), "rust_grade": grade,
        "classifier_version": "classifier-20250601", "detector_version": "segmenter-20250601",
        "survey_id": "harbour", "processed_at": "2025-06-12 23:00:00.000000 UTC",
        "capture_time": (NIGHT + dt.timedelta(seconds=7 * i)).strftime("%Y-%m-%d %H:%M:%S.%f UTC"),
        "gps_latitude": lat + float(rng.normal(0, 0.00012)) + 0.0003 * zi,
        "gps_longitude": lon + float(rng.normal(0, 0.0002)) + 0.0004 * zi,
        "gps_altitude": 12.0, "camera_model": "DJI FC3411",
        "asset": asset, "zone": zone,
    }  # fmt: skip


def _rows(rng: np.random.Generator, n: int, hostile: bool) -> list[dict]:
    """``n`` result rows, going round the assets' zones, each with its WKT location."""
    zones = [(a, z) for a, (_, zs) in ASSETS.items() for z in zs]
    rows = [_row(rng, i, *zones[i % len(zones)], hostile) for i in range(n)]
    for r in rows:
        r["location"] = f"POINT({r['gps_longitude']} {r['gps_latitude']})"
    return rows


def _write_preview(img: Image.Image, r: dict, out_dir: Path) -> str:
    """The photo's preview JPEG under ``out_dir``/previews, as WritePreview names it; its path."""
    (out_dir / "previews").mkdir(parents=True, exist_ok=True)
    path = out_dir / "previews" / previews.preview_name(r["image_uri"], r["image_sha256"])
    buf = io.BytesIO()
    img.resize((640, 480)).save(buf, "JPEG", quality=80)
    path.write_bytes(buf.getvalue())
    return str(path)


def _entries(rng: np.random.Generator, flagged: list[dict], out_dir: Path | None) -> list[ReportEntry]:
    """A report card per flagged row, with a drawn thumbnail (and a preview written when ``out_dir``)."""
    entries = []
    for r in flagged:
        img = _thumbnail(rng, r["rust_grade"])
        uri = _write_preview(img, r, out_dir) if out_dir is not None else ""
        entries.append(
            ReportEntry(
                image_uri=r["image_uri"], rust_probability=r["rust_probability"], is_rust=r["is_rust"],
                num_boxes=r["num_boxes"], rust_grade=r["rust_grade"], rust_area_fraction=r["rust_area_fraction"],
                thumbnail=previews.thumbnail_data_uri(img, 184), preview_uri=uri,
            )
        )  # fmt: skip
    return entries


def _stats(rows: list[dict], flagged: int) -> SurveyStats:
    """The night's counts, with two unreadable files."""
    stats = SurveyStats(images=len(rows), rust_images=flagged, classified_rust=sum(r["is_rust"] for r in rows))
    stats.boxes = sum(r["num_boxes"] for r in rows)
    for r in rows:
        stats.grades[r["rust_grade"]] = stats.grades.get(r["rust_grade"], 0) + 1
    stats.errors, stats.errors_by_reason = 2, {"corrupt_image": 1, "not_an_image": 1}
    return stats


def generate(
    n: int, out_dir: Path | None = None, seed: int = 3, hostile: bool = False, max_images: int = 500
) -> Sample:
    """``n`` photos of tonight; with ``out_dir``, the flagged photos' previews are written under it."""
    rng = np.random.default_rng(seed)
    rows = _rows(rng, n, hostile)
    changes = _changes(rows)
    queue = selection.select(rows, threshold=0.5, budget=min(50, n))
    review = [{"image_uri": c.row["image_uri"], "priority": c.priority, "reason": ", ".join(c.reasons)} for c in queue]
    flagged = sorted((r for r in rows if r["is_rust"] or r["num_boxes"]), key=lambda r: -r["rust_probability"])
    entries = _entries(rng, flagged[:max_images], out_dir)
    return Sample(rows, changes, review, entries, _stats(rows, len(flagged)))


def _changes(rows: list[dict]) -> list[dict]:
    """Last night against tonight: girder-east got worse, a few photos are new rust, two are missing."""
    prev = "2025-06-11"
    out = [
        {
            "asset": "bridge-north", "zone": "girder-east", "image_uri": "", "change": "worse_zone",
            "previous_night": prev, "previous_value": "grade 5, 2.1 %", "tonight_value": "grade 1, 38.0 %",
            "detail": "worst grade 5 -> 1 (margin 1); max rusted 2.1 % -> 38.0 % (margin 2 points)",
        }
    ]  # fmt: skip
    for r in [r for r in rows if r["is_rust"]][:4]:
        out.append(
            {
                "asset": r["asset"], "zone": r["zone"], "image_uri": r["image_uri"], "change": "new_rust",
                "previous_night": prev, "previous_value": "clean", "tonight_value": f"grade {r['rust_grade']}",
                "detail": f"p {r['rust_probability']:.2f}",
            }
        )  # fmt: skip
    for i in range(2):
        asset, zone = "tank-7", "shell"
        out.append(
            {
                "asset": asset, "zone": zone, "image_uri": posixpath.join("/survey/night-1", asset, zone, f"OLD_{i}.jpg"),
                "change": "missing_photo", "previous_night": prev, "previous_value": "grade 9", "tonight_value": "",
                "detail": "scored last night, not in tonight's input",
            }
        )  # fmt: skip
    return out
