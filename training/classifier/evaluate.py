"""Evaluate an exported classifier on a TFRecord data set or a raw labelled folder.

``PATH`` is a data set directory from ``pipelines.build_dataset`` (every split present is evaluated,
or those named by ``--split``) or a raw labelled folder in any layout the dataset readers accept
(class folders, Pascal VOC, YOLO; evaluated as one set, ``all``). Images go through the model's own
bytes-in serving signature, exactly as inference runs it. Raw files that cannot be used (corrupt
images, bad annotations, unlabelled files) are counted and listed in ``metrics.json`` and
``rejects.jsonl`` with their reasons, never silently dropped.

Called by ``training.evaluate`` for models whose ``metadata.json`` says classifier.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np
import tensorflow as tf

from corrosion.core import csv_rows, io_utils
from corrosion.core.labels import LabelConfig, load_labels
from corrosion.core.rejects import IMAGE, Reject
from corrosion.data import layout
from corrosion.models import serving
from training.classifier import metrics as cm
from training.common import plots, records, report
from training.common.raw_folder import raw_records

log = logging.getLogger("training.evaluate")

REJECTS_FILE = "rejects.jsonl"
RAW_SPLIT = "all"


@dataclass(frozen=True)
class Item:
    """One image to score: its name, encoded bytes and true image-level label (0/1)."""

    name: str
    encoded: bytes
    label: int
    source: str = ""  # the source folder (``layout.source_folder``)


@dataclass
class Scored:
    names: list[str] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)


# ---------------------------------------------------------------- inputs


def record_items(data_dir: str, split: str) -> Iterator[Item]:
    """Items of one TFRecord split, streamed."""
    for ex in records.parsed_dataset(data_dir, split).as_numpy_iterator():
        name = ex["filename"].decode() or ex["sha256"].decode()
        yield Item(name, ex["encoded"], int(ex["label"]), layout.source_folder(ex["source_id"].decode()))


def raw_items(
    root: str,
    labels: LabelConfig,
    rejects: list[Reject],
    ignored: list[str] | None = None,
    exclude: tuple[str, ...] = (),
) -> Iterator[Item]:
    """Items of a raw labelled folder (``training.common.raw_folder``); refusals go to ``rejects``."""
    for labelled, record in raw_records(root, labels, rejects, ignored, exclude):
        yield Item(labelled.image_path, record.encoded, record.image_label, layout.source_folder(record.source_id))


def is_record_dataset(path: str) -> bool:
    return bool(records.available_splits(path))


# ---------------------------------------------------------------- scoring


class ExportedClassifier:
    """The exported SavedModel's bytes-in signature, batch by batch."""

    def __init__(self, model_dir: str) -> None:
        self.metadata = serving.read_metadata(model_dir)
        if self.metadata.kind != "classifier":
            raise ValueError(f"{model_dir} holds a {self.metadata.kind}, not a classifier")
        self._signature = tf.saved_model.load(model_dir).signatures[serving.BYTES_SIGNATURE]

    def __call__(self, encoded: list[bytes]) -> np.ndarray:
        out = self._signature(**{serving.BYTES_INPUT: tf.constant(encoded, tf.string)})
        scores = out[serving.CLASSIFIER_OUTPUT].numpy().astype(np.float64).reshape(-1)
        if scores.shape != (len(encoded),):
            raise ValueError(
                f"the model returned {scores.size} {serving.CLASSIFIER_OUTPUT} values for {len(encoded)} images; expected one per image"
            )
        return scores


def score_items(model: ExportedClassifier, items: Iterable[Item], batch_size: int = 32) -> Scored:
    """Scores of every item; an image the graph cannot decode becomes a reject, not a crash."""
    out = Scored()
    batch: list[Item] = []

    def flush() -> None:
        try:
            scores = model([i.encoded for i in batch])
            good = list(zip(batch, scores, strict=True))
        except tf.errors.InvalidArgumentError:  # one undecodable image: score one by one to find it
            good = []
            for item in batch:
                try:
                    good.append((item, model([item.encoded])[0]))
                except tf.errors.InvalidArgumentError as exc:
                    out.rejects.append(
                        Reject(
                            item.name,
                            IMAGE,
                            "decode_error",
                            f"{item.name}: TensorFlow cannot decode it ({exc.message.splitlines()[0]})",
                        )
                    )
        for item, score in good:
            out.names.append(item.name)
            out.labels.append(item.label)
            out.scores.append(float(score))
            out.sources.append(item.source)
        batch.clear()

    for item in items:
        batch.append(item)
        if len(batch) == batch_size:
            flush()
            if len(out.scores) % (batch_size * 10) == 0:
                log.info("scored %d images", len(out.scores))
    if batch:
        flush()
    return out


# ---------------------------------------------------------------- metrics


def split_metrics(scored: Scored, threshold: float, class_names: tuple[str, ...], min_precision: float) -> dict:
    y, p = np.asarray(scored.labels), np.asarray(scored.scores)
    summary = cm.summarise(y, p, threshold, tuple(class_names))
    if summary["roc_auc"] is None:
        summary["note"] = "only one class present: ROC-AUC (and PR-AUC without rust images) are undefined"
    summary["per_source"] = cm.per_source(y, p, scored.sources, threshold)
    if summary["n_positive"]:
        summary["best_recall_at_precision"] = cm.best_recall_at_precision(y, p, min_precision)
    return summary


