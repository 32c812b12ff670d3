"""``stats.json``: the counts of a build, summed from events the pipeline's steps emit.

An event is a small tuple ``(kind, key[, sub])``, made only by this module's functions so its
kinds are spelled once; plain tuples because Beam sums them by key (``CombinePerKey``) with its
fast deterministic coder. ``build`` turns the summed events into the file's layout.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from corrosion.core.rejects import Reject
from corrosion.data.manifest import DUPLICATE, KEPT, REJECTED, ManifestRow

Event = tuple[str, ...]

IMAGES = "images"
IMAGES_REJECTED = "images_rejected_by_reason"
RECORDS = "records"
BOXES = "boxes"
DUPLICATES = "duplicates_collapsed"
REJECTS_BY_REASON = "rejects_by_reason"
REJECTS_BY_STAGE = "rejects_by_stage"
FIXES = "fixes"
NOTES = "notes"
IN_GROUPS = "images_in_near_duplicate_groups"
IGNORED = "ignored_files"
STRATA = "records_by_stratum"  # split -> "source/regions|boxes|label/class" -> records

_TOTALS = (DUPLICATES, IN_GROUPS)  # kinds summed into one number


def fix(code: str) -> Event:
    """A fix validation made (``orientation_applied``, ``box_clipped``, ...)."""
    return (FIXES, code)


def note(code: str) -> Event:
    """Something worth knowing that changed nothing (``identical_copies_with_different_boxes``)."""
    return (NOTES, code)


def in_near_duplicate_group(split: str) -> Event:
    return (IN_GROUPS, split)


def record_stratum(split: str, stratum: str) -> Event:
    """A record written to ``split``, by what its source says about it (``dedup.stratum``)."""
    return (STRATA, split, stratum)


def ignored_file() -> Event:
    return (IGNORED,)


def manifest_events(row: ManifestRow) -> Iterator[tuple[Event, int]]:
    """(event, weight) of one manifest row: its status, and for kept rows its record and boxes."""
    yield (IMAGES, row.status), 1
    if row.status == REJECTED:
        yield (IMAGES_REJECTED, row.reason), 1
    if row.status == KEPT:
        yield (RECORDS, row.split, row.label), 1
        yield (BOXES, row.split), int(row.boxes)
    if row.status == DUPLICATE:
        yield (DUPLICATES, row.split), 1


def reject_events(reject: Reject) -> Iterator[tuple[Event, int]]:
    yield (REJECTS_BY_REASON, reject.reason), 1
    yield (REJECTS_BY_STAGE, reject.stage), 1


def build(counts: Iterable[tuple[Event, int]], split_names: list[str], extra: dict) -> dict:
    """The ``stats.json`` mapping from summed events; ``extra`` adds groups and shards."""
    stats: dict = {
        IMAGES: {},
        RECORDS: {s: {} for s in split_names},
        "records_total": 0,
        BOXES: {s: 0 for s in split_names},
        DUPLICATES: 0,
        IMAGES_REJECTED: {},
        REJECTS_BY_REASON: {},
        REJECTS_BY_STAGE: {},
        FIXES: {},
        NOTES: {},
        IN_GROUPS: 0,
        **extra,
    }
    for key, n in sorted(counts):
        kind = key[0]
        if kind == RECORDS:
            stats[RECORDS].setdefault(key[1], {})[key[2]] = n
            stats["records_total"] += n
        elif kind == STRATA:
            stats.setdefault(STRATA, {}).setdefault(key[1], {})[key[2]] = n
        elif kind == BOXES:
            stats[BOXES][key[1]] = stats[BOXES].get(key[1], 0) + n
        elif kind in _TOTALS:
            stats[kind] += n
        elif kind == IGNORED:
            stats[IGNORED] = n
        else:
            stats.setdefault(kind, {})[key[1]] = n
    stats["boxes_total"] = sum(stats[BOXES].values())
    return stats


def group_counts(group_sizes: Iterable[tuple[str, int]]) -> dict[str, int]:
    """``groups`` and ``near_duplicate_groups`` from (group key, unique images in it) pairs."""
    groups = dict(group_sizes)
    return {"groups": len(groups), "near_duplicate_groups": sum(1 for s in groups.values() if s > 1)}
