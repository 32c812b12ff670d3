"""Evaluate an exported model on a TFRecord data set or a raw labelled folder.

    python -m training.evaluate --model_dir MODEL_DIR --data PATH --output OUT_DIR [--split test] [--threshold T]

``PATH`` is a data set directory from ``pipelines.build_dataset`` (every split present is evaluated,
or those named by ``--split``) or a raw labelled folder in any layout the dataset readers accept
(class folders, Pascal VOC, YOLO; evaluated as one set, ``all``). Images go through the model's own
bytes-in serving signature, exactly as inference runs it. Raw files that cannot be used (corrupt
images, bad annotations, unlabelled files) are counted and listed in ``metrics.json`` and
``rejects.jsonl`` with their reasons, never silently dropped.

The model's ``metadata.json`` says what it is: classifiers are evaluated here, detectors by
``training.detection_eval.evaluate_detector`` (COCO metrics).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
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
from training import classification_metrics as cm
from training import data, plots

log = logging.getLogger("training.evaluate")

METRICS_FILE = "metrics.json"
REJECTS_FILE = "rejects.jsonl"
RAW_SPLIT = "all"


@dataclass(frozen=True)
class Item:
    """One image to score: its name, encoded bytes and true image-level label (0/1)."""

    name: str
    encoded: bytes
    label: int


@dataclass
class Scored:
    names: list[str] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)


# ---------------------------------------------------------------- inputs


def record_items(data_dir: str, split: str) -> Iterator[Item]:
    """Items of one TFRecord split, streamed."""
    for ex in data.parsed_dataset(data_dir, split).as_numpy_iterator():
        yield Item(ex["filename"].decode() or ex["sha256"].decode(), ex["encoded"], int(ex["label"]))


def raw_items(
    root: str,
    labels: LabelConfig,
    rejects: list[Reject],
    ignored: list[str] | None = None,
    exclude: tuple[str, ...] = (),
) -> Iterator[Item]:
    """Items of a raw labelled folder via the dataset readers and validation; refusals go to ``rejects``,
    files that are neither images nor annotations to ``ignored``; nothing under ``exclude`` is read."""
    from corrosion.data import decodable, discovery, validate

    result = discovery.scan(root, labels, exclude=exclude)
    rejects.extend(result.rejects)
    for path in result.ignored:
        log.info("ignored (not an image or annotation): %s", path)
    if ignored is not None:
        ignored.extend(result.ignored)
    for labelled in result.images:
        try:
            record = decodable.record_from_file(labelled, labels)
        except validate.ValidationError as exc:
            rejects.append(exc.to_reject())
            continue
        yield Item(labelled.image_path, record.encoded, record.image_label)


def is_record_dataset(path: str) -> bool:
    return bool(data.available_splits(path))


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
    if summary["n_positive"]:
        summary["best_recall_at_precision"] = cm.best_recall_at_precision(y, p, min_precision)
    return summary


def rejects_summary(rejects: list[Reject]) -> dict:
    return {
        "count": len(rejects),
        "by_reason": dict(sorted(Counter(r.reason for r in rejects).items())),
        "files": [{"path": r.path, "stage": r.stage, "reason": r.reason, "detail": r.detail} for r in rejects],
    }


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
    labels = labels or load_labels()
    model = ExportedClassifier(model_dir)
    meta = model.metadata
    threshold = meta.threshold if threshold is None else threshold
    rejects: list[Reject] = []
    ignored: list[str] = []
    if is_record_dataset(data_path):
        names = [s for s in data.available_splits(data_path) if splits is None or s in splits]
        if not names:
            raise data.DatasetError(
                f"{data_path} has none of the splits {list(splits or ())}; it has {data.available_splits(data_path)}"
            )
        sets = {s: score_items(model, record_items(data_path, s), batch_size) for s in names}
    elif io_utils.is_remote(data_path) or tf.io.gfile.isdir(data_path):
        log.info("%s holds no TFRecord shards: reading it as a raw labelled folder", data_path)
        items = raw_items(data_path, labels, rejects, ignored, exclude=(output_dir,))
        sets = {RAW_SPLIT: score_items(model, items, batch_size)}
    else:
        raise data.DatasetError(
            f"--data {data_path} is neither a data set directory with TFRecord shards nor a folder of labelled images"
        )
    for scored in sets.values():
        rejects.extend(scored.rejects)

    report: dict = {
        "kind": "classifier",
        "model_version": meta.version,
        "model_dir": model_dir,
        "data": data_path,
        "threshold": threshold,
        "threshold_source": "metadata.json (chosen on validation at training)"
        if threshold == meta.threshold
        else "--threshold",
        "splits": {},
        "rejects": rejects_summary(rejects),
        "ignored_files": ignored,  # raw folders: files that are neither images nor annotations
    }
    if rejects:
        log.warning(
            "%d input(s) could not be evaluated: %s (listed in %s)",
            len(rejects),
            report["rejects"]["by_reason"],
            REJECTS_FILE,
        )
    if not any(s.scores for s in sets.values()):
        raise data.DatasetError(
            f"no evaluable labelled images in {data_path} ({len(rejects)} rejected: {report['rejects']['by_reason']})"
        )

    io_utils.make_dirs(output_dir)
    pairs = {}
    for name, scored in sets.items():
        if not scored.scores:
            report["splits"][name] = {"n": 0}
            continue
        m = split_metrics(scored, threshold, meta.class_names, min_precision)
        report["splits"][name] = m
        pairs[name] = (np.asarray(scored.labels), np.asarray(scored.scores))
        log.info(
            "%s: %d images, ROC-AUC %s, recall %s, precision %s at threshold %.4f",
            name,
            m["n"],
            _f(m["roc_auc"]),
            _f(m["recall"]),
            _f(m["precision"]),
            threshold,
        )
        io_utils.write_bytes(
            io_utils.join(output_dir, "plots", f"confusion_{name}.png"), plots.confusion_matrix(m, name)
        )
        rows = [csv_rows.header(("filename", "label", "rust_probability", "predicted_rust"))]
        rows += [
            csv_rows.record((n, meta.class_names[y], csv_rows.Number(f"{s:.6f}"), csv_rows.Number(int(s >= threshold))))
            for n, y, s in zip(scored.names, scored.labels, scored.scores, strict=True)
        ]
        io_utils.write_text(io_utils.join(output_dir, f"predictions_{name}.csv"), "\n".join(rows) + "\n")
    io_utils.write_bytes(io_utils.join(output_dir, "plots", "roc.png"), plots.roc(pairs))
    io_utils.write_bytes(
        io_utils.join(output_dir, "plots", "precision_recall.png"), plots.precision_recall(pairs, threshold)
    )
    io_utils.write_text(io_utils.join(output_dir, REJECTS_FILE), "".join(r.to_json() + "\n" for r in rejects))
    io_utils.write_text(io_utils.join(output_dir, METRICS_FILE), json.dumps(report, indent=2) + "\n")
    return report


def _f(value) -> str:
    return "n/a" if value is None else f"{value:.4f}"


# ---------------------------------------------------------------- command


def evaluate(
    model_dir: str,
    data_path: str,
    output_dir: str,
    splits: tuple[str, ...] | None = None,
    threshold: float | None = None,
) -> dict:
    """Dispatch on the model's kind (metadata.json)."""
    kind = serving.read_metadata(model_dir).kind
    if kind == "detector":
        from training.detection_eval import evaluate_detector  # the detector's own module, loaded only when needed

        if threshold is not None:
            log.warning("--threshold applies to classifiers; the detector uses its metadata score threshold")
        return evaluate_detector(model_dir, data_path, output_dir, splits)
    if kind == "classifier":
        return evaluate_classifier(model_dir, data_path, output_dir, splits, threshold)
    raise ValueError(f"{model_dir}/metadata.json has kind {kind!r}; expected 'classifier' or 'detector'")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model_dir", required=True, help="exported model directory (local or gs://)")
    p.add_argument("--data", required=True, help="TFRecord data set directory or raw labelled folder (local or gs://)")
    p.add_argument("--output", required=True, help="where metrics.json, plots and predictions go")
    p.add_argument(
        "--split",
        action="append",
        choices=layout.SPLITS,
        help="TFRecord split(s) to evaluate (default: all present)",
    )
    p.add_argument("--threshold", type=float, help="classifier decision threshold (default: the one in metadata.json)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    try:
        evaluate(args.model_dir, args.data, args.output, tuple(args.split) if args.split else None, args.threshold)
    except (data.DatasetError, FileNotFoundError) as exc:
        log.error("%s", exc)
        return 2
    log.info("wrote %s", io_utils.join(args.output, METRICS_FILE))
    return 0


if __name__ == "__main__":
    sys.exit(main())
