"""``model_card.md``: what a classifier was trained on, how, how well, and with what."""

from __future__ import annotations

import platform

import yaml

_ROWS = (
    ("ROC-AUC", "roc_auc"),
    ("PR-AUC (average precision)", "pr_auc"),
    ("accuracy", "accuracy"),
    ("precision", "precision"),
    ("recall", "recall"),
    ("F1", "f1"),
    ("specificity", "specificity"),
)


def _fmt(value) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def metrics_table(columns: dict[str, dict]) -> str:
    """Markdown table: one column per (name -> summarise() output)."""
    names = list(columns)
    lines = ["| metric | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for label, key in _ROWS:
        lines.append(f"| {label} | " + " | ".join(_fmt(columns[n].get(key)) for n in names) + " |")
    lines.append(
        "| images (rust / no rust) | "
        + " | ".join(f"{columns[n]['n']} ({columns[n]['n_positive']} / {columns[n]['n_negative']})" for n in names)
        + " |"
    )
    lines.append(
        "| confusion tn / fp / fn / tp | "
        + " | ".join("{tn} / {fp} / {fn} / {tp}".format(**columns[n]["confusion_matrix"]) for n in names)
        + " |"
    )
    return "\n".join(lines)


def versions() -> dict[str, str]:
    import keras
    import numpy
    import tensorflow as tf

    return {
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": numpy.__version__,
    }


def render(metrics: dict, config: dict) -> str:
    """The model card from a training run's ``metrics.json`` content and its resolved config."""
    meta = metrics["model"]
    val, test = metrics["validation"], metrics["test"]
    columns = {"validation": val, "test": test}
    baseline = metrics.get("baseline")
    if baseline:
        columns["baseline test"] = baseline["test"]
    counts = metrics["data"]["counts"]
    count_lines = "\n".join(
        f"| {split} | {c['rust']} | {c['no_rust']} | {c['rust'] + c['no_rust']} |" for split, c in counts.items()
    )
    target = metrics["threshold_selection"]
    at_precision = test.get("best_recall_at_precision")
    parts = [
        f"# Model card: rust classifier `{meta['version']}`",
        "",
        "Image-level rust probability for photos of steel (hulls, bridges, tanks, pipes). Output "
        f"`rust_probability`; an image is flagged as rust when it is at least **{metrics['threshold']:.4f}**.",
        "",
        "## Model",
        f"- Backbone: `{meta['backbone']}` at {meta['input_size']} px, weights: {meta['weights']}.",
        "- Head: global average pooling, dropout, one sigmoid unit (L2 on its kernel).",
        f"- Training: phase 1 trains the head on the frozen backbone ({metrics['training']['phase1_mode']}); "
        f"phase 2 fine-tunes the backbone from `{config['fine_tune_from']}` on (batch norm excepted and kept in "
        f"inference mode), on the same cache when phase 1 used one, at learning rate {config['fine_tune_learning_rate']}. Augmentation in the graph "
        "(flips, rotation, zoom, brightness, contrast, hue), class weights "
        f"{_fmt_weights(metrics['training'].get('class_weight'))}, best epoch by validation ROC-AUC, early stopping.",
        f"- Selected: {metrics['training']['selected']}. Training took {metrics['training']['seconds'] / 60:.1f} min "
        f"({metrics['training']['epochs_run']} epochs run, {metrics['training'].get('cpu_threads', '?')} CPU threads"
        f"{', ' + metrics['training']['device'] if metrics['training'].get('device') else ''}).",
        "",
        "## Data",
        f"Data set `{metrics['data']['path']}`.",
        "",
        "| split | rust | no rust | total |",
        "|---|---|---|---|",
        count_lines,
        "",
        "## Decision threshold",
        f"Chosen on **validation** as the highest threshold reaching recall {target['target_recall']:.2f} "
        f"(a missed rust patch costs more than a false alarm): {metrics['threshold']:.4f}. "
        "The test figures below use it unchanged.",
    ]
    if at_precision:
        parts += [
            "",
            f"On test, the best recall at precision >= {target['min_precision']:.2f} is {at_precision['recall']:.3f} "
            f"(precision {at_precision['precision']:.3f}, threshold {at_precision['threshold']:.4f}) - an oracle figure, "
            "for comparison only.",
        ]
    parts += ["", "## Metrics", "", metrics_table(columns), ""]
    if baseline:
        verdict = "beats" if _beats(test, baseline["test"]) else "does NOT beat"
        parts += [
            "## Baseline",
            f"{baseline['description']}. Same splits; its threshold chosen on validation for the same recall target. "
            f"On test the trained model {verdict} it (ROC-AUC {_fmt(test['roc_auc'])} vs {_fmt(baseline['test']['roc_auc'])}, "
            f"PR-AUC {_fmt(test['pr_auc'])} vs {_fmt(baseline['test']['pr_auc'])}).",
            "",
        ]
    parts += [
        "For reference, the article this project grew from reported accuracy 0.86 and ROC-AUC 0.85 (VGG16, 15 test images).",
        "",
        "## Plots",
        "`plots/training_curves.png`, `plots/roc.png`, `plots/precision_recall.png`, "
        "`plots/confusion_validation.png`, `plots/confusion_test.png`; TensorBoard logs in `logs/`.",
        "",
        "## Limitations",
        "- Image level only: it says whether a photo shows rust, not where (the detector does that).",
        "- Trained on web and survey photos; a new camera, lighting or structure type should be checked with "
        "`python -m training.evaluate` on a labelled sample before the threshold is trusted there.",
        "- Hard negatives (red paint, copper, rust-coloured coatings) are the usual false alarms.",
        "",
        "## Configuration",
        "```yaml",
        yaml.safe_dump(config, sort_keys=False).rstrip(),
        "```",
        "",
        "## Versions",
        ", ".join(f"{k} {v}" for k, v in metrics["versions"].items()),
        "",
    ]
    return "\n".join(parts)


def _beats(model: dict, baseline: dict) -> bool:
    return (model["roc_auc"] or 0) >= (baseline["roc_auc"] or 0) and (model["pr_auc"] or 0) >= (baseline["pr_auc"] or 0)


def _fmt_weights(weights: dict | None) -> str:
    if not weights:
        return "(none)"
    return "(" + ", ".join(f"{k}: {v:.2f}" for k, v in weights.items()) + ")"
