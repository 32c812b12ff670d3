"""What changed since the last survey of each asset: tonight's rows against the earlier nights'.

``pipelines.compare_nights`` holds one night under two model versions; this holds two nights of
one asset, photo by photo and zone by zone, so the morning's question "what got worse?" has rows:

- ``new_rust``: a photo that is rust tonight (classified rust or rust regions found) and was not
  rust, or not there, in the asset's last survey;
- ``worse_zone``: a zone whose worst ASTM D610 grade fell by at least ``grade_margin`` grades, or
  whose worst or mean rusted % rose by at least ``area_margin_pct`` points;
- ``missing_photo``: a photo of the last survey that is not in tonight's (``unreadable_tonight``
  where tonight has an error row for it instead, with its reason);
- ``new_zone``: a zone of the asset that its last survey did not have.

"The last survey of an asset" is the latest earlier night whose rows name that asset (photos
without an asset are one group per survey id). Photos are matched by their path relative to each
night's survey root (recorded in the night's ``-summary.json``; for a night without one, the
deepest folder all its photos share); a folder renamed between nights is a missing photo plus a
new one (out of scope). A photo skipped as already scored (``--skip_processed``) is present with
the row that scored its bytes (same sha256) in any night read; nights before this one are all read.
"""

from __future__ import annotations

import io
import json
import logging
import posixpath
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from corrosion.core import io_utils, listing
from corrosion.core.config import config_path
from corrosion.inference import results
from corrosion.inference.assets import relative_path
from corrosion.review.night_diff import latest_rows

log = logging.getLogger(__name__)

CHANGE_COLUMNS = (
    "asset", "zone", "image_uri", "change", "previous_night", "previous_value", "tonight_value", "detail",
)  # fmt: skip
NEW_RUST, WORSE_ZONE, MISSING, UNREADABLE, NEW_ZONE = (
    "new_rust", "worse_zone", "missing_photo", "unreadable_tonight", "new_zone",
)  # fmt: skip
SCHEMA_FILE = "bigquery_changes_schema.json"  # CHANGE_COLUMNS, then survey_id and night (what a re-run replaces)
_SHARD = re.compile(r"(?P<stem>.+)-results-\d{5}-of-\d{5}\.csv")


@dataclass(frozen=True)
class NightFiles:
    """One survey's result shards of one night (``FOLDER/STEM-results-*.csv``) and what lies beside them."""

    night: str  # YYYY-MM-DD from the date= folder (else the folder's name)
    folder: str
    stem: str
    results: tuple[str, ...]

    def beside(self, kind: str) -> list[str]:
        """The night's ``errors`` or ``skipped`` shards."""
        shard = re.compile(re.escape(f"{self.stem}-{kind}-") + r"\d{5}-of-\d{5}\.csv")
        pattern = io_utils.join(listing.escape_glob(self.folder), listing.escape_glob(self.stem) + f"-{kind}-*.csv")
        return [p for p in io_utils.matching(pattern) if shard.fullmatch(io_utils.basename(p))]

    @property
    def summary(self) -> str:
        return io_utils.join(self.folder, f"{self.stem}-summary.json")


def night_of(folder: str) -> str:
    name = io_utils.basename(folder.rstrip("/"))
    return name.removeprefix("date=")


def group_shards(paths: Iterable[str]) -> list[NightFiles]:
    """Result shards grouped by folder and survey stem, oldest night first."""
    groups: dict[tuple[str, str], list[str]] = {}
    for path in paths:
        match = _SHARD.fullmatch(io_utils.basename(path))
        if match:
            groups.setdefault((io_utils.dirname(path), match["stem"]), []).append(path)
    nights = [NightFiles(night_of(f), f, stem, tuple(sorted(p))) for (f, stem), p in groups.items()]
    return sorted(nights, key=lambda n: (n.night, n.folder, n.stem))


def previous_nights(output: str, tonight: str, tonight_folder: str, pattern: str | None = None) -> list[NightFiles]:
    """The earlier nights to compare with: ``--previous`` GLOB's shards, else every
    ``OUTPUT/date=DAY/*-results-*.csv`` with DAY before tonight. Tonight's own folder never counts."""
    if pattern:
        found = io_utils.matching(pattern)
        if not found:
            raise FileNotFoundError(f"--previous {pattern} matches no result CSV (OUT/date=DAY/SURVEY-results-*.csv)")
    else:
        found = io_utils.matching(io_utils.join(listing.escape_glob(output), "date=*", "*-results-*.csv"))
    own = tonight_folder.rstrip("/")
    nights = [n for n in group_shards(found) if n.folder.rstrip("/") != own]
    return [n for n in nights if pattern or n.night < tonight]


