"""The detector's ``model_card.md``: what it finds, how it was built and trained, on what, how well."""

from __future__ import annotations

import dataclasses

from corrosion.core.config import config_path
from corrosion.models import serving
from training.common import report as common_report
from training.common.report import fmt
from training.detector.config import DEFAULT_FILE, DetectorConfig

METRIC_ROWS = (
    "AP", "AP50", "AP75", "AR1", "AR10", "AR100", "f1", "precision_at_f1", "recall_at_f1",
    "images", "images_with_boxes", "true_boxes", "left_out",
)  # fmt: skip


def render(report: dict, config: DetectorConfig, metadata: serving.ModelMetadata, config_file: str | None) -> str:
    """The model card from the run's metrics.json content, its config and the exported metadata."""
    lines = [
        *_model_section(report, config, metadata),
        *_assignment_section(report, config),
        *_training_section(report, config),
        *_data_section(report),
        *_metrics_section(report),
        *LIMITATIONS,
        *common_report.configuration_section(dataclasses.asdict(config), str(config_file or config_path(DEFAULT_FILE))),
        *common_report.versions_section(report["versions"]),
    ]
    return "\n".join(lines)


def _model_section(report: dict, config: DetectorConfig, metadata: serving.ModelMetadata) -> list[str]:
    m, post, t = config.model, config.postprocess, report["training"]
    return [
        f"# Model card: rust detector `{metadata.version}`",
        "",
        "Finds rust on photos of steel and returns boxes: `detection_boxes` (normalised ymin, xmin, ymax, xmax), "
        "`detection_scores`, `detection_classes` (1 = rust), `num_detections`, the TF Object Detection API's names. "
        f"Boxes scoring at least **{metadata.threshold:.3f}** ({t['threshold_source']}) count as rust.",
        "",
        "## Model and why",
        f"- `{m.backbone}` (alpha {m.alpha}) at {m.input_size} px, weights: {metadata.weights}; features at "
        f"strides 8/16/32 (`{'`, `'.join(m.feature_layers)}`) plus {m.extra_levels} extra stride-2 level(s), merged "
        f"top-down in a {m.fpn_channels}-channel FPN; one SSD-lite head (separable convolutions, depth {m.head_depth}, group norm) "
        f"shared across levels, {m.anchors_per_location} anchors per location (scales {list(m.anchor_scales)}, "
        f"aspect ratios {list(m.aspect_ratios)}, sizes {list(m.anchor_sizes)} of the image side).",
        *_backbone_init_lines(report),
        "- Why SSD-lite with anchors rather than FCOS or CenterNet: rust regions range from a fist-sized spot to the "
        "whole photo and come in every aspect ratio; anchors at four scales up to the full image cover that range "
        "with the IoU-based assignment that Keras's box utilities already provide (`compute_iou`, "
        "`encode_box_to_deltas`, `decode_deltas_to_boxes`), and the head costs a few separable convolutions, so a "
        "full run fits in half an hour on two CPU cores. CenterNet's single centre point per object is ill-defined "
        "for diffuse rust (where is the centre of a streak?), and FCOS's centre-ness branch penalises exactly the "
        "border regions where rust boxes are least certain.",
        "- Post-processing in the exported graph: deltas decoded against the anchors, sigmoid scores, top "
        f"{post.pre_nms_top_k} anchors, `tf.image.combined_non_max_suppression` at IoU "
        f"{post.nms_iou}, at most {post.max_detections} boxes scoring >= "
        f"{post.min_score}.",
        "",
    ]


def _assignment_section(report: dict, config: DetectorConfig) -> list[str]:
    a = config.assignment
    return [
        "## Fuzzy rust boxes: assignment and loss",
        f"- Anchors with IoU >= {a.positive_iou} to a box are rust, < {a.negative_iou} "
        "background, and those in between are **ignored**: where an annotator's box edge is a matter of taste, the "
        "model is neither rewarded nor punished. Every box also claims its best anchor, so thin or oddly shaped "
        "boxes always train.",
        f"- Classification: sigmoid focal loss (alpha {config.focal_alpha}, gamma {config.focal_gamma}) normalised by "
        "the number of positive anchors: the thousands of easy background anchors and confidently-handled "
        "ambiguous ones fade out, and no single fuzzy box dominates. Boxes: smooth-L1 (Huber) on variance-scaled "
        f"centre/size deltas (variance {list(config.model.box_variance)}), which grows only linearly for large errors, so a box "
        "drawn loosely by the annotator pulls the prediction without exploding the gradient.",
        "- Images without boxes (`no_rust`) make every anchor background: that is how hard negatives (red paint, "
        "copper, clean steel) teach the model what is not rust. `rust` images without boxes (class-folder "
        "sources) say nothing about where the rust is: all their anchors are ignored.",
        *_image_head_lines(report, config),
        "- Evaluation keeps the standard COCO IoU thresholds; with fuzzy regions AP50 is the meaningful figure, "
        "AP75 and AP@[.5:.95] mostly measure agreement with one annotator's box edges.",
        "",
    ]


