"""The batch-inference graph as composite steps, each one idea, built from the typed job.

``batch_inference.build_pipeline`` chains them: ListSurvey -> ReadImages -> Classify -> Detect ->
AssembleRows -> WriteCsv (+ WriteBigQuery, ReportAndPreviews). Every step that can fail an image
returns its error rows as their own output; the graph flattens them once, so each file ends in
exactly one place. Importable (not ``__main__``) for the reason given in ``pipelines.inference.transforms``.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import apache_beam as beam
from apache_beam.ml.inference.base import RunInference

from corrosion.core import io_utils, listing
from corrosion.inference import results
from pipelines.inference.config import InferenceConfig, InferenceJob
from pipelines.inference.handlers import ClassifierHandler, Detections, DetectorHandler
from pipelines.inference.transforms import (
    ERRORS,
    INPUTS_FILE,
    SKIPPED,
    SKIPPED_COLUMNS,
    LenientUtf8Coder,
    PrepareForClassifier,
    ReadImage,
    ResolveInput,
    ScoredImage,
    SurveyStatsFn,
    WritePreview,
    commit_outputs,
    history_files,
    listing_key,
    processed_keys,
    read_inputs,
    with_scored,
    write_report,
)

log = logging.getLogger("pipelines.batch_inference")  # the job's log, whichever module builds the step


class ListSurvey(beam.PTransform):
    """PBegin -> every input once (``listing.Found`` or ``listing.Problem``), from the inputs the
    launch listed (``transforms.launch_inputs``, staged as ``INPUTS_FILE``): the run scores exactly
    what its rows are counted against. One worker reads that file whole; the reshuffle then spreads
    the look-ups of ``--input_list`` entries and the reads."""

    def __init__(self, job: InferenceJob) -> None:
        super().__init__()
        self._job = job

    def expand(self, pbegin: beam.pvalue.PBegin) -> beam.PCollection:
        return (
            pbegin
            | "InputsFile" >> beam.Create([inputs_path(self._job)])
            | "ReadInputs" >> beam.FlatMap(read_inputs)
            | "Spread" >> beam.Reshuffle()
            | "Resolve" >> beam.ParDo(ResolveInput(self._job.input_list))
        )


def inputs_path(job: InferenceJob) -> str:
    """Where the launch stages the run's inputs: its own staging folder, removed when it commits."""
    return io_utils.join(job.info.staging_dir, INPUTS_FILE)


class ProcessedHistory(beam.PTransform):
    """PBegin -> (image_uri, image_sha256) of every image earlier nights scored with these models (--skip_processed)."""

    def __init__(self, job: InferenceJob) -> None:
        super().__init__()
        self._job = job

    def expand(self, pbegin: beam.pvalue.PBegin) -> beam.PCollection:
        info = self._job.info
        past = history_files(self._job.skip_processed, info)
        log.info("--skip_processed: %d result file(s) of earlier runs under %s", len(past), self._job.skip_processed)
        return (
            pbegin
            | "HistoryFiles" >> beam.Create([listing.escape_glob(f) for f in past])
            | "ReadHistory" >> beam.io.ReadAllFromText(skip_header_lines=1, coder=LenientUtf8Coder())
            | "ProcessedKeys"
            >> beam.FlatMap(
                processed_keys,
                results.result_columns(),
                info.classifier.version,
                info.detector.version if info.detector else "",
            )
            | "DistinctKeys" >> beam.Distinct()
        )


class ReadImages(beam.PTransform):
    """Inputs -> {"prepared": (ImageRecord, classifier pixels), "read_errors", "decode_errors", "skipped"}.

    A bounded read, then the reduced-scale decode. With ``history`` ((image_uri, sha256) of what
    earlier nights scored, ``ProcessedHistory``), each input is first joined with its own path's
    history (a CoGroupByKey on the uri: file names and hashes cross the shuffle, never image bytes,
    and no worker holds the whole history), and a file whose bytes hash to one scored there goes to
    the skipped output once read.
    """

    def __init__(self, job: InferenceJob, history: beam.PCollection | None = None) -> None:
        super().__init__()
        self._job = job
        self._history = history

    def expand(self, files: beam.PCollection) -> dict[str, beam.PCollection]:
        cfg, info = self._job.config, self._job.info
        if self._history is not None:
            files = (
                {"tonight": files | "KeyByUri" >> beam.WithKeys(listing_key), "history": self._history}
                | "JoinHistory" >> beam.CoGroupByKey()
                | "WithScored" >> beam.FlatMap(with_scored)
            )
        read = files | "ReadBytes" >> beam.ParDo(ReadImage(cfg.max_file_bytes, cfg.progress_every)).with_outputs(
            ERRORS, SKIPPED, main="images"
        )
        keep_data = info.detector is not None or self._job.previews_dir is not None
        prepare = PrepareForClassifier(
            info.classifier.input_size,
            cfg.max_pixels,
            keep_data=keep_data,
            tf_threads=cfg.tf_threads_per_call,
            max_side=cfg.max_side,
        )
        prepared = read.images | "DecodeForClassifier" >> beam.ParDo(prepare).with_outputs(ERRORS, main="prepared")
        return {
            "prepared": prepared.prepared,
            "read_errors": read[ERRORS],
            "decode_errors": prepared[ERRORS],
            "skipped": read[SKIPPED],
        }


