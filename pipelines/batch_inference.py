"""Nightly batch inference: a survey archive -> per-image rust scores, boxes and rusted area.

    python -m pipelines.batch_inference --input 'gs://bucket/survey/*.jpg' \\
        --classifier gs://bucket/models/classifier --detector gs://bucket/models/detector \\
        --output gs://bucket/results --survey_id hull-2026-11 --report gs://bucket/report.html

The command line becomes one typed ``InferenceJob`` (``parse_job``; settings from
``configs/inference.yaml``, ``--config`` and ``--set dotted.key=value``), and ``build_pipeline``
chains the steps of ``pipelines.inference.steps``: ListSurvey (corrosion.core.listing: regular
files only, literal --input_list paths) -> ReadImages (bounded read, reduced-scale decode) ->
Classify (RunInference, batched) -> Detect (RunInference: full-resolution tiles, cross-tile merge)
-> AssembleRows -> WriteCsv (and WriteBigQuery), errors in their own CSV, ReportAndPreviews for
the inspector.

Every input ends in exactly one place: a result row, an error row (image_uri, stage, reason,
message) or, with ``--skip_processed``, a skipped row. The inputs are listed once at launch (the
``--input`` glob's files and names, the ``--input_list`` entries: ``transforms.launch_inputs``)
and the pipeline scores exactly those; after the run the rows written are counted against them,
and a run where any input has no row, or one has two, fails naming them (``check_accounting``).

Outputs go to ``OUTPUT/date=YYYY-MM-DD/<survey>-results-*.csv`` (and ``-errors-*.csv``,
``-summary.json``); re-running a night stages its shards, then renames them over that night's
files for that survey (stale shards are removed) and, in BigQuery, replaces that night's rows for that survey, so a re-run
never duplicates rows.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import logging
import os
import posixpath
import re
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from typing import Any

import apache_beam as beam
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions

from corrosion import cli
from corrosion.core import cloud_checks, io_utils, listing
from corrosion.core.config import add_arguments, from_arguments
from corrosion.inference import assets, report, results
from corrosion.models import lite_runtime, serving, versions
from corrosion.review import selection, survey_changes
from pipelines.inference import steps, transforms
from pipelines.inference.config import InferenceConfig, InferenceJob, RunInfo
from pipelines.inference.transforms import COUNTERS, ERRORS, FLAGGED, NAMESPACE, AssembleRow

log = logging.getLogger("pipelines.batch_inference")

# Without --runner: the in-process engine (pipelines.local_runner), one thread per core, models
# loaded once; its embedded gRPC workers never flush output from a timer thread (``local_pipeline``).
LOCAL_WORKERS = "--direct_num_workers=0"
NO_TIMED_FLUSH_MS = 7 * 24 * 3600 * 1000

# ---------------------------------------------------------------- pipeline


def build_pipeline(p: beam.Pipeline, job: InferenceJob) -> None:
    """Attach the whole job to ``p``: the steps of ``pipelines.inference.steps``, every error row flattened once."""
    files = p | "ListSurvey" >> steps.ListSurvey(job)
    history = p | "ProcessedHistory" >> steps.ProcessedHistory(job) if job.skip_processed else None
    read = files | "ReadImages" >> steps.ReadImages(job, history)
    assembled = (
        read["prepared"]
        | "Classify" >> steps.Classify(job)
        | "Detect" >> steps.Detect(job)
        | "AssembleRows"
        >> beam.ParDo(AssembleRow(job.info, job.previews_dir is not None, job.masks_dir, job.assets)).with_outputs(
            ERRORS, FLAGGED, main="rows"
        )
    )
    rows = assembled.rows
    errors = (read["read_errors"], read["decode_errors"], assembled[ERRORS]) | "AllErrors" >> beam.Flatten()
    (rows, errors, read["skipped"]) | "WriteCsv" >> steps.WriteCsv(job)
    if job.bigquery_table:
        rows | "WriteBigQuery" >> steps.WriteBigQuery(job)
    if job.previews_dir is not None:
        (assembled[FLAGGED], rows, errors) | "ReportAndPreviews" >> steps.ReportAndPreviews(job)


def clear_statement(table: str, cfg: InferenceConfig, info: RunInfo) -> tuple[str, dict[str, Any]]:
    """DML that removes this night's rows for this survey, so a re-run replaces instead of duplicating."""
    project, _, rest = table.partition(":") if ":" in table else ("", "", table)
    full = f"{project}.{rest}" if project else rest
    sql = f"DELETE FROM `{full}` WHERE DATE({cfg.bigquery.partition_field}) = @run_date AND survey_id = @survey_id"
    return sql, {"run_date": info.run_date.isoformat(), "survey_id": info.survey_id}


