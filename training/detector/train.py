"""Train, evaluate and export the rust detector.

    python -m training.train_detector --data DATASET_DIR --model_dir MODEL_DIR \\
        [--config configs/detector.yaml] [--set KEY=VALUE ...] [--head_epochs N] [--fine_tune_epochs N] ...

Two phases on one MobileNetV2 + FPN + SSD-lite model: the head learns on a frozen ImageNet
backbone, then the top of the backbone fine-tunes at a lower learning rate (batch norm frozen
throughout). The best epoch by validation AP50 (COCOeval) is kept, the score threshold is chosen on
validation (max F1 at IoU 0.5), and the exported SavedModel is what gets evaluated on validation
and test, so the reported figures are those of the model inference will run.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass

import keras
import tensorflow as tf

from corrosion.core import io_utils
from corrosion.data import layout
from corrosion.imaging import preprocess
from corrosion.models import serving
from corrosion.models.weights import WeightSource, resolve_weights
from training.common import lite, plots, report
from training.common.export import export_model
from training.common.job import Job, JobSpec
from training.common.job import main as job_main
from training.common.records import DatasetError
from training.common.tensorboard import TensorBoardScalars
from training.detector import evaluate as detection_eval
from training.detector import model_card
from training.detector.backbone_init import init_from_classifier
from training.detector.config import DEFAULT_FILE, DetectorConfig
from training.detector.data import SplitCounts, count_split, held_out_sha256, loss_dataset, training_dataset
from training.detector.decode import PostprocessConfig, make_decode_signature, make_predict
from training.detector.loss import BoxLoss, FocalLoss
from training.detector.model import (
    BOX_OUTPUT,
    CLS_OUTPUT,
    IMAGE_OUTPUT,
    anchor_boxes,
    build_detector,
    set_backbone_trainable,
)
from training.detector.selection import ValidationAP, ema_swap

log = logging.getLogger("training.train_detector")

LOSS_KEYS = ("loss", "cls_loss", "box_loss", "image_loss")


@dataclass
class Detector:
    """The Keras network with its anchors: the detect functions that validation, threshold choice
    and export all run, for one post-processing setting."""

    model: keras.Model
    backbone: keras.Model
    anchors: tf.Tensor
    config: DetectorConfig

    def predict(self, post: PostprocessConfig):
        return make_predict(self.model, self.anchors, self.config.model.box_variance, post)

    def detect(self, post: PostprocessConfig):
        """Encoded bytes in, detections out: what the exported bytes signature computes."""
        predict, size = self.predict(post), self.config.model.input_size

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
        def detect(encoded: tf.Tensor) -> dict[str, tf.Tensor]:
            return predict(preprocess.decode_batch(encoded, size))

        return detect


def train(
    data: str, model_dir: str, config: DetectorConfig, config_file: str | None = None, hold_out: str | None = None
) -> dict:
    """Train, choose the threshold, export, evaluate the export; returns the metrics written to metrics.json."""
    started = time.time()
    keras.utils.set_random_seed(config.seed)
    exclude = held_out_sha256(hold_out, data) if hold_out else frozenset()
    counts = check_data(data, exclude)
    val_examples, val_skipped = detection_eval.record_examples(data, layout.VALIDATION)
    weights = resolve_weights(config.weights)
    model, backbone = build_detector(config.model, weights)
    backbone_init = init_from_classifier(backbone, config, data, exclude)
    detector = Detector(model, backbone, anchor_boxes(config.model), config)
    total_epochs = config.head_epochs + config.fine_tune_epochs
    selector = ValidationAP(detector.detect(config.postprocess), val_examples, config.eval_every, total_epochs)
    history, epochs, steps = fit_phases(detector, weights, data, counts, exclude, selector, model_dir)
    selector.restore_best()
    log.info("selected epoch %d (validation AP50 %.3f)", selector.best_epoch, selector.best_ap50)
    post, weight_choice = choose_image_score_weight(detector, val_examples)
    threshold, threshold_source = choose_threshold(detector.detect(post), val_examples, val_skipped, config)
    train_seconds = time.time() - started

    metadata = detector_metadata(config, weights, backbone_init, threshold, threshold_source, post)
    lite_check = export(detector, post, metadata, model_dir)
    out = detection_eval.evaluate_detector(model_dir, data, model_dir, splits=(layout.VALIDATION, layout.TEST))
    out["training"] = {
        "seconds": round(train_seconds, 1),
        "epochs": epochs,
        "steps_per_epoch": steps,
        "selected_epoch": selector.best_epoch,
        "validation_history": selector.history,
        "threshold_source": threshold_source,
        "image_score_weight": post.image_score_weight if config.model.image_head else None,
        "validation_AP50_by_image_score_weight": {str(w): ap for w, ap in weight_choice.items()},
        "history": history,
    }
    out["data_counts"] = {s: c.as_dict() for s, c in counts.items()}
    if lite_check:
        out["lite_export"] = lite_check
    if backbone_init:
        out["backbone_init"] = backbone_init
    if hold_out:
        out["held_out"] = evaluate_held_out(model_dir, hold_out, exclude)
    out["versions"] = report.versions()
    card = model_card.render(out, config, metadata, config_file)
    curves = plots.detector_curves(history, selector.history)
    report.write_outputs(model_dir, out, card, {"training_curves.png": curves})
    log.info("done in %.1f min: %s", (time.time() - started) / 60, summary(out))
    return out


def check_data(data: str, exclude: frozenset[str]) -> dict[str, SplitCounts]:
    """Counts of every split (train without the held-out images); a detector needs boxes in train and validation."""
    counts = {s: count_split(data, s, exclude if s == layout.TRAIN else frozenset()) for s in layout.SPLITS}
    for split, c in counts.items():
        log.info("%s: %s", split, c.as_dict())
    for split in (layout.TRAIN, layout.VALIDATION):
        c = counts[split]
        if c.box_images == 0:
            raise DatasetError(
                f"the {split} split of {data} has no image with rust boxes ({c.images} images: {c.negatives} negatives, "
                f"{c.skipped} rust images without boxes); a detector needs boxes (VOC XML or YOLO txt sources) in train and validation"
            )
    return counts


def datasets(data: str, counts: dict[str, SplitCounts], detector: Detector, exclude: frozenset[str]):
    """(endless augmented training batches, steps per epoch, validation loss batches)."""
    config, m = detector.config, detector.config.model
    common = {
        "size": m.input_size,
        "batch_size": config.batch_size,
        "max_boxes": config.max_boxes,
        "anchors": detector.anchors,
        "assignment": config.assignment,
        "variance": m.box_variance,
        "image_head": m.image_head,
    }
    train_ds, steps = training_dataset(
        data,
        counts[layout.TRAIN],
        negatives_per_positive=config.negatives_per_positive,
        augment=config.augment,
        seed=config.seed,
        exclude=exclude,
        unlocated_per_positive=config.unlocated_per_positive,
        **common,
    )
    return train_ds, steps, loss_dataset(data, layout.VALIDATION, **common)


def losses(config: DetectorConfig) -> tuple[dict, dict]:
    """Per-output losses and their weights."""
    loss = {BOX_OUTPUT: BoxLoss(), CLS_OUTPUT: FocalLoss(config.focal_alpha, config.focal_gamma)}
    weights = {BOX_OUTPUT: config.box_loss_weight, CLS_OUTPUT: 1.0}
    if config.model.image_head:
        loss[IMAGE_OUTPUT] = keras.losses.BinaryCrossentropy(from_logits=True)
        weights[IMAGE_OUTPUT] = config.image_loss_weight
    return loss, weights


def optimizer(config: DetectorConfig, peak: float, steps: int, epochs: int) -> keras.optimizers.Optimizer:
    ema = {"use_ema": True, "ema_momentum": config.ema_momentum} if config.ema_momentum is not None else {}
    schedule = _schedule(peak, steps, epochs, config.warmup_epochs)
    return keras.optimizers.AdamW(schedule, weight_decay=config.weight_decay, clipnorm=10.0, **ema)


def _schedule(peak: float, steps_per_epoch: int, epochs: int, warmup_epochs: int):
    total = max(1, steps_per_epoch * epochs)
    warmup = min(total - 1, steps_per_epoch * warmup_epochs)
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=peak * 0.1 if warmup else peak,
        decay_steps=total - warmup,
        warmup_target=peak if warmup else None,
        warmup_steps=warmup,
        alpha=0.02,
    )


def fit_phases(
    detector: Detector,
    weights: WeightSource,
    data: str,
    counts: dict[str, SplitCounts],
    exclude: frozenset[str],
    selector: ValidationAP,
    model_dir: str,
) -> tuple[dict[str, list], int, int]:
    """Both phases on one epoch axis; (loss history, epochs run, steps per epoch)."""
    config, model, backbone = detector.config, detector.model, detector.backbone
    train_ds, steps, val_ds = datasets(data, counts, detector, exclude)
    io_utils.make_dirs(model_dir)
    scalars = TensorBoardScalars(io_utils.join(model_dir, "logs"))
    loss, loss_weights = losses(config)
    phases = [
        ("frozen", config.head_epochs, config.head_learning_rate, None),
        ("fine-tune", config.fine_tune_epochs, config.fine_tune_learning_rate, config.fine_tune_from or backbone.layers[0].name),
    ]  # fmt: skip
    history: dict[str, list] = {}
    epoch = 0
    for name, epochs, lr, trainable_from in phases:
        if epochs <= 0:
            continue
        n_trainable = set_backbone_trainable(backbone, trainable_from, train_batch_norm=weights.kind == "none")
        log.info("phase %s: %d epochs at lr %g, %d backbone layers trainable", name, epochs, lr, n_trainable)
        model.compile(
            optimizer=optimizer(config, lr, steps, epochs),
            loss=loss,
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
    return history, epoch, steps


def choose_image_score_weight(detector: Detector, val_examples) -> tuple[PostprocessConfig, dict]:
    """The image score's share in box scores with the best validation AP50 (models with an image head)."""
    post = detector.config.postprocess
    if not detector.config.model.image_head:
        return post, {}
    choice = {}
    for w in post.choose_image_score_weight:
        candidate = dataclasses.replace(post, image_score_weight=w)
        choice[w] = detection_eval.evaluate_split(detector.detect(candidate), val_examples)[0]["AP50"]
        log.info(
            "image score weight %.2f: validation AP50 %.3f", w, choice[w] if choice[w] is not None else float("nan")
        )
    best = max(choice, key=lambda w: -1.0 if choice[w] is None else choice[w])
    return dataclasses.replace(post, image_score_weight=best), choice