class Classify(beam.PTransform):
    """(ImageRecord, pixels) -> ScoredImage: the classifier over batches, one model per worker process."""

    def __init__(self, job: InferenceJob) -> None:
        super().__init__()
        self._job = job

    def expand(self, prepared: beam.PCollection) -> beam.PCollection:
        cfg, info = self._job.config, self._job.info
        handler = ClassifierHandler(
            self._job.classifier_dir,
            info.classifier,
            cfg.classifier_batch_size,
            cfg.tf_threads_per_call,
            info.classifier_runtime,
            cfg.lite_interpreters_per_process,
        )
        return (
            prepared
            | "RunClassifier" >> RunInference(handler)
            | "Scored" >> beam.MapTuple(lambda rec, pred: ScoredImage(rec, float(pred.inference)))
        )


class Detect(beam.PTransform):
    """ScoredImage -> (ScoredImage, Detections | None): None without a detector, no boxes below the gate."""

    def __init__(self, job: InferenceJob) -> None:
        super().__init__()
        self._job = job

    def expand(self, scored: beam.PCollection) -> beam.PCollection:
        cfg, info = self._job.config, self._job.info
        if info.detector is None:
            return scored | "NoDetector" >> beam.Map(lambda s: (s, None))
        gate = cfg.detector_gate
        if gate is None:
            to_detect, gated = scored, None
        else:
            to_detect, gated = scored | "DetectorGate" >> beam.Partition(
                lambda s, _: 0 if s.rust_probability >= gate else 1, 2
            )
        keep_masks = self._job.masks_dir is not None
        handler = DetectorHandler(self._job.detector_dir, info.detector, cfg, info.detector_runtime, keep_masks)
        detected = (
            to_detect
            | "KeyForDetector" >> beam.Map(lambda s: (s, s.record))
            | "RunDetector" >> RunInference(handler)
            | "Detections" >> beam.MapTuple(lambda s, pred: (s, pred.inference))
        )
        if gated is None:
            return detected
        below = gated | "BelowGate" >> beam.Map(lambda s: (s, Detections()))
        return (detected, below) | "AllScored" >> beam.Flatten()


class WriteCsv(beam.PTransform):
    """(rows, errors, skipped) -> CSV shards in this run's staging folder, then moved over the night's files.

    One date partition per night, one file set per survey; ``commit_outputs`` replaces the night's
    earlier shards of this survey in one step, so a re-run never leaves old rows beside new ones.
    Images skipped as already scored get ``<survey>-skipped-*.csv`` (with ``--skip_processed``), so
    every input has a written row the run's accounting can count.
    """

    def __init__(self, job: InferenceJob) -> None:
        super().__init__()
        self._job = job

    def expand(self, outputs: tuple[beam.PCollection, beam.PCollection, beam.PCollection]) -> beam.PCollection:
        rows, errors, skipped = outputs
        info = self._job.info
        staged = io_utils.join(info.staging_dir, info.file_stem)
        header = results.csv_header(results.result_columns())
        results_written = (
            rows
            | "ResultCsvLines" >> beam.Map(results.ResultRow.to_csv_line)
            | "WriteResults" >> beam.io.WriteToText(f"{staged}-results", file_name_suffix=".csv", header=header)
        )
        errors_header = results.csv_header(results.ERROR_COLUMNS)
        errors_written = (
            errors
            | "ErrorCsvLines" >> beam.Map(results.csv_line, results.ERROR_COLUMNS)
            | "WriteErrors" >> beam.io.WriteToText(f"{staged}-errors", file_name_suffix=".csv", header=errors_header)
        )
        stems = [f"{info.file_stem}-results", f"{info.file_stem}-errors"]
        written = [beam.pvalue.AsList(results_written), beam.pvalue.AsList(errors_written)]
        if self._job.skip_processed:
            stems.append(f"{info.file_stem}-skipped")
            written.append(
                beam.pvalue.AsList(
                    skipped
                    | "SkippedCsvLines" >> beam.Map(results.csv_line, SKIPPED_COLUMNS)
                    | "WriteSkipped"
                    >> beam.io.WriteToText(
                        f"{staged}-skipped", file_name_suffix=".csv", header=results.csv_header(SKIPPED_COLUMNS)
                    )
                )
            )
        return (
            rows.pipeline
            | "CommitSeed" >> beam.Create([None])
            | "CommitOutputs" >> beam.Map(
                lambda seed, *files: commit_outputs(
                    seed, info.staging_dir, info.partition_dir, dict(zip(stems, files, strict=True))
                ),
                *written,
            )
        )  # fmt: skip


