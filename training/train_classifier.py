"""Train, evaluate and export the rust classifier.

    python -m training.train_classifier --data DATASET_DIR --model_dir MODEL_DIR \\
        [--config configs/classifier.yaml] [--epochs N] [--fine_tune_epochs N] [--input_size S] ...

Phase 1 trains a new head on the frozen backbone (by default on backbone features computed once,
including augmented views: on CPU this is many times faster than running the backbone every
epoch, and the same model). Phase 2 fine-tunes the top of the backbone at a lower learning rate.
The best epoch by validation ROC-AUC wins; the decision threshold is chosen on validation for the
target recall and then reported on test. ``MODEL_DIR`` receives the SavedModel + metadata.json
(``training.export``), metrics.json, plots/, model_card.md, predictions_*.csv and TensorBoard logs/.
"""

from __future__ import annotations

import argparse
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
from corrosion.core.config import config_path, load_config
from corrosion.core.labels import RUST, LabelConfig, load_labels
from corrosion.data import layout
from corrosion.models import serving
from corrosion.models.weights import WeightSource, resolve_weights
from training import classification_metrics as cm
from training import data, export_lite, model_card, plots
from training.classifier_model import ClassifierConfig, ClassifierParts, auc_metric, build_classifier, unfreeze_from
from training.export import classifier_predict_fn, export_model
from training.tensorboard_logs import TensorBoardScalars

log = logging.getLogger("training.train_classifier")

DEFAULT_CONFIG = "classifier.yaml"
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


