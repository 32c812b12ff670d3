"""Train, evaluate and export the rust detector.

    python -m training.train_detector --data DATASET_DIR --model_dir MODEL_DIR [--config configs/detector.yaml]

Two phases on one MobileNetV2 + FPN + SSD-lite model: the head learns on a frozen ImageNet
backbone, then the top of the backbone fine-tunes at a lower learning rate (batch norm frozen
throughout). The best epoch by validation AP50 (COCOeval) is kept, the score threshold is chosen on
validation (max F1 at IoU 0.5), and the exported SavedModel is what gets evaluated on validation
and test, so the reported figures are those of the model inference will run.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import time
from dataclasses import dataclass, field

import keras
import numpy as np

from corrosion.core import io_utils, paths
from corrosion.core.config import config_path, load_config
from corrosion.models import serving
from corrosion.models.weights import resolve_weights
from training.detector_data import AugmentConfig, SplitCounts
from training.detector_decode import PostprocessConfig
from training.detector_model import DetectorModelConfig
from training.detector_targets import AssignmentConfig
from training.tensorboard_logs import TensorBoardScalars

log = logging.getLogger("training.train_detector")

TRAINING_SPLIT, VALIDATION_SPLIT, TEST_SPLIT = "train", "validation", "test"
LOSS_KEYS = ("loss", "cls_loss", "box_loss", "image_loss")


@dataclass(frozen=True)
class DetectorConfig:
    model: DetectorModelConfig = field(default_factory=DetectorModelConfig)
    assignment: AssignmentConfig = field(default_factory=AssignmentConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    postprocess: PostprocessConfig = field(default_factory=PostprocessConfig)
    weights: str | None = None  # None: the project's resolution ($CORROSION_WEIGHTS, configs/weights.yaml)
    # An exported classifier (training.train_classifier) whose fine-tuned backbone the detector starts
    # from, on top of ``weights``; None: ``weights`` alone.
    init_from_classifier: str | None = None
    batch_size: int = 8
    max_boxes: int = 64  # per image, after which boxes are dropped (the data's maximum is logged)
    negatives_per_positive: float = 1.5  # no-rust images sampled per box image in each epoch
    unlocated_per_positive: float = 0.75  # rust images without boxes per box image (image head only)
    image_loss_weight: float = 1.0  # binary cross-entropy of the image head
    frozen_epochs: int = 4
    finetune_epochs: int = 56
    learning_rate: float = 2e-3
    finetune_learning_rate: float = 8e-4
    warmup_epochs: int = 1
    fine_tune_from: str | None = "block_6_expand"  # backbone layer from which phase 2 trains; None = all
    weight_decay: float = 1e-4
    # Polyak averaging of the weights (Keras optimizer EMA); validation and the exported model use the
    # average. None: off. With a few dozen box images the raw weights swing from epoch to epoch.
    ema_momentum: float | None = 0.99
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0
    box_loss_weight: float = 1.0
    # export: a float32 LiteRT copy of the network for the pipeline's CPU workers (training.export_lite),
    # written only when its raw outputs on lite_check_images synthetic photos match the Keras network's
    export_lite: bool = True
    lite_max_abs_diff: float = 1e-3  # on raw box deltas and logits
    lite_check_images: int = 8
    jit_compile: bool = False  # XLA: compiling MobileNetV2 + head costs a minute on CPU for little per-step gain
    eval_every: int = 2  # epochs between validation COCO evaluations (best epoch kept)
    score_threshold: float | None = None  # None: chosen on validation (max F1 at IoU 0.5)
    default_score_threshold: float = 0.3  # used when validation has no boxes to choose one
    seed: int = 42


def load_detector_config(path: str | None, overrides: dict | None = None) -> DetectorConfig:
    return load_config(DetectorConfig, path or config_path("detector.yaml"), overrides)


def _version() -> str:
    return "detector-" + time.strftime("%Y%m%dT%H%M%S", time.gmtime())


def _schedule(keras, peak: float, steps_per_epoch: int, epochs: int, warmup_epochs: int):
    total = max(1, steps_per_epoch * epochs)
    warmup = min(total - 1, steps_per_epoch * warmup_epochs)
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=peak * 0.1 if warmup else peak,
        decay_steps=total - warmup,
        warmup_target=peak if warmup else None,
        warmup_steps=warmup,
        alpha=0.02,
    )


class ValidationAP(keras.callbacks.Callback):
    """COCOeval on validation every few epochs (and the last); keeps the best weights by AP50."""

    def __init__(self, detect, examples, every: int, total_epochs: int) -> None:
        super().__init__()
        self.detect, self.examples, self.every, self.total_epochs = detect, examples, every, total_epochs
        self.best_ap50 = -1.0
        self.best_epoch = 0
        self.best_weights: list | None = None  # (variable, value) pairs: immune to trainable-flag reordering
        self.history: list[dict] = []

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every and epoch + 1 != self.total_epochs:
            return
        from training.detection_eval import evaluate_split

        metrics, _ = evaluate_split(self.detect, self.examples)
        ap50 = metrics["AP50"] if metrics["AP50"] is not None else -1.0
        self.history.append({"epoch": epoch + 1, "AP50": metrics["AP50"], "AP": metrics["AP"]})
        if logs is not None and metrics["AP50"] is not None:
            logs["val_AP50"], logs["val_AP"] = metrics["AP50"], metrics["AP"]
        log.info("epoch %d: validation AP50 %.3f, AP %.3f", epoch + 1, ap50, metrics["AP"] or 0.0)
        if ap50 > self.best_ap50:
            self.best_ap50, self.best_epoch = ap50, epoch + 1
            self.best_weights = [(v, v.numpy()) for v in self.model.variables]

    def restore_best(self) -> None:
        for variable, value in self.best_weights or ():
            variable.assign(value)


def ema_swap(momentum: float | None) -> list[keras.callbacks.Callback]:
    """Callbacks to put before the validation selector so that it evaluates and keeps the averaged
    weights (fit then ends on them too). A fresh one per phase: its state belongs to one optimizer."""
    return [keras.callbacks.SwapEMAWeights(swap_on_epoch=True)] if momentum is not None else []


def train(
    data: str, model_dir: str, config: DetectorConfig, config_file: str | None = None, hold_out: str | None = None
) -> dict:
    """Train, choose the threshold, export, evaluate the export; returns the metrics written to metrics.json."""
    import tensorflow as tf

    from corrosion.imaging import preprocess
    from training import detection_eval, export_lite
    from training.data import DatasetError
    from training.detector_data import count_split, held_out_sha256, loss_dataset, training_dataset
    from training.detector_decode import make_decode_signature, make_predict
    from training.detector_loss import BoxLoss, FocalLoss
    from training.detector_model import (
        BOX_OUTPUT,
        CLS_OUTPUT,
        IMAGE_OUTPUT,
        anchor_boxes,
        build_detector,
        set_backbone_trainable,
    )
    from training.export import export_model

    started = time.time()
    keras.utils.set_random_seed(config.seed)
    m = config.model
    exclude = held_out_sha256(hold_out, data) if hold_out else frozenset()
    counts: dict[str, SplitCounts] = {
        s: count_split(data, s, exclude if s == TRAINING_SPLIT else frozenset())
        for s in (TRAINING_SPLIT, VALIDATION_SPLIT, TEST_SPLIT)
    }
    for split, c in counts.items():
        log.info("%s: %s", split, c.as_dict())
    for split in (TRAINING_SPLIT, VALIDATION_SPLIT):
        if counts[split].box_images == 0:
            c = counts[split]
            raise DatasetError(
                f"the {split} split of {data} has no image with rust boxes ({c.images} images: {c.negatives} negatives, "
                f"{c.skipped} rust images without boxes); a detector needs boxes (VOC XML or YOLO txt sources) in train and validation"
            )
    val_examples, val_skipped = detection_eval.record_examples(data, VALIDATION_SPLIT)

    weights = resolve_weights(config.weights)
    model, backbone = build_detector(m, weights)
    backbone_init = _init_from_classifier(backbone, config, data, exclude)
    anchors = anchor_boxes(m)
    train_ds, steps = training_dataset(
        data,
        counts[TRAINING_SPLIT],
        size=m.input_size,
        batch_size=config.batch_size,
        max_boxes=config.max_boxes,
        negatives_per_positive=config.negatives_per_positive,
        anchors=anchors,
        assignment=config.assignment,
        variance=m.box_variance,
        augment=config.augment,
        seed=config.seed,
        exclude=exclude,
        unlocated_per_positive=config.unlocated_per_positive,
        image_head=m.image_head,
    )
    val_ds = loss_dataset(
        data,
        VALIDATION_SPLIT,
        size=m.input_size,
        batch_size=config.batch_size,
        max_boxes=config.max_boxes,
        anchors=anchors,
        assignment=config.assignment,
        variance=m.box_variance,
        image_head=m.image_head,
    )

    def detector_fns(post: PostprocessConfig):
        predict = make_predict(model, anchors, m.box_variance, post)

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
        def detect(encoded: tf.Tensor) -> dict[str, tf.Tensor]:  # what the exported bytes signature computes
            return predict(preprocess.decode_batch(encoded, m.input_size))

        return predict, detect

    predict, detect = detector_fns(config.postprocess)

    total_epochs = config.frozen_epochs + config.finetune_epochs
    selector = ValidationAP(detect, val_examples, config.eval_every, total_epochs)
    logs_dir = io_utils.join(model_dir, "logs")
    io_utils.make_dirs(model_dir)
    losses = {BOX_OUTPUT: BoxLoss(), CLS_OUTPUT: FocalLoss(config.focal_alpha, config.focal_gamma)}
    loss_weights = {BOX_OUTPUT: config.box_loss_weight, CLS_OUTPUT: 1.0}
    if m.image_head:
        losses[IMAGE_OUTPUT] = keras.losses.BinaryCrossentropy(from_logits=True)
        loss_weights[IMAGE_OUTPUT] = config.image_loss_weight

    scalars = TensorBoardScalars(logs_dir)
    history: dict[str, list] = {}
    phases = [
        ("frozen", config.frozen_epochs, config.learning_rate, None),
        (
            "fine-tune",
            config.finetune_epochs,
            config.finetune_learning_rate,
            config.fine_tune_from or backbone.layers[0].name,
        ),
    ]
    epoch = 0
    for name, epochs, lr, trainable_from in phases:
        if epochs <= 0:
            continue
        n_trainable = set_backbone_trainable(backbone, trainable_from, train_batch_norm=weights.kind == "none")
        log.info("phase %s: %d epochs at lr %g, %d backbone layers trainable", name, epochs, lr, n_trainable)
        model.compile(
            optimizer=keras.optimizers.AdamW(
                _schedule(keras, lr, steps, epochs, config.warmup_epochs),
                weight_decay=config.weight_decay,
                clipnorm=10.0,
                **({"use_ema": True, "ema_momentum": config.ema_momentum} if config.ema_momentum is not None else {}),
            ),
            loss=losses,
            loss_weights=loss_weights,
            jit_compile=config.jit_compile,
        )
        fit = model.fit(
            train_ds,
            epochs=epoch + epochs,
            initial_epoch=epoch,
            steps_per_epoch=steps,
            validation_data=val_ds,
            callbacks=[*ema_swap(config.ema_momentum), selector, scalars],
            verbose=2,
        )
        for key in (*LOSS_KEYS, *(f"val_{k}" for k in LOSS_KEYS)):
            history.setdefault(key, []).extend(float(v) for v in fit.history.get(key, []))
        epoch += epochs

    selector.restore_best()
    log.info("selected epoch %d (validation AP50 %.3f)", selector.best_epoch, selector.best_ap50)
    post, weight_choice = config.postprocess, {}
    if m.image_head:
        for w in post.choose_image_score_weight:
            candidate = dataclasses.replace(post, image_score_weight=w)
            ap50 = detection_eval.evaluate_split(detector_fns(candidate)[1], val_examples)[0]["AP50"]
            weight_choice[w] = ap50
            log.info("image score weight %.2f: validation AP50 %.3f", w, ap50 if ap50 is not None else float("nan"))
        best = max(weight_choice, key=lambda w: -1.0 if weight_choice[w] is None else weight_choice[w])
        post = dataclasses.replace(post, image_score_weight=best)
        predict, detect = detector_fns(post)
    val_metrics, _ = detection_eval.evaluate_split(detect, val_examples, val_skipped)
    threshold = config.score_threshold
    threshold_source = "configuration"
    if threshold is None:
        threshold = val_metrics.get("f1_threshold") or config.default_score_threshold
        threshold_source = (
            "validation max F1 at IoU 0.5" if val_metrics.get("f1_threshold") else "default (no F1 on validation)"
        )
    train_seconds = time.time() - started

    metadata = serving.ModelMetadata(
        kind="detector",
        version=_version(),
        input_size=m.input_size,
        threshold=float(threshold),
        class_names=("rust",),
        backbone=m.backbone,
        weights=weights.description + (f", then the backbone of {backbone_init['version']}" if backbone_init else ""),
        extra={
            "max_detections": config.postprocess.max_detections,
            "nms_iou": config.postprocess.nms_iou,
            "min_score": config.postprocess.min_score,
            "image_score_weight": post.image_score_weight if m.image_head else 0.0,
            "threshold_source": threshold_source,
            "box_format": "normalised ymin, xmin, ymax, xmax",
        },
    )
    decode = make_decode_signature(model, anchors, m.box_variance, post)
    export_model(model_dir, predict, model, metadata, {serving.DECODE_SIGNATURE: decode})
    lite = None
    if config.export_lite:
        lite = export_lite.export_detector_lite(
            model_dir, model, m.input_size, config.lite_max_abs_diff, config.lite_check_images
        )
    report = detection_eval.evaluate_detector(model_dir, data, model_dir, splits=(VALIDATION_SPLIT, TEST_SPLIT))
    report["training"] = {
        "seconds": round(train_seconds, 1),
        "epochs": epoch,
        "steps_per_epoch": steps,
        "selected_epoch": selector.best_epoch,
        "validation_history": selector.history,
        "threshold_source": threshold_source,
        "image_score_weight": post.image_score_weight if m.image_head else None,
        "validation_AP50_by_image_score_weight": {str(w): ap for w, ap in weight_choice.items()},
        "history": history,
    }
    report["data_counts"] = {s: c.as_dict() for s, c in counts.items()}
    if lite:
        report["lite_export"] = lite
    if backbone_init:
        report["backbone_init"] = backbone_init
    if hold_out:
        report["held_out"] = {"folder": hold_out, "images_excluded_from_training": len(exclude)}
        report["held_out"]["metrics"] = detection_eval.evaluate_detector(
            model_dir, hold_out, io_utils.join(model_dir, "held_out")
        )["splits"]
    report["versions"] = _versions()
    io_utils.write_text(io_utils.join(model_dir, detection_eval.METRICS_FILE), json.dumps(report, indent=2) + "\n")
    io_utils.write_bytes(io_utils.join(model_dir, "training_curves.png"), _curves_png(history, selector.history))
    io_utils.write_text(io_utils.join(model_dir, "model_card.md"), model_card(report, config, metadata, config_file))
    log.info("done in %.1f min: %s", (time.time() - started) / 60, _summary(report))
    return report


def _init_from_classifier(backbone, config: DetectorConfig, data: str, exclude: frozenset[str]) -> dict | None:
    """Start the backbone from a classifier's (``init_from_classifier``) and say what that classifier saw.

    A classifier trained on the same data set learnt from its train split only, so validation and
    test stay unseen; one trained elsewhere may have seen them, which would flatter every metric
    here. Held-out images (``--hold_out``) that sit in the train split were seen by the classifier
    with their image label (rust), though never with boxes.
    """
    from training.detector_data import manifest_rows
    from training.detector_model import init_backbone_from_classifier

    folder = config.init_from_classifier
    if not folder:
        return None
    meta = serving.read_metadata(folder)
    copied = init_backbone_from_classifier(backbone, folder, config.model)
    trained_on = meta.extra.get("data")
    same_data = trained_on is not None and _same_location(trained_on, data)
    info = {
        "classifier": folder,
        "version": meta.version,
        "layers_copied": copied,
        "classifier_data": trained_on,
        "same_data_set": same_data,
    }
    log.info("backbone: %d layers from classifier %s (%s), trained on %s", copied, meta.version, folder, trained_on)
    if not same_data:
        log.warning(
            "classifier %s was trained on %s, not on %s: its training photos may include this data set's validation "
            "or test photos, which would flatter the detector's metrics. Use a classifier trained on %s",
            meta.version,
            trained_on,
            data,
            data,
        )
    elif exclude and (rows := manifest_rows(data)):
        seen = {r["sha256"] for r in rows if r["sha256"] in exclude and r["split"] == TRAINING_SPLIT}
        info["held_out_images_in_classifier_training"] = len(seen)
        if seen:
            log.warning(
                "%d held-out images are in the train split the classifier learnt from (image label only, no boxes)",
                len(seen),
            )
    return info


def _same_location(a: str, b: str) -> bool:
    if io_utils.is_remote(a) or io_utils.is_remote(b):
        return paths.normalise(a) == paths.normalise(b)
    return os.path.realpath(a) == os.path.realpath(b)  # symlinked data dirs are the same data set


def _versions() -> dict[str, str]:
    from training.model_card import versions

    return versions()


def _summary(report: dict) -> str:
    parts = []
    for split, mt in report["splits"].items():
        if mt.get("AP50") is not None:
            parts.append(f"{split} AP50 {mt['AP50']:.3f} AP {mt['AP']:.3f} AR100 {mt['AR100']:.3f}")
    return "; ".join(parts)


def _curves_png(history: dict[str, list], validation: list[dict]) -> bytes:
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    epochs = np.arange(1, len(history.get("loss", [])) + 1)
    for key, style in (
        ("loss", "-"),
        ("val_loss", "--"),
        ("cls_loss", "-"),
        ("val_cls_loss", "--"),
        ("box_loss", "-"),
        ("val_box_loss", "--"),
        ("image_loss", "-"),
    ):
        if key in history:
            axes[0].plot(epochs, history[key], style, marker=".", label=key)
    axes[0].set_title("loss (focal + smooth L1 + image cross-entropy)")
    if validation:
        axes[1].plot(
            [v["epoch"] for v in validation], [v["AP50"] for v in validation], marker="o", label="validation AP50"
        )
        axes[1].plot([v["epoch"] for v in validation], [v["AP"] for v in validation], marker="o", label="validation AP")
    axes[1].set_title("COCO AP on validation")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _fmt(v) -> str:
    return "n/a" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)


def model_card(report: dict, config: DetectorConfig, metadata: serving.ModelMetadata, config_file: str | None) -> str:
    import yaml

    m = config.model
    rows = ["| metric | " + " | ".join(report["splits"]) + " |", "|---|" + "---|" * len(report["splits"])]
    for key in (
        "AP",
        "AP50",
        "AP75",
        "AR1",
        "AR10",
        "AR100",
        "f1",
        "precision_at_f1",
        "recall_at_f1",
        "images",
        "images_with_boxes",
        "true_boxes",
        "left_out",
    ):
        rows.append(f"| {key} | " + " | ".join(_fmt(mt.get(key)) for mt in report["splits"].values()) + " |")
    for key in ("AP50", "AP", "AR100"):
        rows.append(
            f"| {key}, box images only (no negatives, the article's setting) | "
            + " | ".join(_fmt(mt.get("box_images_only", {}).get(key)) for mt in report["splits"].values())
            + " |"
        )
    counts = [
        "| split | images | with boxes | boxes | negatives | left out (rust, no boxes) |",
        "|---|---|---|---|---|---|",
    ]
    for split, c in report["data_counts"].items():
        counts.append(
            f"| {split} | {c['images']} | {c['box_images']} | {c['boxes']} | {c['negatives']} | {c['skipped']} |"
        )
    t = report["training"]
    lines = [
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
        f"{config.postprocess.pre_nms_top_k} anchors, `tf.image.combined_non_max_suppression` at IoU "
        f"{config.postprocess.nms_iou}, at most {config.postprocess.max_detections} boxes scoring >= "
        f"{config.postprocess.min_score}.",
        "",
        "## Fuzzy rust boxes: assignment and loss",
        f"- Anchors with IoU >= {config.assignment.positive_iou} to a box are rust, < {config.assignment.negative_iou} "
        "background, and those in between are **ignored**: where an annotator's box edge is a matter of taste, the "
        "model is neither rewarded nor punished. Every box also claims its best anchor, so thin or oddly shaped "
        "boxes always train.",
        f"- Classification: sigmoid focal loss (alpha {config.focal_alpha}, gamma {config.focal_gamma}) normalised by "
        "the number of positive anchors: the thousands of easy background anchors and confidently-handled "
        "ambiguous ones fade out, and no single fuzzy box dominates. Boxes: smooth-L1 (Huber) on variance-scaled "
        f"centre/size deltas (variance {list(m.box_variance)}), which grows only linearly for large errors, so a box "
        "drawn loosely by the annotator pulls the prediction without exploding the gradient.",
        "- Images without boxes (`no_rust`) make every anchor background: that is how hard negatives (red paint, "
        "copper, clean steel) teach the model what is not rust. `rust` images without boxes (class-folder "
        "sources) say nothing about where the rust is: all their anchors are ignored.",
        *_image_head_lines(report, config),
        "- Evaluation keeps the standard COCO IoU thresholds; with fuzzy regions AP50 is the meaningful figure, "
        "AP75 and AP@[.5:.95] mostly measure agreement with one annotator's box edges.",
        "",
        "## Training",
        f"- Phase 1: {config.frozen_epochs} epochs with the backbone frozen, AdamW at {config.learning_rate} "
        f"(cosine, warm-up). Phase 2: {config.finetune_epochs} epochs training the backbone from "
        f"`{config.fine_tune_from}` on at {config.finetune_learning_rate}. Backbone batch norm frozen throughout "
        f"(batches of {config.batch_size}). Each epoch: every box image once plus {config.negatives_per_positive:g} "
        "sampled negative(s) per box image.",
        *(
            [
                f"- Weights averaged during training (Keras optimizer EMA, momentum {config.ema_momentum:g}): "
                "validation, the chosen epoch and the export all use the average, which swings far less from epoch "
                "to epoch than the raw weights on a few dozen box images."
            ]
            if config.ema_momentum is not None
            else []
        ),
        "- Augmentation with Keras's box-aware layers: RandomFlip, RandomZoom, RandomTranslation (boxes moved and "
        "clipped with the image), RandomColorJitter (brightness, contrast, saturation, light hue).",
        f"- Best epoch by validation AP50 (COCOeval every {config.eval_every} epochs): epoch {t['selected_epoch']} of "
        f"{t['epochs']}. Training took {t['seconds'] / 60:.1f} min.",
        "",
        "## Data",
        f"Data set `{report['data']}`.",
        "",
        *counts,
        "",
        "## Metrics (pycocotools COCOeval, the exported model through its bytes signature)",
        "",
        *rows,
        "",
        "Negatives are part of the evaluation: a box on a clean image is a false positive. For reference, the "
        "article this project grew from reported AP50 0.183 (SSD MobileNet, TF Object Detection API).",
        "",
        *_held_out_lines(report),
        "Figures: `detections_grid.png` (test images, green true boxes, red predictions above the threshold), "
        "`training_curves.png`; TensorBoard logs in `logs/`.",
        "",
        "## Limitations",
        "- Boxes over-state rusted area (a box round a streak is mostly clean steel); use them to locate rust, not "
        "to measure it precisely.",
        "- The model sees the photo squashed to a square: on large survey photos the inference pipeline tiles the "
        "image so that small spots keep enough pixels.",
        "- Box annotations are few and from web photos; check a new survey type with `python -m training.evaluate` "
        "on a labelled sample before trusting the threshold there.",
        "",
        "## Configuration",
        f"From `{config_file or config_path('detector.yaml')}`, resolved:",
        "```yaml",
        yaml.safe_dump(_plain(dataclasses.asdict(config)), sort_keys=False).rstrip(),
        "```",
        "",
        "## Versions",
        ", ".join(f"{k} {v}" for k, v in report["versions"].items()),
        "",
    ]
    return "\n".join(lines)


def _image_head_lines(report: dict, config: DetectorConfig) -> list[str]:
    if not config.model.image_head:
        return []
    t = report["training"]
    tried = ", ".join(f"{w}: {_fmt(ap)}" for w, ap in t["validation_AP50_by_image_score_weight"].items())
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
            f"- {name}: AP50 {_fmt(mt.get('AP50'))}, AP {_fmt(mt.get('AP'))}, AR100 {_fmt(mt.get('AR100'))} "
            f"on {mt.get('images')} images ({mt.get('true_boxes')} boxes)"
        )
    return lines + [""]


def _plain(value):
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--data", required=True, help="data set directory written by pipelines.build_dataset (local or gs://)"
    )
    parser.add_argument("--model_dir", required=True, help="where the SavedModel, metadata, metrics and model card go")
    parser.add_argument("--config", default=None, help="YAML config (default configs/detector.yaml)")
    parser.add_argument("--frozen_epochs", type=int, default=None)
    parser.add_argument("--finetune_epochs", type=int, default=None)
    parser.add_argument("--batch_size", type=int, default=None)
    parser.add_argument("--weights", default=None, help="imagenet, none or a .h5 path (default: project resolution)")
    parser.add_argument(
        "--init_from_classifier",
        default=None,
        help="exported classifier directory (training.train_classifier on the same --data) whose backbone to start from",
    )
    parser.add_argument(
        "--hold_out",
        default=None,
        help="raw labelled folder (e.g. a benchmark's test images) kept out of training with its near-duplicates, "
        "then evaluated: metrics in metrics.json under held_out and in MODEL_DIR/held_out/",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    flags = ("frozen_epochs", "finetune_epochs", "batch_size", "weights", "init_from_classifier")
    overrides = {k: getattr(args, k) for k in flags}
    config = load_detector_config(args.config, overrides)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return train(args.data, args.model_dir, config, args.config, args.hold_out)


if __name__ == "__main__":
    main()
