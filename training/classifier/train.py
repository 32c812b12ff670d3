"""Train, evaluate and export the rust classifier.

    python -m training.train_classifier --data DATASET_DIR --model_dir MODEL_DIR \\
        [--config configs/classifier.yaml] [--set KEY=VALUE ...] [--head_epochs N] [--fine_tune_epochs N] ...

Phase 1 trains a new head on the frozen backbone (by default on backbone features computed once,
including augmented views: on CPU this is many times faster than running the backbone every
epoch, and the same model). Phase 2 fine-tunes the top of the backbone at a lower learning rate.
The best epoch by validation ROC-AUC wins; the decision threshold is chosen on validation for the
target recall and then reported on test. ``MODEL_DIR`` receives the SavedModel + metadata.json
(``training.common.export``), metrics.json, plots/, model_card.md, predictions_*.csv and TensorBoard logs/.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from corrosion.core import io_utils
from corrosion.core.labels import RUST, LabelConfig, load_labels
from corrosion.data import layout
from corrosion.models import serving
from corrosion.models.weights import WeightSource, resolve_weights
from training.classifier import metrics as cm
from training.classifier import model_card
from training.classifier.config import DEFAULT_FILE, ClassifierConfig
from training.classifier.evaluate import predictions_csv
from training.classifier.model import ClassifierParts, auc_metric, build_classifier, unfreeze_from
from training.classifier.model_card import beats
from training.common import lite, plots, records, report
from training.common.export import classifier_predict_fn, export_model
from training.common.job import Job, JobSpec
from training.common.job import main as job_main
from training.common.tensorboard import TensorBoardScalars

log = logging.getLogger("training.train_classifier")

# (split, dataset view): the training images are scored un-augmented and in order
SCORED_VIEWS = ((layout.TRAIN, "train_plain"), (layout.VALIDATION, layout.VALIDATION), (layout.TEST, layout.TEST))
BASELINE_DESCRIPTION = "Frozen backbone features (global average pooled, same weights) + logistic regression (L2)"


def _verbose() -> int:
    """Keras progress bars on a terminal, one line per epoch in log files."""
    return 1 if sys.stderr.isatty() else 2


def _local_dir(model_dir: str, name: str) -> str:
    """A local directory for Keras checkpoints (h5py cannot write to gs://)."""
    if io_utils.is_remote(model_dir):
        return tempfile.mkdtemp(prefix=f"classifier-{name}-")
    path = Path(model_dir) / name
    path.mkdir(parents=True, exist_ok=True)
    return str(path)


def class_weights(counts: records.SplitCounts) -> dict[int, float]:
    """Inverse-frequency weights, mean 1 over the training images."""
    n = counts.total
    return {label: n / (2.0 * counts.count(label)) for label in (0, 1)}


def fit_logistic_regression(x: tf.Tensor, y: np.ndarray, sample_weight: np.ndarray, l2: float, steps: int):
    """Weighted, L2-regularised logistic regression by full-batch Adam; returns a scoring function.

    The loss is convex, so a few hundred full-batch steps reach the optimum; a compiled step keeps
    it to a second (Keras fit would pay its per-epoch overhead every step).
    """
    w = tf.Variable(tf.zeros([x.shape[1], 1]))
    b = tf.Variable(tf.zeros([1]))
    t = tf.constant(y.reshape(-1, 1), tf.float32)
    sw = tf.constant(sample_weight.reshape(-1, 1), tf.float32)
    optimizer = keras.optimizers.Adam(0.01)

    @tf.function(autograph=False)  # a plain graph: no source transformation, nothing to go stale
    def step() -> None:
        with tf.GradientTape() as tape:
            logits = tf.matmul(x, w) + b
            loss = tf.reduce_sum(sw * tf.nn.sigmoid_cross_entropy_with_logits(t, logits)) / tf.reduce_sum(sw)
            loss += l2 * tf.reduce_sum(tf.square(w))
        optimizer.apply_gradients(zip(tape.gradient(loss, [w, b]), [w, b], strict=True))

    for _ in range(steps):
        step()
    return lambda features: tf.sigmoid(tf.matmul(features, w) + b).numpy().reshape(-1).astype(np.float64)


def labels_of(ds: tf.data.Dataset) -> np.ndarray:
    return np.concatenate([y.numpy() for _, y in ds]).astype(np.int64)


def predict_scores(model: keras.Model, ds: tf.data.Dataset) -> np.ndarray:
    return model.predict(ds.map(lambda x, y: x), verbose=0).reshape(-1).astype(np.float64)


class Trainer:
    """One training run: data, model, both phases, evaluation, export."""

    def __init__(self, data_dir: str, model_dir: str, cfg: ClassifierConfig, labels: LabelConfig) -> None:
        self.data_dir = data_dir.rstrip("/")
        self.model_dir = model_dir.rstrip("/")
        self.cfg = cfg
        self.labels = labels
        self.class_names = labels.image_classes
        if len(self.class_names) != 2 or labels.image_label_id(RUST) != 1:
            raise ValueError(
                f"the classifier needs image classes (no_rust, rust) with rust = 1; configs/labels.yaml has {self.class_names}"
            )
        self.histories: list[tuple[str, dict[str, list[float]]]] = []
        self.crops: dict[str, records.CleanCrops] = {}
        self.best_val_auc = -1.0
        self.selected = ""

    # ------------------------------------------------------------------ data
    def check_data(self) -> dict[str, records.SplitCounts]:
        counts = {}
        for split in layout.SPLITS:
            counts[split] = records.count_labels(self.data_dir, split)
            records.require_both_classes(counts[split], self.class_names, self.data_dir)
            log.info(
                "%s: %d images (%d %s, %d %s)",
                split,
                counts[split].total,
                counts[split].count(1),
                self.class_names[1],
                counts[split].count(0),
                self.class_names[0],
            )
        return counts

    def cut_clean_crops(self) -> dict[str, records.CleanCrops]:
        """Clean-steel crops of every split (``records.clean_crop_images``); none when switched off."""
        c = self.cfg
        if not c.clean_crops:
            return {}
        return {
            split: records.clean_crop_images(
                self.data_dir, split, c.input_size, c.clean_crop_sides, c.clean_crop_margin, rust_label=1
            )
            for split in layout.SPLITS
        }

    def datasets(self) -> dict[str, tf.data.Dataset]:
        """Training photos plus their clean-steel crops; validation and test are photos only."""
        c = self.cfg
        train_crops = self.crops.get(layout.TRAIN)
        out = {
            layout.TRAIN: records.image_dataset(
                self.data_dir,
                layout.TRAIN,
                c.input_size,
                c.batch_size,
                shuffle=True,
                seed=c.seed,
                cache=c.cache_images,
                shuffle_buffer=c.shuffle_buffer,
                extra=train_crops,
            )
        }
        for split in ("train_plain", layout.VALIDATION, layout.TEST):
            name, extra = (layout.TRAIN, train_crops) if split == "train_plain" else (split, None)
            out[split] = records.image_dataset(
                self.data_dir, name, c.input_size, c.batch_size, cache=c.cache_images, extra=extra
            )
        return out

    def with_crops(self, counts: records.SplitCounts) -> records.SplitCounts:
        """Training counts with the clean-steel crops as no_rust images (for the class weights)."""
        extra = len(self.crops.get(counts.split, ()))
        return records.SplitCounts(counts.split, counts.by_label | {0: counts.count(0) + extra})

    def crop_false_alarms(self, model: keras.Model, threshold: float) -> dict | None:
        """Validation's and test's clean-steel crops scored at the shipped threshold: the rate at
        which clean parts of inspection photos are called rust (the shortcut a whole-photo label invites)."""
        if not self.crops:
            return None
        out = {}
        for split in (layout.VALIDATION, layout.TEST):
            crops = self.crops[split]
            scores = predict_scores(model, crops.dataset().batch(self.cfg.batch_size)) if len(crops) else np.zeros(0)
            out[split] = {"photos_searched": crops.photos} | cm.false_alarms(scores, crops.sources, threshold)
        out["train_crops"] = len(self.crops[layout.TRAIN])
        return out

    # ------------------------------------------------------------------ phases
    def epochs_so_far(self) -> int:
        return sum(len(h.get("loss", [])) for _, h in self.histories)

    def callbacks(self, checkpoint: str, initial_best: float | None, patience: int) -> list[keras.callbacks.Callback]:
        return [
            keras.callbacks.ModelCheckpoint(
                checkpoint,
                monitor="val_auc",
                mode="max",
                save_best_only=True,
                save_weights_only=True,
                initial_value_threshold=initial_best,
                verbose=0,
            ),
            keras.callbacks.EarlyStopping(monitor="val_auc", mode="max", patience=patience, verbose=1),
            TensorBoardScalars(io_utils.join(self.model_dir, "logs"), first_epoch=self.epochs_so_far()),
        ]

    def cache_activations(self, parts: ClassifierParts, ds) -> dict[str, np.ndarray]:
        """Frozen-bottom activations: train, validation, test, and train plus its augmented views."""
        c = self.cfg
        acts = {}
        for split, key in SCORED_VIEWS:
            log.info("backbone activations (up to %s) of the %s images", c.fine_tune_from, split)
            acts[split] = parts.bottom.predict(ds[key].map(lambda x, _: x), verbose=0)
        views = [acts[layout.TRAIN]]
        if c.feature_augmented_copies:
            images = keras.Input((c.input_size, c.input_size, 3))
            augmented = keras.Model(images, parts.bottom(parts.augment(images, training=True)))
            for copy in range(c.feature_augmented_copies):
                log.info(
                    "backbone activations of augmented copy %d/%d of the training images",
                    copy + 1,
                    c.feature_augmented_copies,
                )
                views.append(augmented.predict(ds["train_plain"].map(lambda x, _: x), verbose=0))
        acts["train_views"] = np.concatenate(views)
        log.info(
            "cached %d training views, %.0f MB", len(acts["train_views"]), sum(a.nbytes for a in acts.values()) / 1e6
        )
        return acts

    def fit(
        self,
        model: keras.Model,
        phase: str,
        lr: float,
        epochs: int,
        train,
        validation,
        weights: dict | None,
        checkpoint: str,
        initial_best: float | None,
    ) -> None:
        """One phase: compile, fit with best-by-validation-ROC-AUC checkpointing, restore the best."""
        c = self.cfg
        loss = keras.losses.BinaryCrossentropy(label_smoothing=c.label_smoothing)
        model.compile(keras.optimizers.Adam(lr), loss, metrics=[auc_metric()])
        if isinstance(train, tuple):  # cached arrays
            kwargs = {"x": train[0], "y": train[1], "batch_size": c.batch_size, "shuffle": True}
        else:
            kwargs = {"x": train}
        history = model.fit(
            **kwargs,
            epochs=epochs,
            validation_data=validation,
            class_weight=weights,
            callbacks=self.callbacks(checkpoint, initial_best, c.early_stopping_patience),
            verbose=_verbose(),
        )
        model.load_weights(checkpoint)
        self._record(phase, history.history, initial_best)

    def phase1(
        self, parts: ClassifierParts, ds, acts: dict | None, y: dict, weights: dict | None, ckpt_dir: str
    ) -> None:
        c = self.cfg
        if acts is not None:
            views = parts.top_features.predict(acts["train_views"], batch_size=c.batch_size, verbose=0)
            val = parts.top_features.predict(acts[layout.VALIDATION], batch_size=c.batch_size, verbose=0)
            log.info("phase 1: head on cached features of %d training views, %d epochs max", len(views), c.head_epochs)
            train = (views, np.tile(y[layout.TRAIN], len(views) // len(y[layout.TRAIN])))
            self.fit(
                parts.head,
                "phase 1 (frozen)",
                c.head_learning_rate,
                c.head_epochs,
                train,
                (val, y[layout.VALIDATION]),
                weights,
                f"{ckpt_dir}/head.weights.h5",
                None,
            )
        else:
            log.info("phase 1: head on the frozen backbone, end to end, %d epochs max", c.head_epochs)
            self.fit(
                parts.model,
                "phase 1 (frozen)",
                c.head_learning_rate,
                c.head_epochs,
                ds[layout.TRAIN],
                ds[layout.VALIDATION],
                weights,
                f"{ckpt_dir}/phase1.weights.h5",
                None,
            )

    def phase2(
        self, parts: ClassifierParts, ds, acts: dict | None, y: dict, weights: dict | None, ckpt_dir: str
    ) -> None:
        c = self.cfg
        n_weights = unfreeze_from(parts.backbone, c.fine_tune_from)
        log.info(
            "phase 2: fine-tuning the backbone from %s on (%d weights, batch norm frozen) at lr %g, %d epochs max, to beat validation ROC-AUC %.4f",
            c.fine_tune_from,
            n_weights,
            c.fine_tune_learning_rate,
            c.fine_tune_epochs,
            self.best_val_auc,
        )
        checkpoint = f"{ckpt_dir}/best.weights.h5"
        model = parts.top if acts is not None else parts.model
        model.save_weights(checkpoint)  # phase 1's best, kept unless fine-tuning beats it
        if acts is not None:
            train = (acts["train_views"], np.tile(y[layout.TRAIN], len(acts["train_views"]) // len(y[layout.TRAIN])))
            validation = (acts[layout.VALIDATION], y[layout.VALIDATION])
        else:
            train, validation = ds[layout.TRAIN], ds[layout.VALIDATION]
        self.fit(
            model,
            "phase 2 (fine-tune)",
            c.fine_tune_learning_rate,
            c.fine_tune_epochs,
            train,
            validation,
            weights,
            checkpoint,
            self.best_val_auc,
        )

    def _record(self, phase: str, history: dict, start_best: float | None = None) -> None:
        history = {k: [float(v) for v in values] for k, values in history.items()}
        self.histories.append((phase, history))
        vals = history.get("val_auc", [])
        if vals and max(vals) > (start_best if start_best is not None else -1.0):
            best = int(np.argmax(vals))
            self.best_val_auc = vals[best]
            self.selected = f"{phase}, epoch {best + 1} (validation ROC-AUC {vals[best]:.4f})"
        log.info("%s done: best validation ROC-AUC so far %.4f; selected %s", phase, self.best_val_auc, self.selected)

    # ------------------------------------------------------------------ baseline
    def baseline(self, feats: dict[str, np.ndarray], y: dict[str, np.ndarray], weights: dict) -> dict:
        """Logistic regression on frozen, un-augmented features: the floor the trained model must beat."""
        c = self.cfg
        mean, std = feats[layout.TRAIN].mean(axis=0), feats[layout.TRAIN].std(axis=0) + 1e-6
        x = {k: tf.constant((v - mean) / std, tf.float32) for k, v in feats.items()}
        w = np.where(y[layout.TRAIN] == 1, weights[1], weights[0]) if weights else np.ones(len(y[layout.TRAIN]))
        predict = fit_logistic_regression(x[layout.TRAIN], y[layout.TRAIN], w, c.baseline_l2, c.baseline_steps)
        scores = {k: predict(x[k]) for k in (layout.VALIDATION, layout.TEST)}
        threshold = cm.threshold_for_recall(y[layout.VALIDATION], scores[layout.VALIDATION], c.target_recall)
        result = {
            "description": BASELINE_DESCRIPTION,
            "threshold": threshold,
            layout.VALIDATION: cm.summarise(
                y[layout.VALIDATION], scores[layout.VALIDATION], threshold, self.class_names
            ),
            layout.TEST: cm.summarise(y[layout.TEST], scores[layout.TEST], threshold, self.class_names),
        }
        log.info(
            "baseline (%s): test ROC-AUC %.4f, PR-AUC %.4f",
            BASELINE_DESCRIPTION,
            result[layout.TEST]["roc_auc"],
            result[layout.TEST]["pr_auc"],
        )
        self._baseline_scores = scores
        return result

    # ------------------------------------------------------------------ run
    def run(self) -> dict:
        c = self.cfg
        started = time.time()
        keras.utils.set_random_seed(c.seed)
        counts = self.check_data()
        source = resolve_weights(c.weights)
        parts = build_classifier(c, source)
        self.crops = self.cut_clean_crops()
        ds = self.datasets()
        y = {split: labels_of(ds[key]) for split, key in SCORED_VIEWS}
        weights = class_weights(self.with_crops(counts[layout.TRAIN])) if c.class_weights else None
        ckpt_dir = _local_dir(self.model_dir, "checkpoints")

        acts = self.cache_activations(parts, ds) if c.cache_features else None
        self.phase1(parts, ds, acts, y, weights, ckpt_dir)
        baseline = self.baseline(self.frozen_features(parts, ds, acts), y, weights) if c.baseline else None
        if c.fine_tune_epochs:
            self.phase2(parts, ds, acts, y, weights, ckpt_dir)
        phase1_mode = (
            f"on cached backbone activations of the training images and {c.feature_augmented_copies} augmented copies"
            if acts is not None
            else "end to end with fresh augmentation every epoch"
        )
        del acts

        scores = {split: predict_scores(parts.inference, ds[split]) for split in (layout.VALIDATION, layout.TEST)}
        sources = [m["source"] for m in records.record_metadata(self.data_dir, layout.VALIDATION)]
        threshold, binding = cm.threshold_for_recall_per_source(
            y[layout.VALIDATION], scores[layout.VALIDATION], sources, c.target_recall, c.threshold_min_source_rust
        )
        summaries = self.summaries(y, scores, threshold)
        seconds = time.time() - started
        metadata = self.metadata(source, threshold, summaries)
        export_check = self.export(parts, metadata, scores[layout.TEST], ckpt_dir)
        metrics = {
            "model": dataclasses.asdict(metadata) | {"class_names": list(self.class_names)},
            "threshold": threshold,
            "threshold_selection": {
                "split": layout.VALIDATION,
                "target_recall": c.target_recall,
                "min_precision": c.min_precision,
                "min_source_rust": c.threshold_min_source_rust,
                "set_by_source": binding,
            },
            layout.VALIDATION: summaries[layout.VALIDATION],
            layout.TEST: summaries[layout.TEST],
            "per_source": self.per_source(scores, threshold),
            "clean_crops": self.crop_false_alarms(parts.inference, threshold),
            "baseline": baseline,
            "beats_baseline": None if baseline is None else beats(summaries[layout.TEST], baseline[layout.TEST]),
            "data": {"path": self.data_dir, "counts": self.count_table(counts)},
            "training": self.training_summary(seconds, phase1_mode, weights),
            "export_check": export_check,
            "versions": report.versions(),
        }
        self.write_reports(metrics, y, scores)
        self.log_done(metrics, seconds)
        return metrics

    def frozen_features(self, parts: ClassifierParts, ds, acts: dict | None) -> dict[str, np.ndarray]:
        """Pooled features of the frozen backbone (phase 1 left it untouched): the baseline's inputs."""
        c = self.cfg
        if acts is not None:
            return {
                s: parts.top_features.predict(acts[s], batch_size=c.batch_size, verbose=0)
                for s in (layout.TRAIN, layout.VALIDATION, layout.TEST)
            }
        return {s: parts.features.predict(ds[k].map(lambda x, _: x), verbose=0) for s, k in SCORED_VIEWS}

    def per_source(self, scores: dict, threshold: float) -> dict[str, dict]:
        """Validation and test figures at the shipped threshold for each source folder."""
        out = {}
        for split, split_scores in scores.items():
            meta = records.record_metadata(self.data_dir, split)
            labels, sources = [m["label"] for m in meta], [m["source"] for m in meta]
            out[split] = cm.per_source(labels, split_scores, sources, threshold)
        return out

    def summaries(self, y: dict, scores: dict, threshold: float) -> dict[str, dict]:
        out = {split: cm.summarise(y[split], scores[split], threshold, self.class_names) for split in scores}
        out[layout.TEST]["best_recall_at_precision"] = cm.best_recall_at_precision(
            y[layout.TEST], scores[layout.TEST], self.cfg.min_precision
        )
        return out

    def export(self, parts: ClassifierParts, metadata: serving.ModelMetadata, test_scores, ckpt_dir: str) -> dict:
        """The SavedModel (checked against the Keras model), its LiteRT copy when asked; checkpoints removed."""
        c = self.cfg
        export_model(self.model_dir, classifier_predict_fn(parts.inference), parts.inference, metadata)
        export_check = self.check_export(test_scores)
        if c.export_lite:
            export_check["lite"] = lite.export_classifier_lite(
                self.model_dir, parts.inference, c.input_size, c.lite_max_abs_diff, c.lite_check_images
            )
        if not io_utils.is_remote(self.model_dir):
            shutil.rmtree(ckpt_dir, ignore_errors=True)  # the SavedModel is the product; the weights are in it
        return export_check

    def count_table(self, counts: dict[str, records.SplitCounts]) -> dict[str, dict[str, int]]:
        return {s: {self.class_names[1]: n.count(1), self.class_names[0]: n.count(0)} for s, n in counts.items()}

    def training_summary(self, seconds: float, phase1_mode: str, weights: dict | None) -> dict:
        return {
            "seconds": round(seconds, 1),
            "cpu_threads": os.cpu_count(),
            "device": "GPU" if tf.config.list_physical_devices("GPU") else "CPU only",
            "phase1_mode": phase1_mode,
            "selected": self.selected,
            "epochs_run": self.epochs_so_far(),
            "class_weight": None if weights is None else {self.class_names[k]: v for k, v in weights.items()},
            "history": {name: h for name, h in self.histories},
        }

    def log_done(self, metrics: dict, seconds: float) -> None:
        test = metrics[layout.TEST]
        log.info(
            "done in %.1f min: test ROC-AUC %.4f, PR-AUC %.4f, recall %.3f, precision %.3f at threshold %.4f; model in %s",
            seconds / 60,
            test["roc_auc"],
            test["pr_auc"],
            test["recall"],
            test["precision"] or 0.0,
            metrics["threshold"],
            self.model_dir,
        )
        if metrics["baseline"] is not None and not metrics["beats_baseline"]:
            log.warning("the trained model does NOT beat the frozen-features baseline on test; see model_card.md")

    def metadata(self, source: WeightSource, threshold: float, summaries: dict) -> serving.ModelMetadata:
        c = self.cfg
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        digest = hashlib.sha256(
            json.dumps([dataclasses.asdict(c), self.data_dir], sort_keys=True, default=str).encode()
        ).hexdigest()[:6]
        return serving.ModelMetadata(
            kind="classifier",
            version=f"classifier-{stamp}-{digest}",
            input_size=c.input_size,
            threshold=float(threshold),
            class_names=tuple(self.class_names),
            backbone=c.backbone,
            weights=f"{source.kind}: {source.description}",
            extra={
                "target_recall": c.target_recall,
                "validation_recall": summaries[layout.VALIDATION]["recall"],
                "validation_precision": summaries[layout.VALIDATION]["precision"],
                "test_roc_auc": summaries[layout.TEST]["roc_auc"],
                "backbone_kwargs": dict(c.backbone_kwargs),
                "data": self.data_dir,
            },
        )

    def check_export(self, keras_test_scores: np.ndarray, n: int = 16) -> dict:
        """Reload the SavedModel and score test images from their bytes: must match the Keras model."""
        loaded = tf.saved_model.load(self.model_dir)
        encoded = [p["encoded"] for p in records.parsed_dataset(self.data_dir, layout.TEST).take(n)]
        served = loaded.signatures[serving.BYTES_SIGNATURE](image_bytes=tf.stack(encoded))[
            serving.CLASSIFIER_OUTPUT
        ].numpy()
        diff = float(np.max(np.abs(served - keras_test_scores[: len(served)])))
        if diff > 1e-3:
            raise RuntimeError(
                f"exported model disagrees with the trained model by {diff:.2e} on test images; export is broken"
            )
        log.info(
            "export check: SavedModel scores on %d test images match the trained model (max diff %.1e)",
            len(served),
            diff,
        )
        return {"images": len(served), "max_abs_difference": diff}

    def write_reports(self, metrics: dict, y: dict, scores: dict) -> None:
        pairs = {split: (y[split], scores[split]) for split in scores}
        thresholds = {split: metrics["threshold"] for split in scores}
        if metrics["baseline"] is not None:
            pairs["baseline test"] = (y[layout.TEST], self._baseline_scores[layout.TEST])
            thresholds["baseline test"] = metrics["baseline"]["threshold"]
        figures = {
            "plots/training_curves.png": plots.training_curves(self.histories),
            "plots/roc.png": plots.roc(pairs),
            "plots/precision_recall.png": plots.precision_recall(pairs, thresholds),
            "plots/confusion_validation.png": plots.confusion_matrix(metrics[layout.VALIDATION], layout.VALIDATION),
            "plots/confusion_test.png": plots.confusion_matrix(metrics[layout.TEST], layout.TEST),
        }
        config = json.loads(json.dumps(dataclasses.asdict(self.cfg), default=list))
        report.write_outputs(self.model_dir, metrics, model_card.render(metrics, config), figures)
        for split in scores:
            meta = records.record_metadata(self.data_dir, split)
            names, labels = [m["filename"] for m in meta], [m["label"] for m in meta]
            text = predictions_csv(names, labels, scores[split], metrics["threshold"], self.class_names)
            io_utils.write_text(io_utils.join(self.model_dir, f"predictions_{split}.csv"), text)


def run(job: Job) -> dict:
    return Trainer(job.data, job.model_dir, job.config, load_labels(job.args.labels)).run()


def _labels_argument(parser) -> None:
    parser.add_argument("--labels", default=None, help="label YAML (default configs/labels.yaml)")


SPEC = JobSpec(
    description=__doc__,
    config_cls=ClassifierConfig,
    default_file=DEFAULT_FILE,
    run=run,
    shortcuts={
        "head_epochs|epochs": ("head_epochs", int, "phase 1 (head) epochs"),
        "fine_tune_epochs": ("fine_tune_epochs", int, "phase 2 epochs (0 skips fine-tuning)"),
        "input_size": ("input_size", int, "model input side, pixels"),
        "batch_size": ("batch_size", int, "images per step"),
        "backbone": ("backbone", str, "keras.applications model name"),
        "weights": ("weights", str, "imagenet | none | /path/to/weights.h5"),
        "seed": ("seed", int, "random seed"),
        "target_recall": ("target_recall", float, "validation recall the threshold is chosen for"),
    },
    arguments=_labels_argument,
)


def main(argv: list[str] | None = None) -> int:
    return job_main(SPEC, argv)