def clear_bigquery_night(table: str, cfg: InferenceConfig, info: RunInfo) -> None:
    from google.api_core.exceptions import NotFound
    from google.cloud import bigquery

    sql, params = clear_statement(table, cfg, info)
    project = table.split(":")[0] if ":" in table else None
    client = bigquery.Client(project=project)
    job_config = bigquery.QueryJobConfig(
        query_parameters=[
            bigquery.ScalarQueryParameter("run_date", "DATE", params["run_date"]),
            bigquery.ScalarQueryParameter("survey_id", "STRING", params["survey_id"]),
        ]
    )
    try:
        job = client.query(sql, job_config=job_config)
        job.result()
        log.info(
            "removed %s earlier row(s) of %s for this night from %s", job.num_dml_affected_rows, info.survey_id, table
        )
    except NotFound:
        log.info("BigQuery table %s does not exist yet; it will be created", table)


# ---------------------------------------------------------------- command line


def runtime_choice(text: str) -> str:
    """A ``--*_runtime`` value, refused with argparse's own invalid-choice message."""
    if text not in lite_runtime.RUNTIMES:
        choices = ", ".join(map(repr, lite_runtime.RUNTIMES))
        raise argparse.ArgumentTypeError(f"invalid choice: {text!r} (choose from {choices})")
    return text


CONFIG_FILE = "inference.yaml"
# Flags kept from before --set: each is a dotted key of InferenceConfig.
SHORTCUTS = {
    f"{kind}_runtime": (
        f"{kind}_runtime",
        runtime_choice,
        f"{'|'.join(lite_runtime.RUNTIMES)}: overrides the config's {kind}_runtime "
        f"(auto: the LiteRT copy where the {kind} has one)",
    )
    for kind in ("classifier", "detector")
}
SHORTCUTS["asset_pattern"] = (
    "asset_pattern",
    str,
    "asset and zone from the path under the survey root, e.g. '{asset}/{zone}/...' ({asset}, {zone}, * for a "
    "folder, ... for the rest); photos it does not match get null asset and zone",
)


