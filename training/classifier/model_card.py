"""The classifier's ``model_card.md``: what it was trained on, how, how well, and with what."""

from __future__ import annotations

from training.common import report
from training.common.report import fmt

_ROWS = (
    ("ROC-AUC", "roc_auc"),
    ("PR-AUC (average precision)", "pr_auc"),
    ("accuracy", "accuracy"),
    ("precision", "precision"),
    ("recall", "recall"),
    ("F1", "f1"),
    ("specificity", "specificity"),
)


def metrics_table(columns: dict[str, dict]) -> str:
    """Markdown table: one column per (name -> summarise() output)."""
    rows = [[label, *(columns[n].get(key) for n in columns)] for label, key in _ROWS]
    rows.append(
        ["images (rust / no rust)", *(f"{c['n']} ({c['n_positive']} / {c['n_negative']})" for c in columns.values())]
    )
    rows.append(
        [
            "confusion tn / fp / fn / tp",
            *("{tn} / {fp} / {fn} / {tp}".format(**c["confusion_matrix"]) for c in columns.values()),
        ]
    )
    return "\n".join(report.table(["metric", *columns], rows))


def render(metrics: dict, config: dict) -> str:
    """The model card from a training run's ``metrics.json`` content and its resolved config."""
    parts = [
        *_model_section(metrics, config),
        *_data_section(metrics),
        *_threshold_section(metrics),
        *_metrics_section(metrics),
        *_per_source_section(metrics),
        *_clean_crops_section(metrics, config),
        *LIMITATIONS,
        *report.configuration_section(config),
        *report.versions_section(metrics["versions"]),
    ]
    return "\n".join(parts)


def _model_section(metrics: dict, config: dict) -> list[str]:
    meta, training = metrics["model"], metrics["training"]
    device = f", {training['device']}" if training.get("device") else ""
    return [
        f"# Model card: rust classifier `{meta['version']}`",
        "",
        "Image-level rust probability for photos of steel (hulls, bridges, tanks, pipes). Output "
        f"`rust_probability`; an image is flagged as rust when it is at least **{metrics['threshold']:.4f}**.",
        "",
        "## Model",
        f"- Backbone: `{meta['backbone']}` at {meta['input_size']} px, weights: {meta['weights']}.",
        "- Head: global average pooling, dropout, one sigmoid unit (L2 on its kernel).",
        f"- Training: phase 1 trains the head on the frozen backbone ({training['phase1_mode']}); "
        f"phase 2 fine-tunes the backbone from `{config['fine_tune_from']}` on (batch norm excepted and kept in "
        f"inference mode), on the same cache when phase 1 used one, at learning rate {config['fine_tune_learning_rate']}. Augmentation in the graph "
        "(flips, rotation, zoom, brightness, contrast, hue), class weights "
        f"{_fmt_weights(training.get('class_weight'))}, best epoch by validation ROC-AUC, early stopping.",
        f"- Selected: {training['selected']}. Training took {training['seconds'] / 60:.1f} min "
        f"({training['epochs_run']} epochs run, {training.get('cpu_threads', '?')} CPU threads{device}).",
        "",
    ]


def _data_section(metrics: dict) -> list[str]:
    counts = metrics["data"]["counts"]
    rows = [[split, c["rust"], c["no_rust"], c["rust"] + c["no_rust"]] for split, c in counts.items()]
    lines = [
        "## Data",
        f"Data set `{metrics['data']['path']}`.",
        "",
        *report.table(["split", "rust", "no rust", "total"], rows),
        "",
    ]
    if metrics.get("clean_crops"):
        lines += [
            f"Plus {metrics['clean_crops']['train_crops']} clean-steel crops as no_rust training images (below).",
            "",
        ]
    return lines


