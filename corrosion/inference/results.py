"""Batch-inference output rows: per-image results, per-file errors, their CSV and BigQuery form.

The BigQuery schema in ``configs/bigquery_schema.json`` (bq CLI format: a list of fields) is
the one definition of the result columns; the CSV header, the row order and the validation
that tests run without network all come from it. ``ResultRow`` is that schema as a type: the
pipeline builds rows from it and writes them from it, and a test holds it to the file.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
import json
import math
import re
import typing
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from corrosion.core import csv_rows, io_utils
from corrosion.core.config import config_path

SCHEMA_FILE = "bigquery_schema.json"
ERROR_COLUMNS = ("image_uri", "stage", "reason", "message")


@dataclass(frozen=True)
class SchemaField:
    name: str
    type: str  # STRING | INTEGER | FLOAT | BOOLEAN | TIMESTAMP | GEOGRAPHY
    mode: str  # REQUIRED | NULLABLE
    description: str = ""


def load_schema(path: str | None = None) -> tuple[SchemaField, ...]:
    """The result table's fields, from the bq-CLI-format JSON schema file."""
    path = path or str(config_path(SCHEMA_FILE))
    data = json.loads(io_utils.read_text(path))
    if isinstance(data, dict):
        data = data.get("fields", [])
    fields = tuple(
        SchemaField(f["name"], f["type"].upper(), f.get("mode", "NULLABLE").upper(), f.get("description", ""))
        for f in data
    )
    if not fields:
        raise ValueError(f"{path}: no fields in BigQuery schema")
    return fields


def result_columns(schema: Sequence[SchemaField] | None = None) -> tuple[str, ...]:
    return tuple(f.name for f in (schema or load_schema()))


def beam_table_schema(path: str | None = None):
    """The schema as the ``apache_beam`` TableSchema WriteToBigQuery takes."""
    from apache_beam.io.gcp.bigquery_tools import parse_table_schema_from_json

    fields = [{"name": f.name, "type": f.type, "mode": f.mode, "description": f.description} for f in load_schema(path)]
    return parse_table_schema_from_json(json.dumps({"fields": fields}))


def format_timestamp(when: dt.datetime) -> str:
    """UTC timestamp as BigQuery and CSV readers both accept it."""
    return when.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f UTC")


def parse_timestamp(text: str) -> dt.datetime:
    return dt.datetime.strptime(text, "%Y-%m-%d %H:%M:%S.%f UTC").replace(tzinfo=dt.UTC)


# GEOGRAPHY as the rows carry it: a WKT point, longitude first (BigQuery's own order), finite, in range.
_POINT = re.compile(r"POINT\((\S+) (\S+)\)")


def parse_point(text: str) -> tuple[float, float] | None:
    """(longitude, latitude) of a ``POINT(lon lat)`` WKT text; None when it is not one in range."""
    match = _POINT.fullmatch(text)
    if not match:
        return None
    try:
        lon, lat = float(match[1]), float(match[2])
    except ValueError:
        return None
    if not (math.isfinite(lon) and math.isfinite(lat) and -180 <= lon <= 180 and -90 <= lat <= 90):
        return None
    return lon, lat


def _type_ok(kind: str, value: Any) -> bool:
    if kind == "STRING":
        return isinstance(value, str)
    if kind == "INTEGER":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "FLOAT":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "BOOLEAN":
        return isinstance(value, bool)
    if kind == "TIMESTAMP":
        if not isinstance(value, str):
            return False
        try:
            parse_timestamp(value)
        except ValueError:
            return False
        return True
    if kind == "GEOGRAPHY":
        return isinstance(value, str) and parse_point(value) is not None
    raise ValueError(f"schema type {kind} is not handled by the validator; add it to corrosion/inference/results.py")


def validate_row(row: Mapping[str, Any], schema: Sequence[SchemaField]) -> list[str]:
    """Problems that would make BigQuery reject ``row`` (empty when it loads)."""
    problems = []
    names = {f.name for f in schema}
    problems += [f"unknown column {k!r}" for k in row if k not in names]
    for f in schema:
        value = row.get(f.name)
        if value is None:
            if f.mode == "REQUIRED":
                problems.append(f"{f.name} is REQUIRED but missing or null")
        elif not _type_ok(f.type, value):
            problems.append(f"{f.name}={value!r} is not a valid {f.type}")
    return problems


def _csv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return csv_rows.Number(repr(value))
    if isinstance(value, int):
        return csv_rows.Number(str(value))
    return str(value)


def csv_line(row: Mapping[str, Any], columns: Sequence[str]) -> str:
    """One CSV record (no newline), RFC 4180 and spreadsheet-safe (``csv_rows``); nulls are empty fields."""
    return csv_rows.record(_csv_value(row.get(c)) for c in columns)


def csv_header(columns: Sequence[str]) -> str:
    return csv_rows.header(columns)


def parse_csv_value(text: str, kind: str) -> Any:
    """Inverse of ``csv_line`` for one field of schema type ``kind``."""
    if text == "":
        return None
    if kind == "INTEGER":
        return int(text)
    if kind == "FLOAT":
        return float(text)
    if kind == "BOOLEAN":
        return text == "true"
    return text


