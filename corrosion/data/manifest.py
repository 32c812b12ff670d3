"""``manifest.csv``: one row per input file of a build, saying what became of it and why.

The dataset pipeline writes it; ``--previous_manifest`` (stable splits across rebuilds), the
detector's held-out check and the tests read it back, all through ``ManifestRow``, so a column
is named in one place.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import logging
from dataclasses import dataclass

from corrosion.core import csv_rows, io_utils

log = logging.getLogger(__name__)

KEPT, DUPLICATE, REJECTED = "kept", "duplicate", "rejected"


@dataclass(frozen=True)
class ManifestRow:
    """One input file. ``boxes``/``width``/``height`` are empty for files that never decoded."""

    path: str
    sha256: str = ""
    status: str = REJECTED
    reason: str = ""
    group: str = ""  # near-duplicate group key (16 hex digits)
    split: str = ""
    label: str = ""  # image class
    boxes: int | str = ""
    width: int | str = ""
    height: int | str = ""
    duplicate_of: str = ""  # the kept file an identical copy collapsed into
    annotation: str = ""
    source: str = ""

    def to_csv(self) -> str:
        values = (getattr(self, c) for c in COLUMNS)
        return csv_rows.record(csv_rows.Number(v) if isinstance(v, int) else v for v in values)

    @classmethod
    def from_csv(cls, row: dict[str, str]) -> ManifestRow:
        """A row as ``csv.DictReader`` gives it; numbers come back as ints, missing columns empty."""
        values = {c: row.get(c) or "" for c in COLUMNS}
        for column in ("boxes", "width", "height"):
            if values[column].isdigit():
                values[column] = int(values[column])
        return cls(**values)

    @property
    def placed(self) -> bool:
        """Kept or a duplicate of a kept file: it has a split."""
        return self.status in (KEPT, DUPLICATE) and bool(self.split)


COLUMNS = tuple(f.name for f in dataclasses.fields(ManifestRow))


def header() -> str:
    return csv_rows.header(COLUMNS)


def parse(text: str) -> list[ManifestRow]:
    return [ManifestRow.from_csv(r) for r in csv.DictReader(io.StringIO(text))]


def read(path: str, errors: str = "strict") -> list[ManifestRow]:
    """The rows of a manifest file (local or gs://)."""
    return parse(io_utils.read_text(path, errors=errors))


def previous_splits(path: str | None) -> dict[str, str]:
    """sha256 -> split of the kept and duplicate rows of an earlier build's manifest.

    Lenient on purpose: only sha256 and split are used, so a stray byte in a path column (a
    manifest edited on Windows) is harmless and says so.
    """
    if not path:
        return {}
    text = io_utils.read_text(path, errors="replace")
    if "\ufffd" in text:
        log.warning(
            "%s holds bytes that are not UTF-8 (shown as U+FFFD); its sha256 and split columns are still used", path
        )
    previous = {r.sha256: r.split for r in parse(text) if r.placed}
    log.info("read %d earlier split assignments from %s", len(previous), path)
    return previous