def build_parser() -> argparse.ArgumentParser:
    parser = cli.ArgumentParser(
        prog="python -m pipelines.batch_inference",
        description="Score a survey archive for rust: CSV/BigQuery rows, error rows, previews and an HTML report.",
    )
    parser.add_argument("--input", help="glob of images, local or gs:// (e.g. 'gs://b/survey/**.jpg')")
    parser.add_argument(
        "--input_list",
        help="text file of image paths, one per line, taken literally (no globbing); relative paths are "
        "relative to the list's folder; # starts a comment; UTF-8, or UTF-16/32 with a byte-order mark; "
        "LF, CRLF or CR line ends; spaces are part of a name",
    )
    add_listing_arguments(parser)
    parser.add_argument(
        "--classifier",
        required=True,
        help="exported classifier model directory, or a model root (training.versions) whose current version is used",
    )
    parser.add_argument(
        "--regions",
        "--detector",
        dest="regions",
        help="exported rust-region model (training.train_segmenter: rust pixels, their regions as boxes, the rusted "
        "area) or, as an option, an SSD box detector (training.train_detector), directory or model root; no boxes "
        "and no rusted area without it. --detector is the older name of this flag",
    )
    parser.add_argument("--classifier_version", help="with a model root: this version instead of the current one")
    parser.add_argument(
        "--regions_version",
        "--detector_version",
        dest="regions_version",
        help="with a model root for --regions: this version instead of the current one",
    )
    parser.add_argument("--output", required=True, help="output prefix; rows go to OUTPUT/date=YYYY-MM-DD/")
    parser.add_argument("--bigquery_table", help="PROJECT:DATASET.TABLE to load result rows into")
    parser.add_argument("--survey_id", help="survey name for every row (default: the input's folder name)")
    parser.add_argument(
        "--skip_processed", help="prefix of earlier outputs: skip images already scored by these models"
    )
    parser.add_argument("--previews", help="directory for JPEG previews of rust images")
    parser.add_argument("--report", help="HTML report file (previews go beside it unless --previews is given)")
    parser.add_argument("--masks", help="directory for each image's rust mask as a PNG (with a rust-region model)")
    add_where_arguments(parser)
    add_arguments(parser, CONFIG_FILE, SHORTCUTS)
    parser.add_argument(
        "--run_date", type=dt.date.fromisoformat, help="night to (re)process, YYYY-MM-DD (default today, UTC)"
    )
    parser.add_argument(
        "--no_wait",
        action="store_true",
        help="submit and return (Dataflow/Flex Template launches); counters are then in the Dataflow console",
    )
    return parser


def add_where_arguments(parser: argparse.ArgumentParser) -> None:
    """Where each photo is (asset and zone) and what its night is compared with (``night_changes``)."""
    parser.add_argument(
        "--asset_map",
        help="CSV with columns image, asset, zone: image a path relative to the survey root, or a bare file name "
        "naming every photo of that name; wins over --asset_pattern",
    )
    parser.add_argument(
        "--previous",
        help="glob of the earlier result CSVs to find what changed against (default: every earlier "
        "OUTPUT/date=DAY/*-results-*.csv); each asset is compared with the last night that holds it",
    )


def add_listing_arguments(parser: argparse.ArgumentParser) -> None:
    """How the launch lists the night's inputs (``transforms.launch_inputs``)."""
    parser.add_argument(
        "--allow_empty",
        action="store_true",
        help="a pattern matching no file, or a list naming none, is an empty night instead of an error",
    )
    parser.add_argument(
        "--follow_links_outside",
        action="store_true",
        help="follow symbolic links out of the pattern's folder (by default such a link is an error row, "
        "link_outside_input: a link to / would list the whole machine)",
    )


def check_locations(args: argparse.Namespace) -> None:
    """Refuse at launch what would otherwise fail (or silently match nothing) on the workers."""
    if not args.input and not args.input_list:
        raise SystemExit("give --input GLOB and/or --input_list FILE")
    if args.input and not listing.has_glob(args.input):
        if not io_utils.exists(args.input):
            raise SystemExit(f"--input {args.input} does not exist")
        if os.path.isdir(args.input) and not args.input.endswith("/"):
            raise SystemExit(
                f"--input {args.input} is a folder: give '{args.input}/*' (its files) or '{args.input}/**'"
            )
    if args.input_list:
        checked = listing.match_literal(args.input_list)
        if isinstance(checked, listing.Problem):
            raise SystemExit(f"--input_list: {checked.detail}")
    if listing.has_glob(args.output):
        raise SystemExit(
            f"--output {args.output}: Beam's file sinks read the output path as a pattern, so it may not hold "
            "'[', '*' or '?'; choose a name without them"
        )
    report_dir = io_utils.dirname(args.report) if args.report else None
    for flag, folder in (("--output", args.output), ("--report", report_dir), ("--previews", args.previews)):
        io_utils.check_writable(folder, flag)
    io_utils.check_writable(args.masks, "--masks")