def survey_root_of(night: NightFiles, uris: Sequence[str]) -> str:
    """The root the night's photo paths are relative to: its summary's ``survey_root``, else the
    deepest folder all its photos share (a night written before summaries recorded it)."""
    if io_utils.exists(night.summary):
        try:
            root = json.loads(io_utils.read_text(night.summary)).get("survey_root")
        except (ValueError, OSError) as exc:
            log.warning("%s: unreadable summary (%s); the photos' common folder is the survey root", night.summary, exc)
            root = None
        if root:
            return root
    folders = {posixpath.dirname(u) for u in uris if u}
    if not folders:
        return ""
    common = posixpath.commonpath(sorted(folders)) if all(f.startswith("/") for f in folders) else _common(folders)
    log.info("%s/%s: no survey_root in its summary; photos are taken relative to %s", night.folder, night.stem, common)
    return common


def _common(folders: Iterable[str]) -> str:
    split = [f.split("/") for f in folders]
    out = []
    for parts in zip(*split, strict=False):
        if len(set(parts)) != 1:
            break
        out.append(parts[0])
    return "/".join(out)


# ---------------------------------------------------------------- one night as a table

FRAME = ("rel", "image_uri", "image_sha256", "group", "asset", "zone", "flagged", "grade", "area_pct", "probability")


def _frame(rows: Sequence[Mapping[str, Any]], root: str, survey_id: str | None = None) -> pd.DataFrame:
    """Result rows as the comparison's columns (``FRAME``), one per photo path."""
    records = []
    for r in rows:
        asset = r.get("asset") or None
        area = r.get("rust_area_fraction")
        records.append(
            {
                "rel": relative_path(str(r["image_uri"]), root),
                "image_uri": r["image_uri"],
                "image_sha256": r.get("image_sha256"),
                "group": asset if asset is not None else f"\0survey {survey_id or r.get('survey_id')}",
                "asset": asset,
                "zone": r.get("zone") or None,
                "flagged": bool(r.get("is_rust")) or bool(r.get("num_boxes") or 0),
                "grade": r.get("rust_grade"),
                "area_pct": None if area is None else round(100.0 * float(area), 4),
                "probability": r.get("rust_probability"),
                "processed_at": r.get("processed_at") or "",
            }
        )
    table = pd.DataFrame(records, columns=[*FRAME, "processed_at"])
    return latest_rows(table, "rel", "night").drop(columns="processed_at")


