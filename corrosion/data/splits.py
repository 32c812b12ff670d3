"""Deterministic, leak-free, stable splits of near-duplicate groups.

A group's split is a function of its **key**, the smallest sha256 among the files in it, hashed
with a salt into [0, 1) and cut by the configured fractions. So:

* adding unrelated images never moves an existing group (its key does not change);
* adding an identical copy of a file already present changes nothing (same sha256);
* a new near-duplicate that joins a group moves the group only if its sha256 is smaller than the
  group's key (chance 1/(n+1) for a group of n files) or if it bridges two old groups that had
  different splits. ``previous`` (sha256 -> split from an earlier ``manifest.csv``) pins those too:
  a group holding a file seen before keeps that file's split.

With ``stratify`` (the default in configs/dataset.yaml) the fractions hold within every stratum
(source x what the labels say x class, ``dedup.stratum``), not only on average: a source of 53
region photos would otherwise put 2 or 9 of them in test by chance. Within a stratum the groups
are ordered by the same salted hash and cut at the fractions of their image count, so a new
unrelated group moves at most the groups at a cut; ``previous`` still pins every group seen before.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from corrosion.data.dataset_config import SplitConfig
from corrosion.data.dedup import LABEL_KINDS, Signature


@dataclass(frozen=True)
class Assignment:
    group: str  # the group key (smallest member sha256)
    split: str
    size: int  # unique images in the group
    rejected: str | None = None  # reason when the whole group is rejected


def _unit(key: str, salt: str) -> float:
    digest = hashlib.sha256(f"{salt}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def split_for_key(key: str, fractions: dict[str, float], salt: str) -> str:
    return _cut(_unit(key, salt), fractions)


def _cut(u: float, fractions: dict[str, float]) -> str:
    edge = 0.0
    names = list(fractions)
    for name in names:
        edge += fractions[name]
        if u < edge:
            return name
    return names[-1]


def group_stratum(group: list[Signature]) -> str:
    """The richest stratum among a group's members (a region photo's copy in a label-only source
    is a region photo); ``""`` for signatures without one."""

    def richness(st: str) -> tuple[int, str]:
        parts = st.rsplit("/", 2)
        kind = parts[1] if len(parts) == 3 else ""
        return (LABEL_KINDS.index(kind) if kind in LABEL_KINDS else len(LABEL_KINDS), st)

    return min((s.stratum for s in group), key=richness)


def stratified_splits(groups: list[list[Signature]], cfg: SplitConfig) -> dict[str, str]:
    """Group key -> split, each stratum cut at the fractions of its image count in salted-hash order."""
    strata: dict[str, list[tuple[float, str, int]]] = {}
    for group in groups:
        key = min(sha for s in group for sha in s.shas)
        strata.setdefault(group_stratum(group), []).append((_unit(key, cfg.salt), key, len(group)))
    out = {}
    for members in strata.values():
        total, seen = sum(size for _, _, size in members), 0
        for _, key, size in sorted(members):
            out[key] = _cut((seen + size / 2) / total, cfg.fractions)
            seen += size
    return out


def group_split(
    group: list[Signature],
    cfg: SplitConfig,
    previous: dict[str, str] | None = None,
    stratified: dict[str, str] | None = None,
) -> tuple[str, str]:
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
    if stratified is not None:
        return key, stratified[key]
    return key, split_for_key(key, cfg.fractions, cfg.salt)


def assign(
    groups: list[list[Signature]],
    cfg: SplitConfig,
    reject_conflicts: bool = True,
    previous: dict[str, str] | None = None,
) -> dict[str, Assignment]:
    """Unique-image key -> its group's assignment; groups labelled both rust and no_rust are rejected."""
    out = {}
    stratified = stratified_splits(groups, cfg) if cfg.stratify else None
    for group in groups:
        key, split = group_split(group, cfg, previous, stratified)
        classes = sorted({s.image_class for s in group})
        rejected = None
        if reject_conflicts and len(classes) > 1:
            rejected = f"near-duplicate group {key[:16]} of {len(group)} images is labelled {' and '.join(classes)}"
        for s in group:
            out[s.key] = Assignment(key, split, len(group), rejected)
    return out