def parse_job(argv: Sequence[str] | None = None) -> tuple[InferenceJob, list[str], argparse.Namespace]:
    """The command line as one checked job, the Beam flags it leaves to PipelineOptions, and the
    arguments (the launch listing reads ``--allow_empty`` and ``--follow_links_outside``)."""
    args, beam_args = build_parser().parse_known_args(argv)
    cloud_checks.check_storage(
        [args.input, args.input_list, args.output, args.classifier, args.regions, args.skip_processed]
        + [args.report, args.previews, args.masks]
    )
    cloud_checks.check_bigquery(args.bigquery_table)
    resolve_models(args)
    check_locations(args)
    cfg = from_arguments(InferenceConfig, args, CONFIG_FILE, SHORTCUTS)
    try:
        resolver = assets.resolver(assets.survey_root(args.input, args.input_list), cfg.asset_pattern, args.asset_map)
    except (assets.AssetError, FileNotFoundError) as exc:
        raise SystemExit(str(exc) if isinstance(exc, assets.AssetError) else f"--asset_map: {exc}") from exc
    previews_dir = args.previews or (io_utils.join(io_utils.dirname(args.report), "previews") if args.report else None)
    job = InferenceJob(
        config=cfg,
        info=make_run_info(args, cfg),
        classifier_dir=args.classifier,
        output=args.output,
        input=args.input,
        input_list=args.input_list,
        detector_dir=args.regions,
        bigquery_table=args.bigquery_table,
        skip_processed=args.skip_processed,
        previews_dir=previews_dir,
        masks_dir=args.masks,
        report=args.report,
        no_wait=args.no_wait,
        assets=resolver,
        previous=args.previous,
    )
    return job, beam_args, args


def resolve_models(args: argparse.Namespace) -> None:
    """A model root's current (or asked-for) version folder, fixed at launch: a promotion while the
    job runs changes the next night's model, not this one's."""
    for flag in ("classifier", "regions"):
        given, version = getattr(args, flag), getattr(args, f"{flag}_version")
        if given is None:
            if version:
                raise SystemExit(f"--{flag}_version needs --{flag}")
            continue
        try:
            chosen = versions.resolve(given, version)
        except versions.VersionError as exc:
            raise SystemExit(f"--{flag}: {exc}") from exc
        if chosen != given:
            log.info("--%s %s: version %s", flag, given, io_utils.basename(chosen))
        setattr(args, flag, chosen)


def default_survey_id(args: argparse.Namespace) -> str:
    source = args.input or args.input_list
    head = listing.GLOB_CHARS.split(source)[0] if args.input else source
    parts = [p for p in head.replace("\\", "/").rstrip("/").split("/") if p]
    if args.input and not listing.has_glob(source):
        parts = parts[:-1]  # a single file: its folder
    if not args.input:
        return posixpath.splitext(parts[-1])[0] if parts else "survey"
    return parts[-1] if parts else "survey"