def _threshold_section(metrics: dict) -> list[str]:
    target = metrics["threshold_selection"]
    at_precision = metrics["test"].get("best_recall_at_precision")
    lines = [
        "## Decision threshold",
        f"Chosen on **validation** as the highest threshold reaching recall {target['target_recall']:.2f} "
        + (
            f"pooled and on every source with at least {target['min_source_rust']} rust photos "
            if target.get("min_source_rust")
            else ""
        )
        + f"(a missed rust patch costs more than a false alarm): {metrics['threshold']:.4f}"
        + (f", set by {target['set_by_source']}" if target.get("set_by_source") else "")
        + ". The test figures below use it unchanged.",
    ]
    if at_precision:
        lines += [
            "",
            f"On test, the best recall at precision >= {target['min_precision']:.2f} is {at_precision['recall']:.3f} "
            f"(precision {at_precision['precision']:.3f}, threshold {at_precision['threshold']:.4f}) - an oracle figure, "
            "for comparison only.",
        ]
    return lines


def _metrics_section(metrics: dict) -> list[str]:
    test, baseline = metrics["test"], metrics.get("baseline")
    columns = {"validation": metrics["validation"], "test": test}
    if baseline:
        columns["baseline test"] = baseline["test"]
    lines = ["", "## Metrics", "", metrics_table(columns), ""]
    if baseline:
        verdict = "beats" if beats(test, baseline["test"]) else "does NOT beat"
        lines += [
            "## Baseline",
            f"{baseline['description']}. Same splits; its threshold chosen on validation for the same recall target. "
            f"On test the trained model {verdict} it (ROC-AUC {fmt(test['roc_auc'])} vs {fmt(baseline['test']['roc_auc'])}, "
            f"PR-AUC {fmt(test['pr_auc'])} vs {fmt(baseline['test']['pr_auc'])}).",
            "",
        ]
    return lines


def _per_source_section(metrics: dict) -> list[str]:
    per_source = metrics.get("per_source")
    if not per_source:
        return []
    rows = [
        [
            split,
            source,
            f["images"],
            f"{f['rust']} / {f['no_rust']}",
            f["recall"],
            f["precision"],
            f["false_alarm_rate"],
        ]
        for split, sources in per_source.items()
        for source, f in sources.items()
    ]
    return [
        "## Per source, at the shipped threshold",
        "A threshold chosen for the recall target on pooled validation can land below it on one source's photos.",
        "",
        *report.table(["split", "source", "images", "rust / no rust", "recall", "precision", "false-alarm rate"], rows),
        "",
    ]


def _clean_crops_section(metrics: dict, config: dict) -> list[str]:
    crops = metrics.get("clean_crops")
    if not crops:
        return []
    rows = [
        [split, source, f["images"], f["flagged"], f["false_alarm_rate"]]
        for split in ("validation", "test")
        for source, f in {"all": crops[split], **crops[split]["per_source"]}.items()
    ]
    return [
        "## Clean-steel crops",
        f"{crops['train_crops']} squares cut from mask-annotated rust photos of the training split, away from every "
        "annotated region (`corrosion.data.clean_crops`: the largest square of "
        f"{' or '.join(str(s) for s in config['clean_crop_sides'])} of the short side keeping "
        f"{config['clean_crop_margin']:.0%} of the long side from every rust pixel and box), trained as no_rust images, so that an "
        "inspection-looking photo is not rust by itself. Validation's and test's crops are not in the figures above; "
        "scored at the shipped threshold, these are called rust:",
        "",
        *report.table(["split", "source", "crops", "called rust", "false-alarm rate"], rows),
        "",
    ]


LIMITATIONS = [
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
]


def beats(model: dict, baseline: dict) -> bool:
    return (model["roc_auc"] or 0) >= (baseline["roc_auc"] or 0) and (model["pr_auc"] or 0) >= (baseline["pr_auc"] or 0)


def _fmt_weights(weights: dict | None) -> str:
    if not weights:
        return "(none)"
    return "(" + ", ".join(f"{k}: {v:.2f}" for k, v in weights.items()) + ")"