def class_weights(counts: data.SplitCounts) -> dict[int, float]:
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
        self.best_val_auc = -1.0
        self.selected = ""

    # ------------------------------------------------------------------ data
    def check_data(self) -> dict[str, data.SplitCounts]:
        counts = {}
        for split in layout.SPLITS:
            counts[split] = data.count_labels(self.data_dir, split)
            data.require_both_classes(counts[split], self.class_names, self.data_dir)
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

    def datasets(self) -> dict[str, tf.data.Dataset]:
        c = self.cfg
        out = {
            "train": data.image_dataset(
                self.data_dir,
                "train",
                c.input_size,
                c.batch_size,
                shuffle=True,
                seed=c.seed,
                cache=c.cache_images,
                shuffle_buffer=c.shuffle_buffer,
            )
        }
        for split in ("train_plain", "validation", "test"):
            name = "train" if split == "train_plain" else split
            out[split] = data.image_dataset(self.data_dir, name, c.input_size, c.batch_size, cache=c.cache_images)
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
        for split, key in (("train", "train_plain"), ("validation", "validation"), ("test", "test")):
            log.info("backbone activations (up to %s) of the %s images", c.fine_tune_from, split)
            acts[split] = parts.bottom.predict(ds[key].map(lambda x, _: x), verbose=0)
        views = [acts["train"]]
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
            val = parts.top_features.predict(acts["validation"], batch_size=c.batch_size, verbose=0)
            log.info("phase 1: head on cached features of %d training views, %d epochs max", len(views), c.head_epochs)
            train = (views, np.tile(y["train"], len(views) // len(y["train"])))
            self.fit(
                parts.head,
                "phase 1 (frozen)",
                c.head_learning_rate,
                c.head_epochs,
                train,
                (val, y["validation"]),
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
                ds["train"],
                ds["validation"],
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
            train = (acts["train_views"], np.tile(y["train"], len(acts["train_views"]) // len(y["train"])))
            validation = (acts["validation"], y["validation"])
        else:
            train, validation = ds["train"], ds["validation"]
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
        mean, std = feats["train"].mean(axis=0), feats["train"].std(axis=0) + 1e-6
        x = {k: tf.constant((v - mean) / std, tf.float32) for k, v in feats.items()}
        w = np.where(y["train"] == 1, weights[1], weights[0]) if weights else np.ones(len(y["train"]))
        predict = fit_logistic_regression(x["train"], y["train"], w, c.baseline_l2, c.baseline_steps)
        scores = {k: predict(x[k]) for k in ("validation", "test")}
        threshold = cm.threshold_for_recall(y["validation"], scores["validation"], c.target_recall)
        result = {
            "description": BASELINE_DESCRIPTION,
            "threshold": threshold,
            "validation": cm.summarise(y["validation"], scores["validation"], threshold, self.class_names),
            "test": cm.summarise(y["test"], scores["test"], threshold, self.class_names),
        }
        log.info(
            "baseline (%s): test ROC-AUC %.4f, PR-AUC %.4f",
            BASELINE_DESCRIPTION,
            result["test"]["roc_auc"],
            result["test"]["pr_auc"],
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
        ds = self.datasets()
        y = {
            split: labels_of(ds[key])
            for split, key in (("train", "train_plain"), ("validation", "validation"), ("test", "test"))
        }
        weights = class_weights(counts["train"]) if c.class_weights else None
        ckpt_dir = _local_dir(self.model_dir, "checkpoints")

        acts = self.cache_activations(parts, ds) if c.cache_features else None
        self.phase1(parts, ds, acts, y, weights, ckpt_dir)
        baseline = None
        if c.baseline:
            if acts is not None:
                feats = {
                    s: parts.top_features.predict(acts[s], batch_size=c.batch_size, verbose=0)
                    for s in ("train", "validation", "test")
                }
            else:
                feats = {
                    s: parts.features.predict(ds[k].map(lambda x, _: x), verbose=0)
                    for s, k in (("train", "train_plain"), ("validation", "validation"), ("test", "test"))
                }
            baseline = self.baseline(feats, y, weights)
        if c.fine_tune_epochs:
            self.phase2(parts, ds, acts, y, weights, ckpt_dir)
        phase1_mode = (
            f"on cached backbone activations of the training images and {c.feature_augmented_copies} augmented copies"
            if acts is not None
            else "end to end with fresh augmentation every epoch"
        )
        del acts

        scores = {split: predict_scores(parts.inference, ds[split]) for split in ("validation", "test")}
        threshold = cm.threshold_for_recall(y["validation"], scores["validation"], c.target_recall)
        summaries = {split: cm.summarise(y[split], scores[split], threshold, self.class_names) for split in scores}
        summaries["test"]["best_recall_at_precision"] = cm.best_recall_at_precision(
            y["test"], scores["test"], c.min_precision
        )
        seconds = time.time() - started

        metadata = self.metadata(source, threshold, summaries)
        export_model(self.model_dir, classifier_predict_fn(parts.inference), parts.inference, metadata)
        export_check = self.check_export(scores["test"])
        if c.export_lite:
            export_check["lite"] = export_lite.export_classifier_lite(
                self.model_dir, parts.inference, c.input_size, c.lite_max_abs_diff, c.lite_check_images
            )
        if not io_utils.is_remote(self.model_dir):
            shutil.rmtree(ckpt_dir, ignore_errors=True)  # the SavedModel is the product; the weights are in it

        metrics = {
            "model": dataclasses.asdict(metadata) | {"class_names": list(self.class_names)},
            "threshold": threshold,
            "threshold_selection": {
                "split": "validation",
                "target_recall": c.target_recall,
                "min_precision": c.min_precision,
            },
            "validation": summaries["validation"],
            "test": summaries["test"],
            "baseline": baseline,
            "beats_baseline": None if baseline is None else model_card._beats(summaries["test"], baseline["test"]),
            "data": {
                "path": self.data_dir,
                "counts": {
                    s: {self.class_names[1]: n.count(1), self.class_names[0]: n.count(0)} for s, n in counts.items()
                },
            },
            "training": {
                "seconds": round(seconds, 1),
                "cpu_threads": os.cpu_count(),
                "device": "GPU" if tf.config.list_physical_devices("GPU") else "CPU only",
                "phase1_mode": phase1_mode,
                "selected": self.selected,
                "epochs_run": self.epochs_so_far(),
                "class_weight": None if weights is None else {self.class_names[k]: v for k, v in weights.items()},
                "history": {name: h for name, h in self.histories},
            },
            "export_check": export_check,
            "versions": model_card.versions(),
        }
        self.write_reports(metrics, y, scores)
        log.info(
            "done in %.1f min: test ROC-AUC %.4f, PR-AUC %.4f, recall %.3f, precision %.3f at threshold %.4f; model in %s",
            seconds / 60,
            summaries["test"]["roc_auc"],
            summaries["test"]["pr_auc"],
            summaries["test"]["recall"],
            summaries["test"]["precision"] or 0.0,
            threshold,
            self.model_dir,
        )
        if baseline is not None and not metrics["beats_baseline"]:
            log.warning("the trained model does NOT beat the frozen-features baseline on test; see model_card.md")
        return metrics

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
                "validation_recall": summaries["validation"]["recall"],
                "validation_precision": summaries["validation"]["precision"],
                "test_roc_auc": summaries["test"]["roc_auc"],
                "backbone_kwargs": dict(c.backbone_kwargs),
                "data": self.data_dir,
            },
        )

    def check_export(self, keras_test_scores: np.ndarray, n: int = 16) -> dict:
        """Reload the SavedModel and score test images from their bytes: must match the Keras model."""
        loaded = tf.saved_model.load(self.model_dir)
        encoded = [p["encoded"] for p in data.parsed_dataset(self.data_dir, "test").take(n)]
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
        out = self.model_dir
        io_utils.write_text(io_utils.join(out, "metrics.json"), json.dumps(metrics, indent=2) + "\n")
        pairs = {split: (y[split], scores[split]) for split in scores}
        thresholds = {split: metrics["threshold"] for split in scores}
        if metrics["baseline"] is not None:
            pairs["baseline test"] = (y["test"], self._baseline_scores["test"])
            thresholds["baseline test"] = metrics["baseline"]["threshold"]
        pngs = {
            "training_curves.png": plots.training_curves(self.histories),
            "roc.png": plots.roc(pairs),
            "precision_recall.png": plots.precision_recall(pairs, thresholds),
            "confusion_validation.png": plots.confusion_matrix(metrics["validation"], "validation"),
            "confusion_test.png": plots.confusion_matrix(metrics["test"], "test"),
        }
        for name, png in pngs.items():
            io_utils.write_bytes(io_utils.join(out, "plots", name), png)
        config = json.loads(json.dumps(dataclasses.asdict(self.cfg), default=list))
        io_utils.write_text(io_utils.join(out, "model_card.md"), model_card.render(metrics, config))
        for split in scores:
            rows = ["filename,label,rust_probability,predicted_rust"]
            for meta, score in zip(data.record_metadata(self.data_dir, split), scores[split], strict=True):
                rows.append(
                    f"{_csv(meta['filename'])},{self.class_names[meta['label']]},{score:.6f},{int(score >= metrics['threshold'])}"
                )
            io_utils.write_text(io_utils.join(out, f"predictions_{split}.csv"), "\n".join(rows) + "\n")


def _csv(text: str) -> str:
    return '"' + text.replace('"', '""') + '"' if any(ch in text for ch in ',"\n') else text


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--data", required=True, help="data set directory (local or gs://) from pipelines.build_dataset")
    p.add_argument("--model_dir", required=True, help="output directory (local or gs://)")
    p.add_argument(
        "--config", default=str(config_path(DEFAULT_CONFIG)), help="classifier YAML (default configs/classifier.yaml)"
    )
    p.add_argument("--labels", default=None, help="label YAML (default configs/labels.yaml)")
    p.add_argument("--epochs", type=int, help="phase 1 (head) epochs")
    p.add_argument("--fine_tune_epochs", type=int, help="phase 2 epochs (0 skips fine-tuning)")
    p.add_argument("--input_size", type=int)
    p.add_argument("--batch_size", type=int)
    p.add_argument("--backbone", help="keras.applications model name")
    p.add_argument("--weights", help="imagenet | none | /path/to/weights.h5")
    p.add_argument("--seed", type=int)
    p.add_argument("--target_recall", type=float)
    return p.parse_args(argv)


def load_classifier_config(args: argparse.Namespace) -> ClassifierConfig:
    overrides = {
        "head_epochs": args.epochs,
        "fine_tune_epochs": args.fine_tune_epochs,
        "input_size": args.input_size,
        "batch_size": args.batch_size,
        "backbone": args.backbone,
        "weights": args.weights,
        "seed": args.seed,
        "target_recall": args.target_recall,
    }
    return load_config(ClassifierConfig, args.config, overrides)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    try:
        cfg = load_classifier_config(args)
        Trainer(args.data, args.model_dir, cfg, load_labels(args.labels)).run()
    except data.DatasetError as exc:
        log.error("%s", exc)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