def survey_file_stem(survey_id: str) -> str:
    """The survey id made safe for file names, unique per id: where characters had to be replaced
    (``Корпус-7``, ``Палуба-7`` both give ``_-7``), a hash of the id keeps the two nights apart."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", survey_id).strip(".") or "survey"
    if safe == survey_id:
        return safe
    return f"{safe}-{hashlib.sha256(survey_id.encode('utf-8', 'surrogateescape')).hexdigest()[:8]}"


def read_model_metadata(model_dir: str, flag: str, *kinds: str) -> serving.ModelMetadata:
    """metadata.json of ``model_dir``, refused at launch when it holds another kind of model."""
    meta = serving.read_metadata(model_dir)
    if meta.kind not in kinds:
        raise SystemExit(f"--{flag} {model_dir} holds a {meta.kind} model, not a {' or '.join(kinds)}")
    return meta


def make_run_info(args: argparse.Namespace, cfg: InferenceConfig, now: dt.datetime | None = None) -> RunInfo:
    now = now or dt.datetime.now(dt.UTC)
    run_date = args.run_date or now.date()
    processed_at = now if run_date == now.date() else dt.datetime.combine(run_date, dt.time(0), dt.UTC)
    survey_id = args.survey_id or default_survey_id(args)
    classifier = read_model_metadata(args.classifier, "classifier", "classifier")
    detector = read_model_metadata(args.regions, "detector", "detector", "segmenter") if args.regions else None
    partition_dir = io_utils.join(args.output, f"date={run_date.isoformat()}")
    return RunInfo(
        survey_id=survey_id,
        run_date=run_date,
        processed_at=results.format_timestamp(processed_at),
        classifier=classifier,
        detector=detector,
        partition_dir=partition_dir,
        file_stem=survey_file_stem(survey_id),
        staging_dir=io_utils.join(partition_dir, f".staging-{uuid.uuid4().hex[:12]}"),
        classifier_runtime=lite_runtime.resolve_runtime(args.classifier, cfg.classifier_runtime),
        detector_runtime=lite_runtime.resolve_runtime(args.regions, cfg.detector_runtime, "detector")
        if args.regions
        else None,
    )


# ---------------------------------------------------------------- running


def run(argv: Sequence[str] | None = None, test_pipeline: beam.Pipeline | None = None) -> dict[str, Any]:
    """Build and run the job; returns the run summary (counters, output locations). SystemExit when
    an input got no row (``check_accounting``).

    ``test_pipeline``: a pipeline to build into instead of one made from the Beam flags.
    """
    job, beam_args, args = parse_job(argv)
    log_job(job)
    inputs = transforms.launch_inputs(job, args.follow_links_outside, args.allow_empty)
    transforms.write_inputs(steps.inputs_path(job), inputs)
    if job.bigquery_table and job.config.bigquery.clear_before_load:
        clear_bigquery_night(job.bigquery_table, job.config, job.info)
    p = test_pipeline or local_pipeline(beam_args)
    build_pipeline(p, job)
    started = time.monotonic()
    result = p.run()
    if job.no_wait:
        log.info("submitted %s; not waiting (--no_wait)", getattr(result, "job_id", lambda: "")())
        return {"survey_id": job.info.survey_id, "run_date": job.info.run_date.isoformat(), "submitted": True}
    result.wait_until_finish()
    names = [transforms.spec_name(s) for s in inputs]
    return finish(job, read_counters(result), time.monotonic() - started, names)


class _NoParallelismAdvice(logging.Filter):
    """Drops FnApiRunner's advice to use multi_threading when it is given workers in in_memory mode:
    ``local_pipeline`` does that on purpose (multi_threading is what loses elements)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("If direct_num_workers is not equal to 1")


NO_PARALLELISM_ADVICE = _NoParallelismAdvice()


def local_pipeline(beam_args: Sequence[str]) -> beam.Pipeline:
    """The pipeline the Beam flags ask for; without ``--runner``, the in-process engine with one
    worker thread per core whose outputs only the writing thread flushes.

    Beam's embedded gRPC workers (``--direct_running_mode=multi_threading``) also flush every output
    stream from a timer thread each second, which takes the buffer, sends it, then clears it: what
    the worker wrote in between is lost (31 consecutive inputs of a 100,000-line list, in 1 run of 4;
    docs/hostile-inputs.md). The same workers with that timer set to a week never lose an element.
    """
    if any(a == "--runner" or a.startswith("--runner=") for a in beam_args):
        return beam.Pipeline(options=PipelineOptions(beam_args))
    from apache_beam.options.pipeline_options import DirectOptions
    from apache_beam.runners.portability.fn_api_runner import FnApiRunner
    from apache_beam.transforms.environments import EmbeddedPythonGrpcEnvironment

    options = PipelineOptions([LOCAL_WORKERS, *beam_args])
    if options.view_as(DirectOptions).direct_running_mode == "multi_threading":
        log.warning("--direct_running_mode=multi_threading: Beam's timed output flush may drop elements")
    logging.getLogger("apache_beam.runners.portability.fn_api_runner.fn_runner").addFilter(NO_PARALLELISM_ADVICE)
    environment = EmbeddedPythonGrpcEnvironment(data_buffer_time_limit_ms=NO_TIMED_FLUSH_MS)
    return beam.Pipeline(runner=FnApiRunner(default_environment=environment), options=options)