def rejects_summary(rejects: list[Reject]) -> dict:
    return {
        "count": len(rejects),
        "by_reason": dict(sorted(Counter(r.reason for r in rejects).items())),
        "files": [{"path": r.path, "stage": r.stage, "reason": r.reason, "detail": r.detail} for r in rejects],
    }


def predictions_csv(names, labels, scores, threshold: float, class_names: tuple[str, ...]) -> str:
    """predictions_<split>.csv: one row per image, as training and evaluation both write it."""
    rows = [csv_rows.header(("filename", "label", "rust_probability", "predicted_rust"))]
    rows += [
        csv_rows.record((n, class_names[y], csv_rows.Number(f"{s:.6f}"), csv_rows.Number(int(s >= threshold))))
        for n, y, s in zip(names, labels, scores, strict=True)
    ]
    return "\n".join(rows) + "\n"


def scored_sets(
    model: ExportedClassifier,
    data_path: str,
    splits: tuple[str, ...] | None,
    labels: LabelConfig,
    rejects: list[Reject],
    ignored: list[str],
    exclude: tuple[str, ...],
    batch_size: int,
) -> dict[str, Scored]:
    """The images of ``data_path`` scored by the model: per TFRecord split, or one raw folder (``all``)."""
    if is_record_dataset(data_path):
        names = [s for s in records.available_splits(data_path) if splits is None or s in splits]
        if not names:
            raise records.DatasetError(
                f"{data_path} has none of the splits {list(splits or ())}; it has {records.available_splits(data_path)}"
            )
        return {s: score_items(model, record_items(data_path, s), batch_size) for s in names}
    if io_utils.is_remote(data_path) or tf.io.gfile.isdir(data_path):
        log.info("%s holds no TFRecord shards: reading it as a raw labelled folder", data_path)
        items = raw_items(data_path, labels, rejects, ignored, exclude=exclude)
        return {RAW_SPLIT: score_items(model, items, batch_size)}
    raise records.DatasetError(
        f"--data {data_path} is neither a data set directory with TFRecord shards nor a folder of labelled images"
    )


def evaluate_classifier(
    model_dir: str,
    data_path: str,
    output_dir: str,
    splits: tuple[str, ...] | None = None,
    threshold: float | None = None,
    batch_size: int = 32,
    min_precision: float = 0.90,
    labels: LabelConfig | None = None,
) -> dict:
    """Metrics of an exported classifier on ``data_path``; writes metrics.json, plots and CSVs to ``output_dir``."""
    model = ExportedClassifier(model_dir)
    meta = model.metadata
    threshold = meta.threshold if threshold is None else threshold
    rejects: list[Reject] = []
    ignored: list[str] = []
    sets = scored_sets(model, data_path, splits, labels or load_labels(), rejects, ignored, (output_dir,), batch_size)
    for scored in sets.values():
        rejects.extend(scored.rejects)
    from_metadata = threshold == meta.threshold
    out: dict = {
        "kind": "classifier",
        "model_version": meta.version,
        "model_dir": model_dir,
        "data": data_path,
        "threshold": threshold,
        "threshold_source": "metadata.json (chosen on validation at training)" if from_metadata else "--threshold",
        "splits": {},
        "rejects": rejects_summary(rejects),
        "ignored_files": ignored,  # raw folders: files that are neither images nor annotations
    }
    if rejects:
        by_reason = out["rejects"]["by_reason"]
        log.warning("%d input(s) could not be evaluated: %s (listed in %s)", len(rejects), by_reason, REJECTS_FILE)
    if not any(s.scores for s in sets.values()):
        raise records.DatasetError(
            f"no evaluable labelled images in {data_path} ({len(rejects)} rejected: {out['rejects']['by_reason']})"
        )
    io_utils.make_dirs(output_dir)
    pairs = {}
    for name, scored in sets.items():
        out["splits"][name] = write_split(output_dir, name, scored, threshold, meta.class_names, min_precision)
        if scored.scores:
            pairs[name] = (np.asarray(scored.labels), np.asarray(scored.scores))
    io_utils.write_bytes(io_utils.join(output_dir, "plots", "roc.png"), plots.roc(pairs))
    io_utils.write_bytes(
        io_utils.join(output_dir, "plots", "precision_recall.png"), plots.precision_recall(pairs, threshold)
    )
    io_utils.write_text(io_utils.join(output_dir, REJECTS_FILE), "".join(r.to_json() + "\n" for r in rejects))
    io_utils.write_text(io_utils.join(output_dir, report.METRICS_FILE), json.dumps(out, indent=2) + "\n")
    return out


def write_split(
    output_dir: str, name: str, scored: Scored, threshold: float, class_names: tuple[str, ...], min_precision: float
) -> dict:
    """One split's metrics, confusion plot and predictions CSV."""
    if not scored.scores:
        return {"n": 0}
    m = split_metrics(scored, threshold, class_names, min_precision)
    log.info(
        "%s: %d images, ROC-AUC %s, recall %s, precision %s at threshold %.4f",
        name,
        m["n"],
        _f(m["roc_auc"]),
        _f(m["recall"]),
        _f(m["precision"]),
        threshold,
    )
    io_utils.write_bytes(io_utils.join(output_dir, "plots", f"confusion_{name}.png"), plots.confusion_matrix(m, name))
    csv_text = predictions_csv(scored.names, scored.labels, scored.scores, threshold, class_names)
    io_utils.write_text(io_utils.join(output_dir, f"predictions_{name}.csv"), csv_text)
    return m


def _f(value) -> str:
    return "n/a" if value is None else f"{value:.4f}"
