"""Is the candidate classifier at least as good as the one in use? Both on the same photos, side by side.

    python -m training.compare --baseline ROOT_OR_DIR [--baseline_version V1] --candidate DIR_OR_ROOT \\
        [--candidate_version V2] --data DATASET_OR_FOLDER [--split test] --output DIR [--promote ROOT]

Both models score the same photos (``training.evaluate``, each at its own shipped threshold). For
the figures that matter (recall at the operating point, ROC-AUC, precision) the difference
candidate - baseline comes with a 95 % interval from a paired bootstrap over photos (the same
resampled photos for both models, 2,000 draws, seeded). The candidate is *worse* on a figure when
the whole interval lies below zero; it is promoted (``--promote ROOT``: ``ROOT/current`` names its
version, ``corrosion.models.versions``) only when it is worse on none of recall and ROC-AUC.
Classifiers only for now; region models are compared by ``training.compare_region_models``.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import logging
import sys
from dataclasses import dataclass

import numpy as np

from corrosion.core import io_utils
from corrosion.data import layout
from corrosion.models import serving, versions
from training.classifier import metrics as cm

log = logging.getLogger("training.compare")
DRAWS = 2000
DECIDING = ("recall", "roc_auc")  # a candidate worse on either is not promoted
FIGURES = ("recall", "roc_auc", "precision")


@dataclass(frozen=True)
class Scored:
    version: str
    threshold: float
    labels: np.ndarray  # 1 = rust
    scores: np.ndarray


def figures(labels: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, float | None]:
    s = cm.summarise(labels, scores, threshold)
    return {k: s[k] for k in FIGURES}


def paired_bootstrap(baseline: Scored, candidate: Scored, draws: int = DRAWS, seed: int = 0) -> dict[str, dict]:
    """Per figure: both values, the difference and its 95 % interval over photos resampled in pairs."""
    if baseline.labels.tolist() != candidate.labels.tolist():
        raise ValueError("the two models were not scored on the same photos")
    rng = np.random.default_rng(seed)
    n = baseline.labels.size
    diffs: dict[str, list[float]] = {k: [] for k in FIGURES}
    for _ in range(draws):
        pick = rng.integers(0, n, n)
        y = baseline.labels[pick]
        if y.min() == y.max():  # a draw with one class has no ROC-AUC: drawn again by the next one
            continue
        b = figures(y, baseline.scores[pick], baseline.threshold)
        c = figures(y, candidate.scores[pick], candidate.threshold)
        for k in FIGURES:
            if b[k] is not None and c[k] is not None:
                diffs[k].append(c[k] - b[k])
    b = figures(baseline.labels, baseline.scores, baseline.threshold)
    c = figures(candidate.labels, candidate.scores, candidate.threshold)
    out = {}
    for k in FIGURES:
        low, high = np.percentile(diffs[k], [2.5, 97.5]) if diffs[k] else (None, None)
        out[k] = {
            "baseline": b[k],
            "candidate": c[k],
            "difference": None if b[k] is None or c[k] is None else c[k] - b[k],
        }
        out[k] |= {"low": None if low is None else float(low), "high": None if high is None else float(high)}
    return out


def verdict(table: dict[str, dict]) -> tuple[bool, str]:
    """Promote unless the candidate is worse (interval wholly below zero) on a deciding figure."""
    worse = [k for k in DECIDING if table[k]["high"] is not None and table[k]["high"] < 0]
    better = [k for k in FIGURES if table[k]["low"] is not None and table[k]["low"] > 0]
    said = ", ".join(f"{k} {table[k]['difference']:+.3f}" for k in FIGURES if table[k]["difference"] is not None)
    if worse:
        return False, f"not promoted: worse on {', '.join(worse)} ({said})"
    beat = f"better on {', '.join(better)}" if better else "no figure better beyond the intervals"
    return True, f"promoted: worse on none of {', '.join(DECIDING)}; {beat} ({said})"


def scored(model_dir: str, data: str, split: str, output: str) -> Scored:
    """The model's scores on ``split`` of ``data`` (a data set, or a raw folder's photos), via training.evaluate."""
    from training import evaluate

    meta = serving.read_metadata(model_dir)
    if meta.kind != "classifier":
        raise SystemExit(f"{model_dir} holds a {meta.kind}: training.compare compares classifiers")
    result = evaluate.evaluate(model_dir, data, output, (split,))
    names = [s for s in result["splits"] if s == split] or list(result["splits"])
    rows = list(csv.DictReader(io.StringIO(io_utils.read_text(io_utils.join(output, f"predictions_{names[0]}.csv")))))
    labels = np.array([r["label"] == "rust" for r in rows], np.int64)
    return Scored(
        meta.version, float(result["threshold"]), labels, np.array([float(r["rust_probability"]) for r in rows])
    )


def markdown(table: dict, baseline: Scored, candidate: Scored, decision: str) -> str:
    def cell(v):
        return "n/a" if v is None else f"{v:.3f}"

    lines = [
        f"| figure ({baseline.labels.size} photos) | baseline `{baseline.version}` | candidate `{candidate.version}` "
        "| difference | 95 % interval |",
        "|---|---|---|---|---|",
    ]
    for k in FIGURES:
        t = table[k]
        lines.append(
            f"| {k} | {cell(t['baseline'])} | {cell(t['candidate'])} | {cell(t['difference'])} "
            f"| {cell(t['low'])} .. {cell(t['high'])} |"
        )
    return "\n".join([*lines, "", decision, ""])


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for role in ("baseline", "candidate"):
        p.add_argument(f"--{role}", required=True, help="model folder or model root")
        p.add_argument(f"--{role}_version", help="with a model root: this version (default: its current one)")
    p.add_argument("--data", required=True, help="data set directory or raw labelled folder")
    p.add_argument("--split", default=layout.TEST, help="split of a data set to score (default test)")
    p.add_argument("--output", required=True, help="each model's evaluation and comparison.md / .json")
    p.add_argument("--promote", help="model root whose current version becomes the candidate if it is not worse")
    args = p.parse_args(argv)
    dirs = {
        role: versions.resolve(getattr(args, role), getattr(args, f"{role}_version"))
        for role in ("baseline", "candidate")
    }
    runs = {role: scored(d, args.data, args.split, io_utils.join(args.output, role)) for role, d in dirs.items()}
    table = paired_bootstrap(runs["baseline"], runs["candidate"])
    promote, decision = verdict(table)
    text = markdown(table, runs["baseline"], runs["candidate"], decision)
    result = {"baseline": dirs["baseline"], "candidate": dirs["candidate"], "figures": table, "promote": promote}
    io_utils.write_text(
        io_utils.join(args.output, "comparison.json"), json.dumps(result | {"verdict": decision}, indent=2) + "\n"
    )
    io_utils.write_text(io_utils.join(args.output, "comparison.md"), text)
    print(text)
    if args.promote and promote:
        version = runs["candidate"].version
        if not versions.is_complete(args.promote, version):
            versions.publish(dirs["candidate"], args.promote)
        versions.promote(args.promote, version)
    return 0 if promote else 3


if __name__ == "__main__":
    sys.exit(main())