def log_job(job: InferenceJob) -> None:
    info, gate = job.info, job.config.detector_gate
    log.info(
        "survey %s, night %s: classifier %s (%s), detector %s (%s, %s)",
        info.survey_id, info.run_date, info.classifier.version, info.classifier_runtime,
        info.detector.version if info.detector else "none", info.detector_runtime,
        "every image" if gate is None else f"where rust_probability >= {gate}",
    )  # fmt: skip


def read_counters(result: beam.runners.runner.PipelineResult) -> dict[str, int]:
    """This job's counters (every name in COUNTERS, 0 when never incremented, then error_* ones)."""
    counters = {name: 0 for name in COUNTERS}
    for c in result.metrics().query(MetricsFilter().with_namespace(NAMESPACE))["counters"]:
        counters[c.key.metric.name] = counters.get(c.key.metric.name, 0) + int(c.committed or c.attempted or 0)
    return counters


MAX_NAMED = 100  # inputs without a row named in the summary (the message names the first ten)


def check_accounting(info: RunInfo, names: Sequence[str]) -> tuple[dict[str, Any], str | None]:
    """The night's rows as written (results + errors + skipped shards, read back) against the
    inputs listed at launch (``names``): the summary's fields, and the failure message when an
    input has no row or a row names no input (or one twice). Counted from the files, not from the
    pipeline's counters, which only ever saw what reached them."""
    expected = Counter(transforms.row_uri(n) for n in names)
    by_kind = transforms.rows_written(info)
    rows = sum(by_kind.values(), Counter())
    missing, unexpected = expected - rows, rows - expected
    fields: dict[str, Any] = {
        "inputs": sum(expected.values()),
        "rows": {kind: sum(found.values()) for kind, found in by_kind.items()},
        "all_inputs_accounted_for": not missing and not unexpected,
    }
    if fields["all_inputs_accounted_for"]:
        return fields, None
    fields["missing"] = sorted(missing.elements())[:MAX_NAMED]
    fields["unexpected_rows"] = sorted(unexpected.elements())[:MAX_NAMED]
    n_missing, n_extra = sum(missing.values()), sum(unexpected.values())
    message = (
        f"{n_missing} of {fields['inputs']} inputs got no row in {info.partition_dir} (results + errors + skipped = "
        f"{sum(rows.values())}){_first(fields['missing'], n_missing)}"
    )
    if n_extra:
        message += f"; {n_extra} row(s) name no input, or an input twice{_first(fields['unexpected_rows'], n_extra)}"
    return fields, message + f"; the run summary lists up to {MAX_NAMED} of each"


def _first(names: Sequence[str], total: int, shown: int = 10) -> str:
    more = f" and {total - shown} more" if total > shown else ""
    return f": {', '.join(names[:shown])}{more}" if total else ""


def finish(job: InferenceJob, counters: dict[str, int], elapsed: float, names: Sequence[str]) -> dict[str, Any]:
    """Write and log the run summary; SystemExit (after writing it) when an input has no row."""
    info = job.info
    fields, failure = check_accounting(info, names)
    summary = {
        "survey_id": info.survey_id,
        "run_date": info.run_date.isoformat(),
        "processed_at": info.processed_at,
        "classifier_version": info.classifier.version,
        "classifier_runtime": info.classifier_runtime,
        "detector_runtime": info.detector_runtime,
        "detector_version": info.detector.version if info.detector else None,
        "seconds": round(elapsed, 2),
        "counters": counters,
        **fields,
        "results": io_utils.join(info.partition_dir, f"{info.file_stem}-results-*.csv"),
        "errors": io_utils.join(info.partition_dir, f"{info.file_stem}-errors-*.csv"),
        "report": job.report,
        "survey_root": job.assets.root,  # what the next night's changes take this night's photo paths relative to
    }
    if not failure:
        summary["changes"] = night_changes(job)
    summary_path = io_utils.join(info.partition_dir, f"{info.file_stem}-summary.json")
    io_utils.write_text(summary_path, json.dumps(summary, indent=2) + "\n")
    log.info("done in %.1f s: %s", elapsed, ", ".join(f"{k}={v}" for k, v in counters.items()))
    if failure:
        raise SystemExit(f"{failure} ({summary_path})")
    if not names:
        log.warning("no input: %s gave no file (--allow_empty)", job.input or job.input_list)
    return summary


