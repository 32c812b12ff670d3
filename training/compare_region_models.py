"""Choose the rust-region model: segmenters against detectors, several seeds each, on one split.

    python -m training.compare_region_models --data DATASET --split validation --output DIR \\
        --segmenter M1 --segmenter M2 ... --detector D1 --detector D2 ...

Every model is scored by ``training.evaluate`` (a detector's rusted area is its box union at its
shipped threshold, as batch inference reports it), into DIR/<model folder name>/; a model already
scored there is read back. ``comparison.md`` / ``comparison.json`` hold mean and standard deviation
over the seeds of each kind. The choice is made on the figure inspectors act on, the rusted-%
error behind the ASTM D610 grade, and called only when the means differ by more than the seeds'
spread.
``--model_card MODEL_DIR`` puts the comparison into the shipped model's ``model_card.md`` (its
section replaced on a re-run) and ``region_model_choice.json`` beside it.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import numpy as np

from corrosion import cli
from corrosion.core import io_utils
from corrosion.data import layout
from training.common import report

log = logging.getLogger("training.compare_region_models")

POOLED = "pooled"
# (label, key, higher is better)
FIGURES = (
    ("rusted-% MAE (points)", "rusted_pct_mae", False),
    ("D610 grade within 1", "d610_within_1", True),
    ("rust-pixel F1", "pixel_f1", True),
    ("rust-pixel IoU", "pixel_iou", True),
    ("box AP50 vs source boxes", "AP50", True),
)
PRIMARY = "rusted_pct_mae"


def scored(model_dir: str, data: str, split: str, output: str) -> dict:
    """The model's pooled figures on ``split``: a detector's AP from its own boxes, its pixel and
    rusted-% figures from their union; a segmenter's all from its map."""
    from training import evaluate

    target = io_utils.join(output, Path(model_dir.rstrip("/")).name)
    path = io_utils.join(target, report.METRICS_FILE)
    result = json.loads(io_utils.read_text(path)) if io_utils.exists(path) else None
    if result is None:
        result = evaluate.evaluate(model_dir, data, target, (split,))
    if result["kind"] == "detector":
        area = result["rusted_area"][split][POOLED]
        return area | {"AP50": result["splits"][split]["AP50"], "AP": result["splits"][split]["AP"]}
    return result["data"][data][split][POOLED]


def summary(runs: dict[str, list[dict]]) -> dict[str, dict[str, dict[str, float]]]:
    """Mean, standard deviation (ddof 1) and runs per kind and figure."""
    out = {}
    for kind, figures in runs.items():
        out[kind] = {}
        for _, key, _ in FIGURES:
            values = np.array([f[key] for f in figures if f.get(key) is not None], np.float64)
            sd = float(values.std(ddof=1)) if len(values) > 1 else None
            out[kind][key] = {"mean": float(values.mean()), "sd": sd, "runs": len(values)}
    return out


def choose(table: dict[str, dict[str, dict[str, float]]]) -> tuple[str | None, str]:
    """The kind with the better primary figure, when its lead exceeds both kinds' seed spread."""
    if len(table) < 2:
        return None, "one kind only: nothing to choose between"
    (a, fa), (b, fb) = sorted(table.items(), key=lambda kv: kv[1][PRIMARY]["mean"])[:2]
    gap = fb[PRIMARY]["mean"] - fa[PRIMARY]["mean"]
    spread = max(fa[PRIMARY]["sd"] or 0.0, fb[PRIMARY]["sd"] or 0.0)
    if gap <= spread:
        return None, f"{a} and {b} differ by {gap:.2f} points, within the seeds' spread ({spread:.2f}): no call"
    return a, f"{a}: rusted-% MAE {fa[PRIMARY]['mean']:.2f} vs {b} {fb[PRIMARY]['mean']:.2f} (spread {spread:.2f})"


def markdown(table: dict, runs: dict[str, list[str]], split: str, verdict: str) -> str:
    def cell(f: dict) -> str:
        return f"{f['mean']:.3f}" + (f" ± {f['sd']:.3f}" if f["sd"] is not None else "")

    rows = [[label, *(cell(table[kind][key]) for kind in table)] for label, key, _ in FIGURES]
    lines = [
        f"## Rust-region model choice ({split} split, mean ± sd over seeds)",
        "",
        *report.table(["figure", *(f"{kind} ({len(runs[kind])} runs)" for kind in table)], rows),
        "",
        f"Choice: {verdict}.",
        "",
        "Models: " + "; ".join(f"{kind}: " + ", ".join(f"`{m}`" for m in models) for kind, models in runs.items()),
        "",
    ]
    return "\n".join(lines)


SECTION = "## Rust-region model choice"
CHOICE_FILE = "region_model_choice.json"


def with_section(card: str, section: str, heading: str = SECTION) -> str:
    """``card`` with its ``heading`` section replaced by ``section`` (added before the configuration
    section, or at the end, when it has none)."""
    start = card.find(heading)
    if start >= 0:
        following = card.find("\n## ", start + len(heading))
        return card[:start] + section + ("" if following < 0 else card[following:])
    anchor = card.find("\n## Configuration")
    if anchor < 0:
        return card.rstrip("\n") + "\n\n" + section
    return card[: anchor + 1] + section + "\n" + card[anchor + 1 :]


def write_to_card(model_dir: str, result: dict, text: str) -> None:
    """The comparison into the shipped model's card and beside it, so the choice travels with the model."""
    card_path = io_utils.join(model_dir, report.MODEL_CARD_FILE)
    if not io_utils.exists(card_path):
        raise FileNotFoundError(
            f"{card_path}: no model card to add the comparison to (is {model_dir} a trained model?)"
        )
    io_utils.write_text(card_path, with_section(io_utils.read_text(card_path), text))
    io_utils.write_text(io_utils.join(model_dir, CHOICE_FILE), json.dumps(result, indent=2) + "\n")


def compare(segmenters: list[str], detectors: list[str], data: str, split: str, output: str) -> tuple[dict, str]:
    models = {"segmenter": segmenters, "detector": detectors}
    models = {kind: dirs for kind, dirs in models.items() if dirs}
    runs = {kind: [scored(m, data, split, output) for m in dirs] for kind, dirs in models.items()}
    table = summary(runs)
    winner, verdict = choose(table)
    result = {"split": split, "data": data, "models": models, "summary": table, "winner": winner, "verdict": verdict}
    text = markdown(table, models, split, verdict)
    io_utils.write_text(io_utils.join(output, "comparison.json"), json.dumps(result, indent=2) + "\n")
    io_utils.write_text(io_utils.join(output, "comparison.md"), text)
    return result, text


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    p = cli.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="TFRecord data set directory (pipelines.build_dataset)")
    p.add_argument("--split", default=layout.VALIDATION, choices=layout.SPLITS, help="choose on validation")
    p.add_argument("--output", required=True, help="where each model's evaluation and the comparison go")
    p.add_argument("--segmenter", action="append", default=[], help="exported segmenter (repeat per seed)")
    p.add_argument("--detector", action="append", default=[], help="exported detector (repeat per seed)")
    p.add_argument("--model_card", help="the model to ship: the comparison goes into its model_card.md")
    args = p.parse_args(argv)
    if not args.segmenter and not args.detector:
        p.error("give at least one --segmenter or --detector")
    result, text = compare(args.segmenter, args.detector, args.data, args.split, args.output)
    if args.model_card:
        write_to_card(args.model_card, result, text)
        log.info("comparison written into %s", io_utils.join(args.model_card, report.MODEL_CARD_FILE))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
