"""The pieces of the batch-inference pipeline that travel to workers: element types, DoFns, helpers.

They live in an importable module, not in ``pipelines.batch_inference`` (run as ``__main__``):
elements that cross a stage boundary are pickled by reference to their class, and a worker in
another process (Dataflow, or the local engine's multi_processing mode) cannot find
``__main__.ScoredImage``. ``tests/test_batch_inference.py`` runs the job with worker processes.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import logging
import os
import re
import shutil
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics

from corrosion.core import cloud_checks, csv_rows, io_utils, listing, paths
from corrosion.imaging import images
from corrosion.inference import exif, grading, previews, report, results
from corrosion.inference.assets import AssetResolver
from pipelines.inference.config import InferenceConfig, InferenceJob, RunInfo
from pipelines.inference.handlers import Detections, ImageRecord, classifier_pixels, limit_tf_threads

log = logging.getLogger(__name__)

NAMESPACE = "corrosion_inference"
ERRORS = "errors"
SKIPPED = "skipped"
FLAGGED = "flagged"
SKIPPED_COLUMNS = ("image_uri", "image_sha256")  # <survey>-skipped-*.csv, with --skip_processed
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


@dataclass(frozen=True)
class SurveyPhoto(ImageRecord):
    """An ImageRecord with what its EXIF says, read where the bytes are already in hand (the decode
    step), so the file is read once and the row gets the facts even where the bytes are not kept."""

    facts: exif.PhotoFacts = exif.NOTHING


@dataclass(frozen=True)
class ScoredImage:
    record: ImageRecord
    rust_probability: float


def error_row(image_uri: str, stage: str, reason: str, message: str) -> dict[str, str]:
    Metrics.counter(NAMESPACE, "images_failed").inc()
    Metrics.counter(NAMESPACE, f"error_{reason}").inc()
    return {"image_uri": image_uri, "stage": stage, "reason": reason, "message": message}


# ---------------------------------------------------------------- reading

INPUTS_FILE = "inputs.jsonl"  # in the run's staging folder: every input, as listed at launch
MAX_LIST_BYTES = 256 * 2**20  # an --input_list over this is refused (a few million names)


def input_list_entry(line: str, list_path: str) -> str | None:
    """One ``--input_list`` line (its line end already gone) as the path it names; None for blank
    lines and ``#`` comments.

    Entries are literal paths, never patterns; a relative one is relative to the list's folder (a
    list travels with its survey, and a Dataflow worker has no useful working directory). Only a
    byte-order mark is dropped: other whitespace belongs to the name (``scan 01.jpg `` is a file),
    except that where no file has the name as written and one has it without the surrounding
    whitespace (a hand-indented list), that one is meant, as it is when neither exists. A line of
    only whitespace is blank unless a file has that very name.
    """
    raw = line.lstrip("\ufeff")
    stripped = raw.strip()
    if stripped.startswith("#"):
        return None
    if raw != stripped:
        literal = _listed_path(raw, list_path)
        if io_utils.exists(literal):
            return literal
    return _listed_path(stripped, list_path) if stripped else None


def _listed_path(entry: str, list_path: str) -> str:
    if "://" in entry or entry.startswith("/"):
        return entry
    return paths.normalise(paths.join(paths.parent(list_path), entry))


def input_list_entries(list_path: str) -> list[tuple[int, str]]:
    """(line number, path) of each entry of an ``--input_list`` file, read whole here (its encoding
    and line ends are found from all of it: ``listing.decode_list``); ListError or FileTooLarge
    when it cannot be read as a list."""
    lines = listing.decode_list(io_utils.read_bytes(list_path, MAX_LIST_BYTES), list_path)
    return [(n, entry) for n, line in enumerate(lines, 1) if (entry := input_list_entry(line, list_path)) is not None]


def input_spec(item: listing.Found | listing.Problem | tuple[int, str]) -> dict[str, Any]:
    """One input as a JSON object for the staged inputs file: a file a glob found, a name it
    found that is no readable file, or an ``--input_list`` entry (line, path) to look up."""
    if isinstance(item, listing.Found):
        return {"found": item.path, "size": item.size, "link": item.via_link}
    if isinstance(item, listing.Problem):
        return {"problem": item.path, "raw": item.raw, "reason": item.reason, "detail": item.detail}
    return {"entry": item[1], "line": item[0]}


def spec_name(spec: dict[str, Any]) -> str:
    """The name an input is listed under (``listing.key``'s text), known before the pipeline runs."""
    if "entry" in spec:
        return listing.literal_name(spec["entry"])
    return spec.get("found") or spec.get("raw") or spec["problem"]


def row_uri(name: str) -> str:
    """The ``image_uri`` cell an input's one row carries in the night's CSVs."""
    return csv_rows.safe_text(paths.display(name))


def write_inputs(path: str, specs: Sequence[dict[str, Any]]) -> None:
    """The run's inputs, one JSON object per line (names with newlines or undecodable bytes are escaped)."""
    io_utils.write_text(path, "".join(json.dumps(s) + "\n" for s in specs))


def read_inputs(path: str) -> Iterable[str]:
    """The staged inputs' lines, read by one worker in one piece: no split of the file can drop a
    line. Each stays its JSON text (ASCII: undecodable bytes escaped) until ``ResolveInput``, as
    Beam's coder refuses the surrogate escapes of a non-UTF-8 name in a plain string."""
    yield from (line for line in io_utils.read_text(path).splitlines() if line)


class ResolveInput(beam.DoFn):
    """A staged input -> ``listing.Found`` or ``listing.Problem``: a glob's finding as it was
    listed; an ``--input_list`` entry looked up literally (a listed path that does not exist is an
    error row naming its line, where fileio.MatchAll would drop it or fail the run)."""

    def __init__(self, list_path: str | None) -> None:
        self._list_path = list_path

    def process(self, line: str):
        spec = json.loads(line)
        if "found" in spec:
            yield listing.Found(spec["found"], spec["size"], spec["link"])
        elif "problem" in spec:
            yield listing.Problem(spec["problem"], spec["reason"], spec["detail"], spec["raw"])
        else:
            yield _looked_up(spec["entry"], spec["line"], self._list_path or "")


def launch_inputs(job: InferenceJob, follow_outside: bool, allow_empty: bool) -> list[dict[str, Any]]:
    """Every input of the night, listed once at launch and deduplicated by name (a file both
    globbed and listed, or listed twice, is one input): what the run scores and what its rows
    are counted against. SystemExit naming a pattern or list that gives no input, unless
    ``allow_empty`` (an empty night is usually a mistyped pattern)."""
    items: list[listing.Found | listing.Problem | tuple[int, str]] = []
    if job.input:
        found = listing.match_glob(job.input, job.own_outputs, follow_outside)
        log.info("--input %s matched %d file(s)", job.input, len(found))
        if not found and not allow_empty:
            raise SystemExit(
                f"--input {job.input} matches no file: check the pattern (quote it, so the shell does not expand "
                "it), or give --allow_empty if a night without photos is expected"
            )
        items += found
    if job.input_list:
        try:
            listed = input_list_entries(job.input_list)
        except (listing.ListError, io_utils.FileTooLarge) as exc:
            raise SystemExit(f"--input_list {exc}") from exc
        if not listed and not allow_empty:
            raise SystemExit(f"--input_list {job.input_list} names no file; give --allow_empty if that is expected")
        items += listed
    specs: dict[str, dict[str, Any]] = {}
    for spec in map(input_spec, items):
        specs.setdefault(spec_name(spec), spec)
    if len(specs) < len(items):
        log.info("%d input(s) named twice are one input each", len(items) - len(specs))
    return list(specs.values())


def rows_written(info: RunInfo) -> dict[str, Counter[str]]:
    """``image_uri`` of every row of this survey's night as written, per kind: results, errors and
    skipped shards (``<stem>-<kind>-NNNNN-of-NNNNN.csv``, not survey ``A-results-1``'s files)."""
    out: dict[str, Counter[str]] = {}
    for kind in ("results", "errors", "skipped"):
        rows = out[kind] = Counter()
        stem = f"{info.file_stem}-{kind}"
        shard = re.compile(re.escape(stem) + r"-\d{5}-of-\d{5}\.csv")
        pattern = io_utils.join(listing.escape_glob(info.partition_dir), listing.escape_glob(stem) + "-*.csv")
        for path in io_utils.matching(pattern):
            if shard.fullmatch(io_utils.basename(path)):
                reader = csv.DictReader(io.StringIO(io_utils.read_text(path, errors="replace")))
                rows.update(r["image_uri"] for r in reader)
    return out


def _looked_up(entry: str, line: int, list_path: str) -> listing.Found | listing.Problem:
    found = listing.match_literal(entry)
    if isinstance(found, listing.Problem) and found.reason == listing.MISSING:
        where = f"line {line} of --input_list {paths.display(list_path)}"
        detail = f"{found.path}: named on {where}, but no such file exists"
        return listing.Problem(found.path, found.reason, detail, found.raw)
    return found


class ReadImage(beam.DoFn):
    """Found -> (uri, bytes), or a skipped row where its bytes hash to one an earlier night scored
    at its path (``Found.scored``, ``--skip_processed``); Problem -> its error row. Reads at most
    ``max_file_bytes`` + 1 bytes, only from regular files (the listing refused FIFOs and devices),
    so no input can hang a worker or exhaust its memory. ``uri`` is the printable name
    (``paths.display``) every row carries."""

    def __init__(self, max_file_bytes: int, progress_every: int) -> None:
        self._max = max_file_bytes
        self._every = progress_every

    def setup(self) -> None:
        self._count = 0
        self._start = time.monotonic()

    def process(self, item: listing.Found | listing.Problem):
        if isinstance(item, listing.Problem):
            Metrics.counter(NAMESPACE, "files_missing" if item.reason == listing.MISSING else "files_matched").inc()
            yield beam.pvalue.TaggedOutput(ERRORS, error_row(item.path, "match", item.reason, item.detail))
            return
        uri = paths.display(item.path)
        Metrics.counter(NAMESPACE, "files_matched").inc()
        too_big = f"{uri}: file is larger than max_file_bytes={self._max} in the inference config"
        if item.size > self._max:
            yield beam.pvalue.TaggedOutput(ERRORS, error_row(uri, "read", "file_too_large", too_big))
            return
        try:
            data = io_utils.read_bytes(item.path, self._max)
        except io_utils.FileTooLarge:
            yield beam.pvalue.TaggedOutput(ERRORS, error_row(uri, "read", "file_too_large", too_big))
            return
        except FileNotFoundError:
            message = f"{uri}: deleted between listing and reading"
            yield beam.pvalue.TaggedOutput(ERRORS, error_row(uri, "read", "missing_file", message))
            return
        except Exception as exc:  # permissions, a broken object; a storage service that stopped answering fails the run
            if service := cloud_checks.unreachable(exc):
                raise cloud_checks.ServiceUnreachable(
                    f"{service} stopped answering while reading {uri}: the run stops here rather than turn the "
                    f"rest of the survey into error rows; run it again once the service is back ({exc})"
                ) from exc
            message = f"{uri}: cannot be read ({images.stable_message(exc)})"
            yield beam.pvalue.TaggedOutput(ERRORS, error_row(uri, "read", "read_failed", message))
            return
        Metrics.counter(NAMESPACE, "images_read").inc()
        self._count += 1
        if self._every and self._count % self._every == 0:
            rate = self._count / max(1e-9, time.monotonic() - self._start)
            log.info("read %d images in this worker (%.1f images/s)", self._count, rate)
        if item.scored and (sha := hashlib.sha256(data).hexdigest()) in item.scored:
            Metrics.counter(NAMESPACE, "images_skipped").inc()
            yield beam.pvalue.TaggedOutput(SKIPPED, {"image_uri": uri, "image_sha256": sha})
            return
        yield uri, data


class PrepareForClassifier(beam.DoFn):
    """(uri, bytes) -> (ImageRecord, classifier pixels), or an error row.

    Decoding here (not in the model handler) makes every unreadable file an error row of its
    own instead of failing a batch.
    """

    def __init__(
        self,
        input_size: int,
        max_pixels: int,
        keep_data: bool,
        tf_threads: int | None = None,
        max_side: int | None = None,
    ) -> None:
        self._size = input_size
        self._max_pixels = max_pixels
        self._max_side = max_side  # a strip is refused here, on every path, not only the region model's
        self._keep = keep_data
        self._tf_threads = tf_threads

    def setup(self) -> None:
        limit_tf_threads(self._tf_threads)  # before this worker's first TensorFlow op (the resize)

    def process(self, element: tuple[str, bytes]):
        uri, data = element
        sha = hashlib.sha256(data).hexdigest()
        try:
            info = images.probe(data, uri, self._max_pixels, self._max_side)
            pixels = classifier_pixels(data, uri, self._size, self._max_pixels)
        except images.ImageError as exc:
            yield beam.pvalue.TaggedOutput(ERRORS, error_row(uri, "decode", exc.reason, str(exc)))
            return
        facts = exif.read_exif(data)  # never raises: bad EXIF is None fields, not an error row
        yield SurveyPhoto(uri, sha, info.width, info.height, data if self._keep else b"", facts), pixels


# ---------------------------------------------------------------- rows


class AssembleRow(beam.DoFn):
    """(ScoredImage, Detections | None) -> ResultRow; images to preview also go to FLAGGED."""

    def __init__(
        self, info: RunInfo, want_previews: bool, masks_dir: str | None = None, assets: AssetResolver | None = None
    ) -> None:
        self._info = info
        self._previews = want_previews
        self._masks = masks_dir
        self._assets = assets

    def process(self, element: tuple[ScoredImage, Detections | None]):
        scored, det = element
        rec = scored.record
        if det is not None and det.error_reason:
            yield beam.pvalue.TaggedOutput(
                ERRORS, error_row(rec.uri, "detect", det.error_reason, det.error_message or "")
            )
            return
        row = result_row(scored, det, self._info, self._assets)
        if det is not None and det.mask is not None and self._masks is not None:
            write_mask(self._masks, row, det.mask)
        if det is not None:
            Metrics.counter(NAMESPACE, "boxes").inc(len(det.boxes))
            Metrics.counter(NAMESPACE, "detector_views").inc(det.views)
        Metrics.counter(NAMESPACE, "images_scored").inc()
        if row.is_rust:
            Metrics.counter(NAMESPACE, "classified_rust").inc()
        if row.flagged:
            Metrics.counter(NAMESPACE, "rust_images").inc()
            if self._previews:
                yield beam.pvalue.TaggedOutput(FLAGGED, (row, rec.data, det.mask if det is not None else None))
        yield row


def result_row(
    scored: ScoredImage, det: Detections | None, info: RunInfo, assets: AssetResolver | None = None
) -> results.ResultRow:
    """The image's row: classifier columns always, box and grade columns only where the detector ran,
    the EXIF and asset/zone columns where the photo and its folder say them."""
    rec, probability = scored.record, scored.rust_probability
    facts = rec.facts if isinstance(rec, SurveyPhoto) else exif.NOTHING
    asset, zone = assets.resolve(rec.uri) if assets is not None and assets.active else (None, None)
    boxes = fraction = grade = None
    if det is not None:
        area = det.rust_fraction  # a rust-region model counts rust pixels; boxes over-state the area
        if area is None:
            area = grading.rust_area_fraction([b[:4] for b in det.boxes], rec.width, rec.height)
        boxes, fraction, grade = json.dumps([list(b) for b in det.boxes]), round(area, 6), grading.astm_d610_grade(area)
    return results.ResultRow(
        image_uri=rec.uri,
        image_sha256=rec.sha256,
        width=rec.width,
        height=rec.height,
        rust_probability=round(probability, 6),
        is_rust=probability >= info.classifier.threshold,
        num_boxes=len(det.boxes) if det is not None else None,
        boxes=boxes,
        rust_area_fraction=fraction,
        rust_grade=grade,
        classifier_version=info.classifier.version,
        detector_version=info.detector.version if info.detector else None,
        survey_id=info.survey_id,
        processed_at=info.processed_at,
        capture_time=facts.capture_time,
        gps_latitude=facts.gps_latitude,
        gps_longitude=facts.gps_longitude,
        gps_altitude=facts.gps_altitude,
        camera_model=facts.camera_model,
        location=facts.location,
        asset=asset,
        zone=zone,
    )


def write_mask(masks_dir: str, row: results.ResultRow, png: bytes) -> str:
    """MASKS/<preview name>.png: the image's rust mask (255 rust, 0 clean) at the scale it was scored."""
    uri = io_utils.join(masks_dir, previews.mask_name(row.image_uri, row.image_sha256))
    io_utils.write_bytes(uri, png)
    Metrics.counter(NAMESPACE, "masks_written").inc()
    return uri


class WritePreview(beam.DoFn):
    """(row, bytes, rust mask PNG or None) of a rust image -> preview JPEG written; a ReportEntry with its thumbnail."""

    def __init__(self, previews_dir: str, config: InferenceConfig) -> None:
        self._dir = previews_dir
        self._cfg = config.outputs
        self._max_pixels = config.max_pixels

    def process(self, element: tuple[results.ResultRow, bytes, bytes | None]):
        row, data, mask = element
        boxes = json.loads(row.boxes) if row.boxes else []
        img = previews.render_preview(
            data, row.width, row.height, boxes, row.rust_probability, row.rust_grade,
            self._cfg.preview_max_side, row.image_uri, self._max_pixels, mask=mask,
        )  # fmt: skip
        uri = report.preview_uri(self._dir, previews.preview_name(row.image_uri, row.image_sha256))
        io_utils.write_bytes(uri, previews.encode_jpeg(img, self._cfg.preview_quality))
        Metrics.counter(NAMESPACE, "previews_written").inc()
        yield report.ReportEntry(
            image_uri=row.image_uri,
            rust_probability=row.rust_probability,
            is_rust=row.is_rust,
            num_boxes=row.num_boxes,
            rust_grade=row.rust_grade,
            rust_area_fraction=row.rust_area_fraction,
            thumbnail=previews.thumbnail_data_uri(img, self._cfg.thumbnail_side),
            preview_uri=uri,
        )


class SurveyStatsFn(beam.CombineFn):
    """("result", ResultRow) | ("error", error row) -> report.SurveyStats."""

    def create_accumulator(self) -> report.SurveyStats:
        return report.SurveyStats()

    def add_input(self, acc: report.SurveyStats, item: tuple[str, Any]) -> report.SurveyStats:
        kind, row = item
        if kind == "error":
            acc.errors += 1
            acc.errors_by_reason[row["reason"]] = acc.errors_by_reason.get(row["reason"], 0) + 1
            return acc
        acc.images += 1
        acc.classified_rust += int(row.is_rust)
        acc.rust_images += int(row.flagged)
        acc.boxes += row.num_boxes or 0
        if row.rust_grade is not None:
            acc.grades[row.rust_grade] = acc.grades.get(row.rust_grade, 0) + 1
        return acc

    def merge_accumulators(self, accs: Iterable[report.SurveyStats]) -> report.SurveyStats:
        out = report.SurveyStats()
        for acc in accs:
            out.merge(acc)
        return out

    def extract_output(self, acc: report.SurveyStats) -> report.SurveyStats:
        return acc


def report_models(info: RunInfo) -> dict[str, str]:
    return {"classifier": info.classifier.version, "detector": info.detector.version if info.detector else ""}


def report_entries_path(info: RunInfo) -> str:
    """``OUTPUT/date=DAY/<survey>-report-entries.json``: the report's counts and thumbnails as the
    pipeline made them, for the driver to render the full report after the run (with tonight's
    rows, changes and review queue) without the pipeline's memory (Dataflow's workers are not it)."""
    return io_utils.join(info.partition_dir, f"{info.file_stem}-report-entries.json")


def write_report_entries(path: str, stats: report.SurveyStats, top: Sequence[report.ReportEntry]) -> None:
    body = {"stats": dataclasses.asdict(stats), "entries": [dataclasses.asdict(e) for e in top]}
    io_utils.write_text(path, json.dumps(body) + "\n")


def read_report_entries(path: str) -> tuple[report.SurveyStats, list[report.ReportEntry]]:
    body = json.loads(io_utils.read_text(path))
    stats = report.SurveyStats(**body["stats"])
    stats.grades = {int(k): v for k, v in stats.grades.items()}  # JSON keys are text
    return stats, [report.ReportEntry(**e) for e in body["entries"]]


def write_report(_, path: str, info: RunInfo, stats: report.SurveyStats, top: list) -> str:
    """The report from what the pipeline holds (counts, thumbnails), and those in a side file: the
    driver re-renders it after the run with the night's rows and changes (``--no_wait`` keeps this one)."""
    write_report_entries(report_entries_path(info), stats, top)
    text = report.render_report(info.survey_id, stats, top, path, report_models(info), info.processed_at)
    report.write_report(path, text)
    return path


def commit_outputs(_, staging_dir: str, final_dir: str, written: dict[str, list[str]]) -> int:
    """Move this run's staged CSV shards into the night's folder and remove that night's older ones.

    Each sink writes into a folder of its own run (``staging_dir``), so it always finalises every
    shard: a sink writing straight over last run's files skips a shard whose size matches the old
    one (Beam compares local files by size) and reports nothing for it, which kept old rows or
    deleted the file. Here each shard replaces its namesake by rename; shards of the same stem
    that this run did not write are stale and removed. Returns the number removed.
    """
    removed = 0
    for stem, staged in sorted(written.items()):
        finals = [io_utils.join(final_dir, io_utils.basename(s)) for s in staged]
        if staged:  # a rename replaces its destination (os.rename locally; copy, then delete, on GCS)
            FileSystems.rename(list(staged), finals)
        keep = {_canonical(f) for f in finals}
        pattern = io_utils.join(listing.escape_glob(final_dir), listing.escape_glob(stem) + "-*.csv")
        shard = re.compile(re.escape(stem) + r"-\d{5}-of-\d{5}\.csv")  # not survey "A-results-1"'s files
        matched = FileSystems.match([pattern])[0].metadata_list
        stale = [
            m.path for m in matched if shard.fullmatch(io_utils.basename(m.path)) and _canonical(m.path) not in keep
        ]
        if stale:
            log.info("removing %d stale shard(s) of an earlier run: %s", len(stale), stale)
            FileSystems.delete(stale)
        removed += len(stale)
    leftovers = FileSystems.match([io_utils.join(listing.escape_glob(staging_dir), "**")])[0].metadata_list
    if leftovers:
        FileSystems.delete([m.path for m in leftovers])
    if not io_utils.is_remote(staging_dir) and os.path.isdir(staging_dir):  # object stores have no folders
        shutil.rmtree(staging_dir, ignore_errors=True)
    return removed


def _canonical(path: str) -> str:
    return path if io_utils.is_remote(path) else os.path.abspath(path)


class LenientUtf8Coder(beam.coders.Coder):
    """Text lines decoded as UTF-8 with undecodable bytes replaced (U+FFFD), never an exception:
    one stray byte in an old results CSV must not stop tonight's run (only its sha256 is used)."""

    def encode(self, value: str) -> bytes:
        return value.encode("utf-8", "surrogateescape")

    def decode(self, encoded: bytes) -> str:
        return encoded.decode("utf-8", "replace")

    def is_deterministic(self) -> bool:
        return True


# ---------------------------------------------------------------- history (--skip_processed)


def history_files(prefix: str, info: RunInfo) -> list[str]:
    """Result CSVs of earlier runs under ``prefix``, except this night's for this survey (which
    this run rewrites, so a re-run of the same night scores the same images again)."""
    pattern = io_utils.join(listing.escape_glob(prefix), "date=*", "*-results-*.csv")
    own = f"date={info.run_date.isoformat()}/{info.file_stem}-results-"
    found = FileSystems.match([pattern])[0].metadata_list
    return sorted(m.path for m in found if own not in m.path.replace("\\", "/"))


HISTORY_KEYS = ("image_uri", "image_sha256", "classifier_version", "detector_version")


def processed_keys(line: str, columns: Sequence[str], classifier: str, detector: str) -> Iterable[tuple[str, str]]:
    """(image_uri, sha256) of a history line scored by these models. Columns are only ever added at
    the end, so a line of an older night is a prefix of ``columns``: it is read as one (a night
    written before the EXIF and asset columns still counts as processed)."""
    import csv

    values = next(csv.reader([line]), None)
    needed = max(columns.index(k) for k in HISTORY_KEYS) + 1
    if not values or not needed <= len(values) <= len(columns):
        return
    row = dict(zip(columns, values, strict=False))
    if row["classifier_version"] == classifier and row["detector_version"] == detector:
        yield row["image_uri"], row["image_sha256"]


def listing_key(item: listing.Found | listing.Problem) -> str:
    """The ``image_uri`` a listed item's row will carry (``ReadImage``'s), to join it with history."""
    return row_uri(item.path) if isinstance(item, listing.Found) else item.path


def with_scored(element: tuple[str, dict[str, list]]) -> Iterable[listing.Found | listing.Problem]:
    """Tonight's items at one uri, each file carrying the sha256 earlier nights scored there."""
    _, grouped = element
    scored = frozenset(grouped["history"])
    for item in grouped["tonight"]:
        yield dataclasses.replace(item, scored=scored) if scored and isinstance(item, listing.Found) else item