def _training_section(report: dict, config: DetectorConfig) -> list[str]:
    t = report["training"]
    ema = (
        [
            f"- Weights averaged during training (Keras optimizer EMA, momentum {config.ema_momentum:g}): "
            "validation, the chosen epoch and the export all use the average, which swings far less from epoch "
            "to epoch than the raw weights on a few dozen box images."
        ]
        if config.ema_momentum is not None
        else []
    )
    return [
        "## Training",
        f"- Phase 1: {config.head_epochs} epochs with the backbone frozen, AdamW at {config.head_learning_rate} "
        f"(cosine, warm-up). Phase 2: {config.fine_tune_epochs} epochs training the backbone from "
        f"`{config.fine_tune_from}` on at {config.fine_tune_learning_rate}. Backbone batch norm frozen throughout "
        f"(batches of {config.batch_size}). Each epoch: every box image once plus {config.negatives_per_positive:g} "
        "sampled negative(s) per box image.",
        *ema,
        "- Augmentation with Keras's box-aware layers: RandomFlip, RandomZoom, RandomTranslation (boxes moved and "
        "clipped with the image), RandomColorJitter (brightness, contrast, saturation, light hue).",
        f"- Best epoch by validation AP50 (COCOeval every {config.eval_every} epochs): epoch {t['selected_epoch']} of "
        f"{t['epochs']}. Training took {t['seconds'] / 60:.1f} min.",
        "",
    ]


def _data_section(report: dict) -> list[str]:
    rows = [
        [split, c["images"], c["box_images"], c["boxes"], c["negatives"], c["skipped"]]
        for split, c in report["data_counts"].items()
    ]
    header = ["split", "images", "with boxes", "boxes", "negatives", "left out (rust, no boxes)"]
    return ["## Data", f"Data set `{report['data']}`.", "", *common_report.table(header, rows), ""]


def _metrics_section(report: dict) -> list[str]:
    splits = report["splits"]
    rows = [[key, *(mt.get(key) for mt in splits.values())] for key in METRIC_ROWS]
    for key in ("AP50", "AP", "AR100"):
        label = f"{key}, box images only (no negatives, the article's setting)"
        rows.append([label, *(mt.get("box_images_only", {}).get(key) for mt in splits.values())])
    return [
        "## Metrics (pycocotools COCOeval, the exported model through its bytes signature)",
        "",
        *common_report.table(["metric", *splits], rows),
        "",
        "Negatives are part of the evaluation: a box on a clean image is a false positive. For reference, the "
        "article this project grew from reported AP50 0.183 (SSD MobileNet, TF Object Detection API).",
        "",
        *_held_out_lines(report),
        "Figures: `detections_grid.png` (test images, green true boxes, red predictions above the threshold), "
        "`training_curves.png`; TensorBoard logs in `logs/`.",
        "",
    ]


LIMITATIONS = [
    "## Limitations",
    "- Boxes over-state rusted area (a box round a streak is mostly clean steel); use them to locate rust, not "
    "to measure it precisely.",
    "- The model sees the photo squashed to a square: on large survey photos the inference pipeline tiles the "
    "image so that small spots keep enough pixels.",
    "- Box annotations are few and from web photos; check a new survey type with `python -m training.evaluate` "
    "on a labelled sample before trusting the threshold there.",
    "",
]


def _image_head_lines(report: dict, config: DetectorConfig) -> list[str]:
    if not config.model.image_head:
        return []
    t = report["training"]
    tried = ", ".join(f"{w}: {fmt(ap)}" for w, ap in t["validation_AP50_by_image_score_weight"].items())
    return [
        "- Image-level head: the pooled top backbone features give one rust logit per image (binary "
        f"cross-entropy, weight {config.image_loss_weight:g}), trained on box images and negatives and on "
        f"{config.unlocated_per_positive:g} rust photo(s) without boxes per box image, so the many class-folder "
        "photos teach the detector what rust looks like even where nobody drew a box. Box scores are "
        "anchor score^(1-w) x image score^w: anchors firing on a clean photo (copper, red paint) are pulled "
        f"down by the whole-image view. w = **{t['image_score_weight']:g}**, chosen on validation AP50 "
        f"({tried}).",
    ]


def _backbone_init_lines(report: dict) -> list[str]:
    init = report.get("backbone_init")
    if not init:
        return []
    if init["same_data_set"]:
        seen = init.get("held_out_images_in_classifier_training")
        provenance = (
            "it learnt from this data set's train split only, so validation and test photos are unseen by both models"
            + (
                f"; {seen} of the held-out images below (or near-duplicates of them) sit in that split: the "
                "classifier saw them with their image label, never with boxes"
                if seen
                else ""
            )
        )
    else:
        provenance = (
            f"**it was trained on `{init['classifier_data']}`, not on this data set: it may have seen validation or "
            "test photos, so the figures below may be optimistic**"
        )
    return [
        f"- Backbone started from classifier `{init['version']}` (`{init['classifier']}`, {init['layers_copied']} "
        "layers): features fine-tuned on every photo labelled rust / no rust (copper, red paint and clean steel "
        "among them), not only on the few photos with boxes; "
        f"{provenance}."
    ]


def _held_out_lines(report: dict) -> list[str]:
    held = report.get("held_out")
    if not held:
        return []
    lines = [
        f"Held out of training (with {held['images_excluded_from_training']} images of their near-duplicate groups): "
        f"`{held['folder']}`, evaluated as a raw folder:",
        "",
    ]
    for name, mt in held["metrics"].items():
        lines.append(
            f"- {name}: AP50 {fmt(mt.get('AP50'))}, AP {fmt(mt.get('AP'))}, AR100 {fmt(mt.get('AR100'))} "
            f"on {mt.get('images')} images ({mt.get('true_boxes')} boxes)"
        )
    return lines + [""]
