"""The pieces of the batch-inference pipeline that travel to workers: element types, DoFns, helpers.

They live in an importable module, not in ``pipelines.batch_inference`` (run as ``__main__``):
elements that cross a stage boundary are pickled by reference to their class, and a worker in
another process (Dataflow, or the local engine's multi_processing mode) cannot find
``__main__.ScoredImage``. ``tests/test_batch_inference.py`` runs the job with worker processes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import apache_beam as beam
from apache_beam.io import fileio
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics

from corrosion import grading, images, io_utils, previews, report, serving
from pipelines.inference_config import InferenceConfig
from pipelines.inference_handlers import Detections, ImageRecord, classifier_pixels, limit_tf_threads

log = logging.getLogger(__name__)

NAMESPACE = "corrosion_inference"
ERRORS = "errors"
SKIPPED = "skipped"
FLAGGED = "flagged"
COUNTERS = (
    "files_matched",
    "files_missing",
    "images_read",
    "images_scored",
    "images_failed",
    "images_skipped",
    "rust_images",
    "classified_rust",
    "boxes",
    "detector_views",
    "previews_written",
)
GLOB_CHARS = re.compile(r"[*?\[]")


@dataclass(frozen=True)
class RunInfo:
    """What every row of one run shares, fixed when the pipeline is built."""

    survey_id: str
    run_date: dt.date
    processed_at: str
    classifier: serving.ModelMetadata
    detector: serving.ModelMetadata | None
    partition_dir: str  # OUTPUT/date=YYYY-MM-DD
    file_stem: str  # survey id made safe for file names
    classifier_runtime: str = "savedmodel"  # litert | savedmodel (lite_runtime.resolve_runtime)
    detector_runtime: str | None = None  # None: no detector


@dataclass(frozen=True)
class ScoredImage:
    record: ImageRecord
    rust_probability: float


def error_row(image_uri: str, stage: str, reason: str, message: str) -> dict[str, str]:
    Metrics.counter(NAMESPACE, "images_failed").inc()
    Metrics.counter(NAMESPACE, f"error_{reason}").inc()
    return {"image_uri": image_uri, "stage": stage, "reason": reason, "message": message}


# ---------------------------------------------------------------- reading


class MatchListed(beam.DoFn):
    """``--input_list`` entries (paths or globs) -> file metadata; a listed file that does not
    exist is an error row, where fileio.MatchAll would either drop it or fail the whole run."""

    def process(self, line: str):
        try:
            found = FileSystems.match([line])[0].metadata_list
        except Exception as exc:  # permissions, malformed URI
            yield beam.pvalue.TaggedOutput(ERRORS, error_row(line, "match", "match_failed", f"{line}: {exc}"))
            return
        if not found:
            if GLOB_CHARS.search(line):
                log.warning("input list pattern %s matches no file", line)
                return
            Metrics.counter(NAMESPACE, "files_missing").inc()
            yield beam.pvalue.TaggedOutput(
                ERRORS, error_row(line, "match", "missing_file", f"{line}: listed in --input_list but does not exist")
            )
            return
        yield from found


class ReadImage(beam.DoFn):
    """ReadableFile -> (uri, bytes); refuses oversized files before reading them."""

    def __init__(self, max_file_bytes: int, progress_every: int) -> None:
        self._max = max_file_bytes
        self._every = progress_every

    def setup(self) -> None:
        self._count = 0
        self._start = time.monotonic()

    def process(self, readable: fileio.ReadableFile):
        uri = readable.metadata.path
        Metrics.counter(NAMESPACE, "files_matched").inc()
        too_big = f"{uri}: file is larger than max_file_bytes={self._max} in the inference config"
        if readable.metadata.size_in_bytes > self._max:
            yield beam.pvalue.TaggedOutput(ERRORS, error_row(uri, "read", "file_too_large", too_big))
            return
        try:
            data = readable.read()
        except FileNotFoundError as exc:
            yield beam.pvalue.TaggedOutput(ERRORS, error_row(uri, "read", "missing_file", f"{uri}: {exc}"))
            return
        except Exception as exc:  # network, permissions
            yield beam.pvalue.TaggedOutput(ERRORS, error_row(uri, "read", "read_failed", f"{uri}: {exc}"))
            return
        if len(data) > self._max:
            yield beam.pvalue.TaggedOutput(ERRORS, error_row(uri, "read", "file_too_large", too_big))
            return
        Metrics.counter(NAMESPACE, "images_read").inc()
        self._count += 1
        if self._every and self._count % self._every == 0:
            rate = self._count / max(1e-9, time.monotonic() - self._start)
            log.info("read %d images in this worker (%.1f images/s)", self._count, rate)
        yield uri, data


class PrepareForClassifier(beam.DoFn):
    """(uri, bytes) -> (ImageRecord, classifier pixels), or an error row, or skipped.

    Decoding here (not in the model handler) makes every unreadable file an error row of its
    own instead of failing a batch.
    """

    def __init__(self, input_size: int, max_pixels: int, keep_data: bool, tf_threads: int | None = None) -> None:
        self._size = input_size
        self._max_pixels = max_pixels
        self._keep = keep_data
        self._tf_threads = tf_threads

    def setup(self) -> None:
        limit_tf_threads(self._tf_threads)  # before this worker's first TensorFlow op (the resize)

    def process(self, element: tuple[str, bytes], processed: dict | None = None):
        uri, data = element
        sha = hashlib.sha256(data).hexdigest()
        if processed and sha in processed:
            Metrics.counter(NAMESPACE, "images_skipped").inc()
            yield beam.pvalue.TaggedOutput(SKIPPED, uri)
            return
        try:
            info = images.probe(data, uri, self._max_pixels)
            pixels = classifier_pixels(data, uri, self._size, self._max_pixels)
        except images.ImageError as exc:
            yield beam.pvalue.TaggedOutput(ERRORS, error_row(uri, "decode", exc.reason, str(exc)))
            return
        yield ImageRecord(uri, sha, info.width, info.height, data if self._keep else b""), pixels


# ---------------------------------------------------------------- rows


class AssembleRow(beam.DoFn):
    """(ScoredImage, Detections | None) -> result row; images to preview also go to FLAGGED."""

    def __init__(self, info: RunInfo, want_previews: bool) -> None:
        self._info = info
        self._previews = want_previews

    def process(self, element: tuple[ScoredImage, Detections | None]):
        scored, det = element
        rec, info = scored.record, self._info
        if det is not None and det.error_reason:
            yield beam.pvalue.TaggedOutput(
                ERRORS, error_row(rec.uri, "detect", det.error_reason, det.error_message or "")
            )
            return
        row: dict[str, Any] = {
            "image_uri": rec.uri,
            "image_sha256": rec.sha256,
            "width": rec.width,
            "height": rec.height,
            "rust_probability": round(scored.rust_probability, 6),
            "is_rust": scored.rust_probability >= info.classifier.threshold,
            "num_boxes": None,
            "boxes": None,
            "rust_area_fraction": None,
            "rust_grade": None,
            "classifier_version": info.classifier.version,
            "detector_version": info.detector.version if info.detector else None,
            "survey_id": info.survey_id,
            "processed_at": info.processed_at,
        }
        if det is not None:
            fraction = grading.rust_area_fraction([b[:4] for b in det.boxes], rec.width, rec.height)
            row.update(
                num_boxes=len(det.boxes),
                boxes=json.dumps([list(b) for b in det.boxes]),
                rust_area_fraction=round(fraction, 6),
                rust_grade=grading.astm_d610_grade(fraction),
            )
            Metrics.counter(NAMESPACE, "boxes").inc(len(det.boxes))
            Metrics.counter(NAMESPACE, "detector_views").inc(det.views)
        Metrics.counter(NAMESPACE, "images_scored").inc()
        if row["is_rust"]:
            Metrics.counter(NAMESPACE, "classified_rust").inc()
        if row["is_rust"] or (row["num_boxes"] or 0) > 0:
            Metrics.counter(NAMESPACE, "rust_images").inc()
            if self._previews:
                yield beam.pvalue.TaggedOutput(FLAGGED, (row, rec.data))
        yield row


class WritePreview(beam.DoFn):
    """(row, bytes) of a rust image -> preview JPEG written; a ReportEntry with its thumbnail."""

    def __init__(self, previews_dir: str, config: InferenceConfig) -> None:
        self._dir = previews_dir
        self._cfg = config.outputs
        self._max_pixels = config.max_pixels

    def process(self, element: tuple[dict, bytes]):
        row, data = element
        boxes = json.loads(row["boxes"]) if row["boxes"] else []
        img = previews.render_preview(
            data, row["width"], row["height"], boxes, row["rust_probability"], row["rust_grade"],
            self._cfg.preview_max_side, row["image_uri"], self._max_pixels,
        )  # fmt: skip
        uri = report.preview_uri(self._dir, previews.preview_name(row["image_uri"], row["image_sha256"]))
        io_utils.write_bytes(uri, previews.encode_jpeg(img, self._cfg.preview_quality))
        Metrics.counter(NAMESPACE, "previews_written").inc()
        yield report.ReportEntry(
            image_uri=row["image_uri"],
            rust_probability=row["rust_probability"],
            is_rust=row["is_rust"],
            num_boxes=row["num_boxes"],
            rust_grade=row["rust_grade"],
            rust_area_fraction=row["rust_area_fraction"],
            thumbnail=previews.thumbnail_data_uri(img, self._cfg.thumbnail_side),
            preview_uri=uri,
        )


class SurveyStatsFn(beam.CombineFn):
    """("result" | "error", row) -> report.SurveyStats."""

    def create_accumulator(self) -> report.SurveyStats:
        return report.SurveyStats()

    def add_input(self, acc: report.SurveyStats, item: tuple[str, dict]) -> report.SurveyStats:
        kind, row = item
        if kind == "error":
            acc.errors += 1
            acc.errors_by_reason[row["reason"]] = acc.errors_by_reason.get(row["reason"], 0) + 1
            return acc
        acc.images += 1
        acc.classified_rust += int(row["is_rust"])
        acc.rust_images += int(row["is_rust"] or (row["num_boxes"] or 0) > 0)
        acc.boxes += row["num_boxes"] or 0
        if row["rust_grade"] is not None:
            acc.grades[row["rust_grade"]] = acc.grades.get(row["rust_grade"], 0) + 1
        return acc

    def merge_accumulators(self, accs: Iterable[report.SurveyStats]) -> report.SurveyStats:
        out = report.SurveyStats()
        for acc in accs:
            out.merge(acc)
        return out

    def extract_output(self, acc: report.SurveyStats) -> report.SurveyStats:
        return acc


def write_report(_, path: str, info: RunInfo, stats: report.SurveyStats, top: list) -> str:
    models = {
        "classifier": info.classifier.version,
        "detector": info.detector.version if info.detector else "",
    }
    text = report.render_report(info.survey_id, stats, top, path, models, info.processed_at)
    report.write_report(path, text)
    return path


def remove_stale(_, pattern: str, written: list[str]) -> int:
    """Delete shards of an earlier run of the same night and survey that this run did not write."""

    def canonical(path: str) -> str:
        return path if io_utils.is_remote(path) else os.path.abspath(path)

    keep = {canonical(p) for p in written}
    matched = FileSystems.match([pattern])[0].metadata_list
    stale = [m.path for m in matched if canonical(m.path) not in keep]
    if stale:
        log.info("removing %d stale shard(s) of an earlier run: %s", len(stale), stale)
        FileSystems.delete(stale)
    return len(stale)


# ---------------------------------------------------------------- history (--skip_processed)


def history_files(prefix: str, info: RunInfo) -> list[str]:
    """Result CSVs of earlier runs under ``prefix``, except this night's for this survey (which
    this run rewrites, so a re-run of the same night scores the same images again)."""
    pattern = io_utils.join(prefix, "date=*", "*-results-*.csv")
    own = f"date={info.run_date.isoformat()}/{info.file_stem}-results-"
    found = FileSystems.match([pattern])[0].metadata_list
    return sorted(m.path for m in found if own not in m.path.replace("\\", "/"))


def processed_keys(line: str, columns: Sequence[str], classifier: str, detector: str) -> Iterable[tuple[str, bool]]:
    import csv

    values = next(csv.reader([line]), None)
    if not values or len(values) != len(columns):
        return
    row = dict(zip(columns, values, strict=True))
    if row["classifier_version"] == classifier and row["detector_version"] == detector:
        yield row["image_sha256"], True
