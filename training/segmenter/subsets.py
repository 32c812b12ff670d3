"""Parts of a split's cached photos without copying their features: the frozen features of a
training split are gigabytes (memory-mapped), so a subset (one source held out) or a union (the
augmented views beside the originals) is an index over them, gathered one batch at a time."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from training.segmenter.data import SplitData


class RowView:
    """Rows ``rows`` of the arrays ``parts`` laid end to end, read a batch at a time."""

    def __init__(self, parts: Sequence, rows: np.ndarray) -> None:
        self.parts = list(parts)
        self.starts = np.cumsum([0] + [len(p) for p in self.parts])
        self.rows = np.asarray(rows, np.int64)
        self.shape = (len(self.rows), *self.parts[0].shape[1:])
        self.dtype = self.parts[0].dtype

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index) -> np.ndarray:
        wanted = self.rows[index]
        part = np.searchsorted(self.starts, wanted, side="right") - 1
        out = np.empty((len(wanted), *self.shape[1:]), self.dtype)
        for p in np.unique(part):
            at = np.flatnonzero(part == p)
            out[at] = self.parts[p][wanted[at] - self.starts[p]]
        return out


def _pick(values: list, rows: np.ndarray) -> list:
    return [values[i] for i in rows]


def concat(splits: Sequence[SplitData]) -> SplitData:
    """The photos of ``splits`` one after another (features indexed, not copied)."""
    first = splits[0]
    total = sum(len(s) for s in splits)
    features = {name: RowView([s.features[name] for s in splits], np.arange(total)) for name in first.features}
    return SplitData(
        features,
        np.concatenate([s.target for s in splits]),
        np.concatenate([s.weight for s in splits]),
        [k for s in splits for k in s.kinds],
        [k for s in splits for k in s.sources],
        [k for s in splits for k in s.names],
        [k for s in splits for k in s.truth],
        [k for s in splits for k in s.boxes],
        sum(s.left_out for s in splits),
        counts={k: sum(s.counts.get(k, 0) for s in splits) for k in dict.fromkeys(k for s in splits for k in s.counts)},
        keys=[k for s in splits for k in s.keys],
    )


def select(data: SplitData, rows: np.ndarray) -> SplitData:
    """The photos at ``rows`` of ``data`` (features indexed, not copied)."""
    rows = np.asarray(rows, np.int64)
    return dataclasses.replace(
        data,
        features={name: RowView([values], rows) for name, values in data.features.items()},
        target=data.target[rows],
        weight=data.weight[rows],
        kinds=_pick(data.kinds, rows),
        sources=_pick(data.sources, rows),
        names=_pick(data.names, rows),
        truth=_pick(data.truth, rows),
        boxes=_pick(data.boxes, rows),
        keys=_pick(data.keys, rows) if len(data.keys) == len(data) else [],
        sample_encoded=[],
        originals=None,
    )


def where_source(data: SplitData, keep, originals: int | None = None) -> np.ndarray:
    """Row indices whose source passes ``keep``; only the first ``originals`` rows (the photos, not
    their mirrors) when it is given."""
    n = len(data) if originals is None else originals
    return np.array([i for i in range(n) if keep(data.sources[i])], np.int64)