def night_changes(job: InferenceJob) -> dict[str, Any]:
    """After the pipeline: what changed since each asset's last survey (``<survey>-changes.csv``,
    ``TABLE_changes``), then the report re-rendered with the night's rows, changes and review queue.

    A step after the run rather than in the graph: it needs the whole night (every row, against
    every earlier night's), which the graph would gather into one element anyway, and it reads the
    CSVs just written, so it is the same on every runner and can be re-run on its own. The graph
    stays as it was; the report's thumbnails come from the side file the graph wrote
    (``transforms.report_entries_path``), since the driver does not see a Dataflow worker's memory.
    """
    info, cfg = job.info, job.config
    own = survey_changes.NightFiles(info.run_date.isoformat(), info.partition_dir, info.file_stem, ())
    rows = results.read_csv_rows(own.beside("results"))
    errors = [r for p in own.beside("errors") for r in survey_changes.read_csv_dicts(p)]
    skipped = [r for p in own.beside("skipped") for r in survey_changes.read_csv_dicts(p)]
    earlier_files = survey_changes.previous_nights(
        job.output, info.run_date.isoformat(), info.partition_dir, job.previous
    )
    earlier, scored = survey_changes.read_nights(earlier_files)
    changes, compared = survey_changes.survey_changes(
        rows, errors, job.assets.root, earlier, skipped, scored, cfg.changes_grade_margin, cfg.changes_area_margin_pct
    )
    path = io_utils.join(info.partition_dir, f"{info.file_stem}-changes.csv")
    io_utils.write_text(path, survey_changes.changes_csv(changes))
    counts = dict(sorted(Counter(c["change"] for c in changes).items()))
    log.info("changes against %d earlier night file set(s): %s (%s)", len(earlier_files), counts or "none", path)
    out: dict[str, Any] = {"file": path, "rows": len(changes), "by_change": counts, "compared_with": compared}
    if job.bigquery_table:
        loaded = survey_changes.load_bigquery(job.bigquery_table, changes, info.survey_id, info.run_date.isoformat())
        out["bigquery_table"] = survey_changes.changes_table(job.bigquery_table)
        out["bigquery_rows"] = loaded
    if job.report:
        render_final_report(job, rows, changes, bool(compared))
    return out


def render_final_report(job: InferenceJob, rows: Sequence[dict], changes: Sequence[dict], compared: bool) -> None:
    """The report again, now with every row, the changes and the review queue; counts and
    thumbnails as the pipeline wrote them (its side file; without it, the pipeline's report stays)."""
    info = job.info
    side = transforms.report_entries_path(info)
    if not io_utils.exists(side):
        log.warning("%s is missing: the report keeps the pipeline's version, without changes", side)
        return
    stats, entries = transforms.read_report_entries(side)
    queue = selection.select(rows, info.classifier.threshold, job.config.outputs.report_review_items)
    review = [{"image_uri": c.row["image_uri"], "priority": c.priority, "reason": ", ".join(c.reasons)} for c in queue]
    text = report.render_report(
        info.survey_id, stats, entries, job.report, transforms.report_models(info), info.processed_at,
        rows=rows, changes=changes, review=review, compared=compared,
    )  # fmt: skip
    report.write_report(job.report, text)


def output_folders(argv: Sequence[str] | None) -> list[str]:
    """The folders the command line writes into, for naming the one a failed write was for."""
    args = build_parser().parse_known_args(argv)[0]
    return [f for f in (args.output, args.previews, args.masks, args.report and io_utils.dirname(args.report)) if f]


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        summary = run(argv)
    except Exception as exc:  # a full, read-only or forbidden output folder: one line, not a traceback
        if (message := io_utils.write_failure(exc, output_folders(argv))) is None:
            raise
        raise io_utils.OutputNotWritable(message) from None
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