def read_csv_rows(
    paths: Iterable[str], schema: Sequence[SchemaField] | None = None, unreadable: list[str] | None = None
) -> list[dict[str, Any]]:
    """Result rows back from CSV shards, typed by the schema (for tests, scripts and --skip_processed).

    A shard written before a column was added (columns are only ever added at the end) gives that
    column as None, so every row has every schema column whatever night it comes from. With
    ``unreadable`` (earlier nights' shards, which anything may have touched since), undecodable bytes
    are replaced and a record that is not a row ("PATH line N: why") goes there instead of raising."""
    schema = schema or load_schema()
    types = {f.name: f.type for f in schema}
    rows = []
    for path in paths:
        text = io_utils.read_text(path, errors="strict" if unreadable is None else "replace")
        reader = csv.DictReader(io.StringIO(text))
        absent = dict.fromkeys(n for n in types if n not in (reader.fieldnames or ()))
        for record in reader:
            try:
                if None in record or None in record.values():
                    raise ValueError(f"{len(reader.fieldnames or ())} columns in the header, not in this record")
                rows.append({**{k: parse_csv_value(v, types.get(k, "STRING")) for k, v in record.items()}, **absent})
            except ValueError as e:
                if unreadable is None:
                    raise ValueError(f"{path} line {reader.line_num}: {e}") from e
                unreadable.append(f"{path} line {reader.line_num}: {e}")
    return rows


def read_night(pattern: str) -> list[dict[str, Any]]:
    """A night's result rows from its CSV shards (a glob, e.g. ``OUT/date=DAY/SURVEY-results-*.csv``)."""
    paths = io_utils.matching(pattern)
    if not paths:
        raise FileNotFoundError(
            f"{pattern} matches no result CSV (batch inference writes OUT/date=DAY/SURVEY-results-*.csv)"
        )
    return read_csv_rows(paths)


def errors_pattern(results_pattern: str) -> str:
    """The error shards written beside the result shards a glob names."""
    head, _, tail = results_pattern.rpartition("-results-")
    return f"{head}-errors-{tail}" if head else results_pattern


def read_errors(pattern: str) -> list[dict[str, str]]:
    """Error rows (``ERROR_COLUMNS``) from the shards a glob matches; none when it matches none."""
    return [row for path in io_utils.matching(pattern) for row in csv.DictReader(io.StringIO(io_utils.read_text(path)))]


# Python type of a column -> its BigQuery type; a field may name another in its metadata (TIMESTAMP).
BIGQUERY_TYPES = {str: "STRING", int: "INTEGER", float: "FLOAT", bool: "BOOLEAN"}


@dataclass(frozen=True)
class ResultRow:
    """One scored image: the row written to CSV and BigQuery, column for column as in the schema file.

    ``test_tiling_grading`` checks these fields against ``configs/bigquery_schema.json`` (name,
    order, type, mode), so the file stays the one definition and this type cannot drift from it.
    """

    image_uri: str
    image_sha256: str
    width: int  # after EXIF orientation
    height: int
    rust_probability: float
    is_rust: bool
    num_boxes: int | None  # None: no detector was run
    boxes: str | None  # JSON [[xmin, ymin, xmax, ymax, score], ...] in original pixels
    rust_area_fraction: float | None
    rust_grade: int | None
    classifier_version: str
    detector_version: str | None
    survey_id: str
    processed_at: str = field(metadata={"bigquery_type": "TIMESTAMP"})  # format_timestamp text
    # Where and what (issue 30): from the photo's EXIF (corrosion.inference.exif) and its folder
    # (corrosion.inference.assets); None where the photo or the layout does not say.
    capture_time: str | None = field(default=None, metadata={"bigquery_type": "TIMESTAMP"})
    gps_latitude: float | None = None
    gps_longitude: float | None = None
    gps_altitude: float | None = None
    camera_model: str | None = None
    location: str | None = field(default=None, metadata={"bigquery_type": "GEOGRAPHY"})  # WKT POINT(lon lat)
    asset: str | None = None
    zone: str | None = None

    @property
    def flagged(self) -> bool:
        """Rust by the classifier or by boxes: what gets a preview and a place in the report."""
        return self.is_rust or (self.num_boxes or 0) > 0

    def to_bigquery(self) -> dict[str, Any]:
        """The row as WriteToBigQuery takes it (column order of the schema)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def to_csv_line(self) -> str:
        """The row as one CSV record in ``ROW_COLUMNS`` order (the schema's, as the test checks)."""
        return csv_line(self.to_bigquery(), ROW_COLUMNS)


ROW_COLUMNS = tuple(f.name for f in dataclasses.fields(ResultRow))


def row_schema() -> tuple[SchemaField, ...]:
    """``ResultRow``'s fields as BigQuery fields (no descriptions): what the schema file must match."""
    hints = typing.get_type_hints(ResultRow)
    out = []
    for f in dataclasses.fields(ResultRow):
        kinds = [a for a in typing.get_args(hints[f.name]) if a is not type(None)] or [hints[f.name]]
        nullable = type(None) in typing.get_args(hints[f.name])
        kind = f.metadata.get("bigquery_type") or BIGQUERY_TYPES[kinds[0]]
        out.append(SchemaField(f.name, kind, "NULLABLE" if nullable else "REQUIRED"))
    return tuple(out)
