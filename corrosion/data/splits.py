"""Deterministic, leak-free, stable splits of near-duplicate groups.

A group's split is a function of its **key**, the smallest sha256 among the files in it, hashed
with a salt into [0, 1) and cut by the configured fractions. So:

* adding unrelated images never moves an existing group (its key does not change);
* adding an identical copy of a file already present changes nothing (same sha256);
* a new near-duplicate that joins a group moves the group only if its sha256 is smaller than the
  group's key (chance 1/(n+1) for a group of n files) or if it bridges two old groups that had
  different splits. ``previous`` (sha256 -> split from an earlier ``manifest.csv``) pins those too:
  a group holding a file seen before keeps that file's split.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from corrosion.data.dataset_config import SplitConfig
from corrosion.data.dedup import Signature


@dataclass(frozen=True)
class Assignment:
    group: str  # the group key (smallest member sha256)
    split: str
    size: int  # unique images in the group
    rejected: str | None = None  # reason when the whole group is rejected


def split_for_key(key: str, fractions: dict[str, float], salt: str) -> str:
    digest = hashlib.sha256(f"{salt}:{key}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    edge = 0.0
    names = list(fractions)
    for name in names:
        edge += fractions[name]
        if u < edge:
            return name
    return names[-1]


def group_split(group: list[Signature], cfg: SplitConfig, previous: dict[str, str] | None = None) -> tuple[str, str]:
    """(group key, split) for one near-duplicate group."""
    key = min(sha for s in group for sha in s.shas)
    if previous:
        seen = sorted((sha, previous[sha]) for s in group for sha in s.shas if sha in previous)
        if seen:
            return key, seen[0][1]
    if cfg.honour_source_splits:
        source = {sp for s in group for sp in s.source_splits}
        if len(source) == 1 and all(s.source_splits for s in group) and next(iter(source)) in cfg.fractions:
            return key, next(iter(source))
    return key, split_for_key(key, cfg.fractions, cfg.salt)


def assign(
    groups: list[list[Signature]],
    cfg: SplitConfig,
    reject_conflicts: bool = True,
    previous: dict[str, str] | None = None,
) -> dict[str, Assignment]:
    """Unique-image key -> its group's assignment; groups labelled both rust and no_rust are rejected."""
    out = {}
    for group in groups:
        key, split = group_split(group, cfg, previous)
        classes = sorted({s.image_class for s in group})
        rejected = None
        if reject_conflicts and len(classes) > 1:
            rejected = f"near-duplicate group {key[:16]} of {len(group)} images is labelled {' and '.join(classes)}"
        for s in group:
            out[s.key] = Assignment(key, split, len(group), rejected)
    return out
