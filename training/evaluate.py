"""Evaluate an exported model on a TFRecord data set or a raw labelled folder.

    python -m training.evaluate --model_dir MODEL_DIR --data PATH --output OUT_DIR [--split test] [--threshold T]

``PATH`` is a data set directory from ``pipelines.build_dataset`` (every split present is evaluated,
or those named by ``--split``) or a raw labelled folder in any layout the dataset readers accept
(class folders, Pascal VOC, YOLO; evaluated as one set, ``all``). Images go through the model's own
bytes-in serving signature, exactly as inference runs it. Raw files that cannot be used (corrupt
images, bad annotations, unlabelled files) are counted and listed in ``metrics.json`` and
``rejects.jsonl`` with their reasons, never silently dropped, whatever the model's kind. An
``--output`` the tool cannot write is refused at launch, and a disk that fills meanwhile ends in
one line naming the folder.

The model's ``metadata.json`` says what it is: classifiers are evaluated by
``training.classifier.evaluate``, detectors by ``training.detector.evaluate`` (COCO metrics).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from corrosion import cli
from corrosion.core import io_utils
from corrosion.data import layout
from corrosion.models import serving
from training.classifier import evaluate as classifier_evaluation
from training.common import report
from training.common.records import DatasetError

log = logging.getLogger("training.evaluate")
REJECTS_FILE = classifier_evaluation.REJECTS_FILE


def evaluate(
    model_dir: str,
    data_path: str | list[str],
    output_dir: str,
    splits: tuple[str, ...] | None = None,
    threshold: float | None = None,
) -> dict:
    """Dispatch on the model's kind (metadata.json). Several data paths: a rust-region model pools
    them; the other kinds are scored on each, into OUTPUT/<n>-<folder name>/."""
    kind = serving.read_metadata(model_dir).kind
    paths = [data_path] if isinstance(data_path, str) else list(data_path)
    if kind == "segmenter":
        from training.segmenter.evaluate import evaluate_segmenter

        return write_rejects(output_dir, evaluate_segmenter(model_dir, paths, output_dir, splits))
    if len(paths) > 1:
        return {
            p: evaluate(
                model_dir, p, io_utils.join(output_dir, f"{i}-{p.rstrip('/').rsplit('/', 1)[-1]}"), splits, threshold
            )
            for i, p in enumerate(paths)
        }
    data_path = paths[0]
    if kind == "detector":
        from training.detector.evaluate import evaluate_detector  # the detector's own module, loaded only when needed

        if threshold is not None:
            log.warning("--threshold applies to classifiers; the detector uses its metadata score threshold")
        result = evaluate_detector(model_dir, data_path, output_dir, splits)
        result["rusted_area"] = detector_area(model_dir, data_path, output_dir, splits)
        io_utils.write_text(io_utils.join(output_dir, report.METRICS_FILE), json.dumps(result, indent=2) + "\n")
        return write_rejects(output_dir, result)
    if kind == "classifier":
        return classifier_evaluation.evaluate_classifier(model_dir, data_path, output_dir, splits, threshold)
    raise ValueError(f"{model_dir}/metadata.json has kind {kind!r}; expected 'classifier', 'detector' or 'segmenter'")


def write_rejects(output_dir: str, result: dict) -> dict:
    """``rejects.jsonl`` from ``result["rejects"]`` (the detector's and rust-region model's list;
    the classifier's evaluation writes its own), one JSON object per refused file, as
    ``build_dataset`` writes them: every kind of model leaves the same file."""
    rows = [{"stage": "", **r} for r in result.get("rejects", [])]
    io_utils.write_text(
        io_utils.join(output_dir, REJECTS_FILE), "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows)
    )
    if rows:
        log.warning("%d input(s) could not be evaluated (listed in %s)", len(rows), REJECTS_FILE)
    return result


def detector_area(model_dir: str, data_path: str, output_dir: str, splits: tuple[str, ...] | None) -> dict | None:
    """Where the data hold rust masks: the detector's box union scored as a rust map (pixel F1,
    rusted-% error, D610), as the segmenter is, into OUTPUT/rusted_area/; None without masks."""
    from training.detector.evaluate import box_union_maps
    from training.segmenter.evaluate import evaluate_segmenter

    size = serving.read_metadata(model_dir).input_size
    try:
        area = evaluate_segmenter(
            model_dir, [data_path], io_utils.join(output_dir, "rusted_area"), splits, box_union_maps(model_dir, size)
        )
    except DatasetError:
        return None
    return area["data"][data_path]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = cli.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model_dir", required=True, help="exported model directory (local or gs://)")
    p.add_argument(
        "--data",
        required=True,
        action="append",
        help="TFRecord data set directory or raw labelled folder (local or gs://); repeat for several",
    )
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
    io_utils.check_writable(args.output, "--output")
    try:
        evaluate(args.model_dir, args.data, args.output, tuple(args.split) if args.split else None, args.threshold)
    except (DatasetError, FileNotFoundError) as exc:
        log.error("%s", exc)
        return 2
    except OSError as exc:  # a full, read-only or forbidden --output: one line, not a traceback
        if (message := io_utils.write_failure(exc, [args.output])) is None:
            raise
        raise io_utils.OutputNotWritable(message) from None
    log.info("wrote %s", io_utils.join(args.output, report.METRICS_FILE))
    return 0


if __name__ == "__main__":
    sys.exit(main())