def bigquery_table_parameters(cfg: InferenceConfig) -> dict[str, Any]:
    """Partitioning and clustering for CREATE_IF_NEEDED (load-job ``additional_bq_parameters``)."""
    return {
        "timePartitioning": {"type": "DAY", "field": cfg.bigquery.partition_field},
        "clustering": {"fields": list(cfg.bigquery.clustering_fields)},
    }


EMULATOR_VARIABLE = "BIGQUERY_EMULATOR_HOST"


def follow_bigquery_emulator() -> str | None:
    """Beam's BigQuery client (apitools, its URL compiled in) sent to ``$BIGQUERY_EMULATOR_HOST``
    when that is set, as google-cloud-bigquery's client already is: the night's DML and its load
    jobs then reach the same server. The URL it now uses, or None when unset (Google's own)."""
    host = os.environ.get(EMULATOR_VARIABLE)
    if not host:
        return None
    from apache_beam.io.gcp.internal.clients.bigquery import bigquery_v2_client

    if "://" not in host:
        raise ValueError(f"{EMULATOR_VARIABLE}={host!r} must be a URL such as http://127.0.0.1:9050")
    bigquery_v2_client.BigqueryV2.BASE_URL = host.rstrip("/") + "/bigquery/v2/"
    log.info("BigQuery load jobs go to the emulator at %s (%s)", host, EMULATOR_VARIABLE)
    return bigquery_v2_client.BigqueryV2.BASE_URL


class WriteBigQuery(beam.PTransform):
    """ResultRows appended to ``--bigquery_table`` by load jobs (the night was cleared at launch)."""

    def __init__(self, job: InferenceJob) -> None:
        super().__init__()
        self._job = job

    def expand(self, rows: beam.PCollection) -> Any:
        follow_bigquery_emulator()
        return (
            rows
            | "BigQueryRows" >> beam.Map(results.ResultRow.to_bigquery)
            | "LoadJobs"
            >> beam.io.WriteToBigQuery(
                table=self._job.bigquery_table,
                schema=results.beam_table_schema(),
                method=beam.io.WriteToBigQuery.Method.FILE_LOADS,
                create_disposition=beam.io.BigQueryDisposition.CREATE_IF_NEEDED,
                write_disposition=beam.io.BigQueryDisposition.WRITE_APPEND,
                additional_bq_parameters=bigquery_table_parameters(self._job.config),
            )
        )


class ReportAndPreviews(beam.PTransform):
    """(flagged, rows, errors) -> a preview JPEG per rust image and, with --report, the HTML report."""

    def __init__(self, job: InferenceJob) -> None:
        super().__init__()
        self._job = job

    def expand(self, inputs: tuple[beam.PCollection, beam.PCollection, beam.PCollection]) -> beam.PCollection:
        flagged, rows, errors = inputs
        job, cfg = self._job, self._job.config
        entries = flagged | "WritePreviews" >> beam.ParDo(WritePreview(job.previews_dir, cfg))
        if not job.report:
            return entries
        tagged = [
            rows | "TagResults" >> beam.Map(lambda r: ("result", r)),
            errors | "TagErrors" >> beam.Map(lambda r: ("error", r)),
        ]
        stats = tagged | "FlattenForStats" >> beam.Flatten() | "SurveyStats" >> beam.CombineGlobally(SurveyStatsFn())
        top = entries | "TopRust" >> beam.combiners.Top.Of(
            cfg.outputs.report_max_images, key=lambda e: (e.rust_probability, e.image_uri)
        )
        return (
            rows.pipeline
            | "ReportSeed" >> beam.Create([None])
            | "WriteReport" >> beam.Map(
                write_report, job.report, job.info, beam.pvalue.AsSingleton(stats), beam.pvalue.AsSingleton(top)
            )
        )  # fmt: skip
