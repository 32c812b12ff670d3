"""Two models on the same photos: each figure's difference with a 95 % interval from a paired bootstrap.

Each draw resamples the photos (or, where near-duplicate groups are known, whole groups, so that
five views of one rusty weld count as one piece of evidence) with replacement, and both models
are scored on the same draw. A candidate is *worse* on a figure when the whole interval of its
gain lies below zero, *better* when it lies above. Promotion is refused when it is worse on a
deciding figure; "not worse" is the bar, since a model trained on more (corrected) photos is the
point of the cycle and a tie should not block it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

DRAWS = 2000

# Per-photo weights (how many times each photo was drawn) -> figure name -> value (None: undefined).
FigureFn = Callable[[np.ndarray], dict[str, float | None]]


@dataclass(frozen=True)
class Figure:
    key: str
    label: str
    higher_is_better: bool = True
    deciding: bool = False  # a candidate worse on it is not promoted


def draws_weights(groups: np.ndarray, draws: int, seed: int) -> np.ndarray:
    """(draws, photos) how many times each photo is in each draw: groups drawn with replacement."""
    codes, index = np.unique(groups, return_inverse=True)
    rng = np.random.default_rng(seed)
    picked = rng.integers(0, codes.size, (draws, codes.size))
    per_group = np.stack([np.bincount(row, minlength=codes.size) for row in picked])
    return per_group[:, index].astype(np.float64)


def paired_bootstrap(
    baseline: FigureFn,
    candidate: FigureFn,
    figures: Sequence[Figure],
    groups: np.ndarray,
    draws: int = DRAWS,
    seed: int = 0,
) -> dict[str, dict]:
    """Per figure: both values on all photos, the difference (candidate - baseline) and its 95 %
    interval; ``groups`` gives each photo's group (its own index where none is known)."""
    ones = np.ones(len(groups))
    b_all, c_all = baseline(ones), candidate(ones)
    diffs: dict[str, list[float]] = {f.key: [] for f in figures}
    for weights in draws_weights(np.asarray(groups), draws, seed):
        b, c = baseline(weights), candidate(weights)
        for f in figures:  # a draw where a figure is undefined (one class only) does not count for it
            if b[f.key] is not None and c[f.key] is not None:
                diffs[f.key].append(c[f.key] - b[f.key])
    table = {}
    for f in figures:
        low, high = (float(v) for v in np.percentile(diffs[f.key], [2.5, 97.5])) if diffs[f.key] else (None, None)
        b, c = b_all[f.key], c_all[f.key]
        table[f.key] = {
            "baseline": b,
            "candidate": c,
            "difference": None if b is None or c is None else c - b,
            "low": low,
            "high": high,
            "draws": len(diffs[f.key]),
        }
    return table


def gain_interval(figure: Figure, row: dict) -> tuple[float, float] | None:
    """The interval of the candidate's improvement (positive = better whichever way the figure points)."""
    if row["low"] is None:
        return None
    return (row["low"], row["high"]) if figure.higher_is_better else (-row["high"], -row["low"])


def verdict(table: dict[str, dict], figures: Sequence[Figure]) -> tuple[bool, str]:
    """Promote unless the candidate is worse (gain interval wholly below zero) on a deciding figure."""
    gains = {f.key: gain_interval(f, table[f.key]) for f in figures}
    worse = [f.key for f in figures if f.deciding and gains[f.key] is not None and gains[f.key][1] < 0]
    better = [f.key for f in figures if gains[f.key] is not None and gains[f.key][0] > 0]
    deciding = ", ".join(f.key for f in figures if f.deciding)
    said = ", ".join(
        f"{f.key} {table[f.key]['difference']:+.3f}" for f in figures if table[f.key]["difference"] is not None
    )
    unmeasured = [f.key for f in figures if f.deciding and gains[f.key] is None]
    caveat = f"; not measurable on these photos: {', '.join(unmeasured)}" if unmeasured else ""
    if worse:
        return False, f"not promoted: worse on {', '.join(worse)} ({said}){caveat}"
    beat = f"better on {', '.join(better)}" if better else "no figure better beyond the intervals"
    return True, f"promoted: worse on none of {deciding}; {beat} ({said}){caveat}"


def markdown(table: dict, figures: Sequence[Figure], photos: str, baseline: str, candidate: str, decision: str) -> str:
    def cell(v):
        return "n/a" if v is None else f"{v:.3f}"

    lines = [
        f"| figure ({photos}) | better | baseline `{baseline}` | candidate `{candidate}` | difference | 95 % interval |",
        "|---|---|---|---|---|---|",
    ]
    for f in figures:
        t = table[f.key]
        lines.append(
            f"| {f.label}{' (deciding)' if f.deciding else ''} | {'higher' if f.higher_is_better else 'lower'} "
            f"| {cell(t['baseline'])} | {cell(t['candidate'])} | {cell(t['difference'])} "
            f"| {cell(t['low'])} .. {cell(t['high'])} |"
        )
    return "\n".join([*lines, "", decision, ""])