def with_skipped(
    rows: Sequence[Mapping[str, Any]], skipped: Sequence[Mapping[str, Any]], scored: Mapping[str, Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """A night's photos: its result rows plus each skipped photo as the row that scored its bytes
    (``scored``: sha256 -> row), under tonight's name. A skipped photo no night read scored is
    present but unscored (no rust, no grade): it is not missing, and nothing is claimed about it."""
    out = [dict(r) for r in rows]
    unknown = 0
    for s in skipped:
        row = scored.get(s["image_sha256"])
        if row is None:
            unknown += 1
            row = {"is_rust": False, "num_boxes": None, "rust_grade": None, "rust_area_fraction": None}
        out.append({**row, "image_uri": s["image_uri"], "image_sha256": s["image_sha256"]})
    if unknown:
        log.warning("%d skipped photo(s) were scored in no night read; they count as present, unscored", unknown)
    return out


@dataclass
class Night:
    """One earlier night's photos as the comparison sees them."""

    night: str
    table: pd.DataFrame


def read_nights(nights: Sequence[NightFiles]) -> tuple[list[Night], dict[str, dict[str, Any]]]:
    """The earlier nights as tables, and every scored row by sha256 (latest), for skipped photos."""
    loaded, unreadable = [], []
    for n in nights:
        rows = results.read_csv_rows(n.results, unreadable=unreadable)
        skipped = [r for p in n.beside("skipped") for r in read_csv_dicts(p)]
        loaded.append((n, rows, skipped))
    if unreadable:
        log.warning("%d records of earlier nights are not result rows, left out of the comparison: %s",
                    len(unreadable), "; ".join(unreadable[:5]))  # fmt: skip
    scored: dict[str, dict[str, Any]] = {}
    for _, rows, _ in loaded:
        for r in sorted(rows, key=lambda r: r.get("processed_at") or ""):
            scored[r["image_sha256"]] = r
    out = []
    for n, rows, skipped in loaded:
        present = with_skipped(rows, skipped, scored)
        out.append(Night(n.night, _frame(present, survey_root_of(n, [r["image_uri"] for r in present]))))
    return out, scored


def read_csv_dicts(path: str) -> list[dict[str, str]]:
    """A CSV's records as text (error and skipped shards), undecodable bytes replaced."""
    import csv

    return list(csv.DictReader(io.StringIO(io_utils.read_text(path, errors="replace"))))


# ---------------------------------------------------------------- the comparison


def _pct(value: Any) -> str:
    return "" if value is None or pd.isna(value) else f"{float(value):.1f} %"


def photo_value(r: Mapping[str, Any] | None) -> str:
    """A photo's state in a cell: rust or clean, then its grade and rusted % where graded."""
    if r is None:
        return "absent"
    call = "rust" if r["flagged"] else "clean"
    grade = r["grade"]
    if grade is None or pd.isna(grade):
        p = r.get("probability")
        return call if p is None or pd.isna(p) else f"{call}, p {float(p):.3f}"
    return f"{call}, grade {int(grade)}, {_pct(r['area_pct'])}"


@dataclass(frozen=True)
class ZoneState:
    photos: int
    worst_grade: int | None
    max_pct: float | None
    mean_pct: float | None
    worst_uri: str

    def text(self) -> str:
        photos = f"{self.photos} photo{'' if self.photos == 1 else 's'}"
        if self.worst_grade is None:
            return f"{photos}, ungraded"
        return f"worst grade {self.worst_grade}, max {_pct(self.max_pct)}, mean {_pct(self.mean_pct)}, {photos}"


def zone_state(table: pd.DataFrame) -> ZoneState:
    graded = table[table.grade.notna()]
    areas = table.area_pct.dropna()
    if graded.empty:
        return ZoneState(len(table), None, None, None, "")
    worst = graded.sort_values(["grade", "area_pct", "image_uri"], ascending=[True, False, True]).iloc[0]
    return ZoneState(
        len(table),
        int(worst.grade),
        round(float(areas.max()), 4) if len(areas) else None,
        round(float(areas.mean()), 4) if len(areas) else None,
        str(worst.image_uri),
    )


def zone_worse(before: ZoneState, now: ZoneState, grade_margin: int, area_margin_pct: float) -> list[str]:
    """Why a zone is worse (empty when it is not), each reason with its figures and margin."""
    why = []
    if before.worst_grade is not None and now.worst_grade is not None:
        if before.worst_grade - now.worst_grade >= grade_margin:
            why.append(f"worst grade {before.worst_grade} -> {now.worst_grade} (margin {grade_margin})")
    for label, old, new in (("max", before.max_pct, now.max_pct), ("mean", before.mean_pct, now.mean_pct)):
        if old is not None and new is not None and new - old >= area_margin_pct - 1e-9:
            why.append(f"{label} rusted {_pct(old)} -> {_pct(new)} (margin {area_margin_pct:g} points)")
    return why


def change(asset, zone, uri, kind, night, before, now, detail) -> dict[str, Any]:
    return dict(zip(CHANGE_COLUMNS, (asset, zone, uri, kind, night, before, now, detail), strict=True))


def compare_group(
    now: pd.DataFrame,
    before: pd.DataFrame,
    night: str,
    errors: Mapping[str, Mapping[str, str]],
    grade_margin: int,
    area_margin_pct: float,
) -> list[dict[str, Any]]:
    """The change rows of one asset: tonight's photos ``now`` against its last survey ``before``."""
    out = []
    prev = {r["rel"]: r for r in before.to_dict("records")}
    tonight = {r["rel"]: r for r in now.to_dict("records")}
    for rel, r in tonight.items():
        old = prev.get(rel)
        if r["flagged"] and (old is None or not old["flagged"]):
            detail = "not in the last survey" if old is None else "clean in the last survey"
            out.append(change(r["asset"], r["zone"], r["image_uri"], NEW_RUST, night, photo_value(old),
                              photo_value(r), detail))  # fmt: skip
    for rel, old in prev.items():
        if rel in tonight:
            continue
        if rel in errors:
            e = errors[rel]
            out.append(change(old["asset"], old["zone"], e["image_uri"], UNREADABLE, night, photo_value(old),
                              f"{e['stage']}: {e['reason']}", e.get("message", "")))  # fmt: skip
        else:
            out.append(change(old["asset"], old["zone"], old["image_uri"], MISSING, night, photo_value(old), "",
                              f"in the survey of {night}, not in tonight's input"))  # fmt: skip
    zone_key = lambda t: t.zone.fillna("\0")  # noqa: E731
    previous_zones = {z: g for z, g in before.groupby(zone_key(before), sort=True)}
    for z, g in now.groupby(zone_key(now), sort=True):
        asset, zone = g.asset.iloc[0], None if z == "\0" else z
        state = zone_state(g)
        if z not in previous_zones:
            out.append(
                change(asset, zone, "", NEW_ZONE, night, "", state.text(), "a zone the last survey did not have")
            )
            continue
        old_state = zone_state(previous_zones[z])
        why = zone_worse(old_state, state, grade_margin, area_margin_pct)
        if why:
            out.append(change(asset, zone, state.worst_uri, WORSE_ZONE, night, old_state.text(), state.text(),
                              "; ".join(why)))  # fmt: skip
    return out


def survey_changes(
    tonight_rows: Sequence[Mapping[str, Any]],
    tonight_errors: Sequence[Mapping[str, str]],
    tonight_root: str,
    earlier: Sequence[Night],
    tonight_skipped: Sequence[Mapping[str, Any]] = (),
    scored: Mapping[str, Mapping[str, Any]] | None = None,
    grade_margin: int = 1,
    area_margin_pct: float = 5.0,
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """The change rows (``CHANGE_COLUMNS``, sorted by asset, zone, kind, photo) and, per asset
    compared, the night it was compared with (assets first surveyed tonight are not listed)."""
    present = with_skipped(tonight_rows, tonight_skipped, scored or {})
    survey = next((r.get("survey_id") for r in tonight_rows), None)
    now = _frame(present, tonight_root, survey)
    errors = {relative_path(e["image_uri"], tonight_root): e for e in tonight_errors}
    out: list[dict[str, Any]] = []
    compared: dict[str, str] = {}
    by_night = sorted(earlier, key=lambda n: n.night, reverse=True)
    for group, rows in now.groupby("group", sort=True):
        last = next((n for n in by_night if (n.table.group == group).any()), None)
        if last is None:
            continue
        compared[group.replace("\0survey ", "(no asset) ")] = last.night
        before = last.table[last.table.group == group]
        out += compare_group(rows, before, last.night, errors, grade_margin, area_margin_pct)
    out.sort(key=lambda c: (c["asset"] or "", c["zone"] or "", c["change"], c["image_uri"]))
    return out, compared


# ---------------------------------------------------------------- outputs


def changes_csv(rows: Sequence[Mapping[str, Any]]) -> str:
    """The changes CSV text: header always (a night without changes is an empty table, not no file)."""
    lines = [results.csv_header(CHANGE_COLUMNS), *(results.csv_line(r, CHANGE_COLUMNS) for r in rows)]
    return "\n".join(lines) + "\n"


def read_changes(path: str) -> list[dict[str, Any]]:
    """Change rows back from a changes CSV (nulls as None)."""
    return [{k: (v if v != "" else None) for k, v in r.items()} for r in read_csv_dicts(path)]


def load_schema() -> tuple[results.SchemaField, ...]:
    return results.load_schema(str(config_path(SCHEMA_FILE)))


def changes_table(table: str) -> str:
    """``PROJECT:DATASET.TABLE`` -> ``PROJECT:DATASET.TABLE_changes``."""
    return f"{table}_changes"


def bigquery_rows(rows: Sequence[Mapping[str, Any]], survey_id: str, night: str) -> list[dict[str, Any]]:
    return [{**{c: r.get(c) for c in CHANGE_COLUMNS}, "survey_id": survey_id, "night": night} for r in rows]


def load_bigquery(table: str, rows: Sequence[Mapping[str, Any]], survey_id: str, night: str) -> int:
    """Replace this night's change rows of this survey in ``TABLE_changes`` (created from the
    schema file when missing): a DELETE of the night, then one load job (not streaming inserts,
    whose buffer would refuse the next re-run's DELETE for up to 90 minutes). Returns rows loaded."""
    from google.cloud import bigquery

    target = changes_table(table)
    project, _, rest = target.partition(":") if ":" in target else ("", "", target)
    full = f"{project}.{rest}" if project else rest
    client = bigquery.Client(project=project or None)
    schema = [bigquery.SchemaField(f.name, f.type, mode=f.mode, description=f.description) for f in load_schema()]
    client.create_table(bigquery.Table(full, schema=schema), exists_ok=True)
    params = [
        bigquery.ScalarQueryParameter("night", "DATE", night),
        bigquery.ScalarQueryParameter("survey_id", "STRING", survey_id),
    ]
    sql = f"DELETE FROM `{full}` WHERE night = @night AND survey_id = @survey_id"
    client.query(sql, job_config=bigquery.QueryJobConfig(query_parameters=params)).result()
    payload = bigquery_rows(rows, survey_id, night)
    if not payload:
        return 0
    config = bigquery.LoadJobConfig(
        schema=schema,
        create_disposition=bigquery.CreateDisposition.CREATE_IF_NEEDED,
        write_disposition=bigquery.WriteDisposition.WRITE_APPEND,
    )
    config.source_format = bigquery.SourceFormat.NEWLINE_DELIMITED_JSON
    # A stream of unknown size goes up as a resumable upload: bqemulator refuses the multipart upload
    # load_table_from_json sends (its body's part typed '*/*'); BigQuery itself takes either.
    body = io.BytesIO("".join(json.dumps(r) + "\n" for r in payload).encode())
    client.load_table_from_file(body, full, job_config=config).result()
    return len(payload)