def choose_threshold(detect, val_examples, val_skipped: int, config: DetectorConfig) -> tuple[float, str]:
    """(score threshold, where it came from): configured, else validation max F1 at IoU 0.5, else the default."""
    if config.score_threshold is not None:
        return config.score_threshold, "configuration"
    val_metrics, _ = detection_eval.evaluate_split(detect, val_examples, val_skipped)
    if val_metrics.get("f1_threshold"):
        return val_metrics["f1_threshold"], "validation max F1 at IoU 0.5"
    return config.default_score_threshold, "default (no F1 on validation)"


def detector_metadata(
    config: DetectorConfig,
    weights: WeightSource,
    backbone_init: dict | None,
    threshold: float,
    threshold_source: str,
    post: PostprocessConfig,
) -> serving.ModelMetadata:
    m = config.model
    return serving.ModelMetadata(
        kind="detector",
        version="detector-" + time.strftime("%Y%m%dT%H%M%S", time.gmtime()),
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


def export(detector: Detector, post: PostprocessConfig, metadata: serving.ModelMetadata, model_dir: str) -> dict | None:
    """The SavedModel (bytes, pixels and raw-output signatures) and, when asked, its checked LiteRT copy."""
    config, model = detector.config, detector.model
    decode = make_decode_signature(model, detector.anchors, config.model.box_variance, post)
    export_model(model_dir, detector.predict(post), model, metadata, {serving.DECODE_SIGNATURE: decode})
    if not config.export_lite:
        return None
    return lite.export_detector_lite(
        model_dir, model, config.model.input_size, config.lite_max_abs_diff, config.lite_check_images
    )


def evaluate_held_out(model_dir: str, hold_out: str, exclude: frozenset[str]) -> dict:
    held = {"folder": hold_out, "images_excluded_from_training": len(exclude)}
    held["metrics"] = detection_eval.evaluate_detector(model_dir, hold_out, io_utils.join(model_dir, "held_out"))[
        "splits"
    ]
    return held


def summary(out: dict) -> str:
    parts = []
    for split, mt in out["splits"].items():
        if mt.get("AP50") is not None:
            parts.append(f"{split} AP50 {mt['AP50']:.3f} AP {mt['AP']:.3f} AR100 {mt['AR100']:.3f}")
    return "; ".join(parts)


def run(job: Job) -> dict:
    return train(job.data, job.model_dir, job.config, job.config_file, job.args.hold_out)


def _hold_out_argument(parser) -> None:
    parser.add_argument(
        "--hold_out",
        default=None,
        help="raw labelled folder (e.g. a benchmark's test images) kept out of training with its near-duplicates, "
        "then evaluated: metrics in metrics.json under held_out and in MODEL_DIR/held_out/",
    )


SPEC = JobSpec(
    description=__doc__,
    config_cls=DetectorConfig,
    default_file=DEFAULT_FILE,
    run=run,
    shortcuts={
        "head_epochs|frozen_epochs": ("head_epochs", int, "phase 1 epochs, backbone frozen"),
        "fine_tune_epochs|finetune_epochs": ("fine_tune_epochs", int, "phase 2 epochs, backbone top trains"),
        "batch_size": ("batch_size", int, "images per step"),
        "weights": ("weights", str, "imagenet, none or a .h5 path (default: project resolution)"),
        "init_from_classifier": (
            "init_from_classifier",
            str,
            "exported classifier directory (training.train_classifier on the same --data) whose backbone to start from",
        ),
    },
    arguments=_hold_out_argument,
)


def main(argv: list[str] | None = None) -> int:
    return job_main(SPEC, argv)
