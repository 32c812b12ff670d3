"""Labelled photos -> validated, de-duplicated, leak-free, sharded TFRecords (Apache Beam).

    python -m pipelines.build_dataset --input DIR [--input DIR2 ...] --output_dir OUT \
        [--config configs/dataset.yaml] [--set split.salt=v2 ...] [--previous_manifest OLD/manifest.csv] [Beam flags]

Inputs and output may be local folders or gs:// prefixes. Writes to OUT:
``{split}-NNNNN-of-MMMMM.tfrecord`` shards, ``label_map.pbtxt``, ``manifest.csv`` (one row per
input image file), ``rejects.jsonl`` (every unusable input and dropped box, with its reason) and
``stats.json``. Per-image work runs in Beam transforms; only the near-duplicate group/split join
sees all (tiny) image signatures at once.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

import apache_beam as beam
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions, SetupOptions

from corrosion import cli
from corrosion.core import cloud_checks, io_utils, listing, paths
from corrosion.core.config import add_arguments, from_arguments
from corrosion.data.dataset_config import DatasetConfig
from pipelines.dataset import steps
from pipelines.dataset import transforms as T
from pipelines.local_runner import with_local_default

log = logging.getLogger("pipelines.build_dataset")


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, list[str]]:
    parser = cli.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", action="append", required=True, help="input folder (local or gs://); repeatable")
    parser.add_argument(
        "--corrections",
        action="append",
        default=[],
        help="folder of reviewed labels (e.g. a corrected review queue); its copy of a photo replaces every "
        "other copy's labels; repeatable",
    )
    parser.add_argument("--output_dir", required=True, help="output folder (local or gs://)")
    parser.add_argument(
        "--follow_links_outside",
        action="store_true",
        help="follow symbolic links out of the input folders (by default each is a reject, link_outside_input: "
        "a link to / would list the whole machine)",
    )
    add_arguments(parser, "dataset.yaml", {})
    parser.add_argument(
        "--previous_manifest", default=None, help="manifest.csv of an earlier build: groups seen there keep their split"
    )
    return parser.parse_known_args(argv)


def build(
    p: beam.Pipeline,
    inputs: list[str],
    output_dir: str,
    config: DatasetConfig,
    previous_manifest: str | None = None,
    corrections: tuple[str, ...] = (),
    follow_outside: bool = False,
) -> None:
    """The pipeline graph (separate from running it, so tests can run it on any runner)."""
    labels = config.load_labels()
    find = steps.FindImages(output_dir, labels, follow_outside)
    found = p | "Inputs" >> beam.Create(inputs) | "FindImages" >> find
    validated = found | "ValidateImages" >> steps.ValidateImages(labels, config)
    unique = validated.valid | "CollapseCopies" >> steps.CollapseCopies(corrections)
    split = unique.unique | "SplitAndShard" >> steps.SplitAndShard(output_dir, config, previous_manifest)
    stages = (validated, unique, split["placed"])
    flattened = {
        T.REJECTS: (*found[T.REJECTS], *(s[T.REJECTS] for s in stages)) | "AllRejects" >> beam.Flatten(),
        T.MANIFEST: (*found[T.MANIFEST], *(s[T.MANIFEST] for s in stages)) | "AllManifest" >> beam.Flatten(),
        T.EVENTS: tuple(s[T.EVENTS] for s in stages) | "AllStepEvents" >> beam.Flatten(),
    }
    _ = {
        **flattened,
        T.IGNORED: found[T.IGNORED],
        "assignments": split["assignments"],
        "shard_counts": split["shard_counts"],
    } | "WriteReports" >> steps.WriteReports(output_dir, list(config.split.fractions))


def run(argv: list[str] | None = None) -> dict:
    """Build the data set; returns the stats it wrote."""
    args, beam_args = parse_args(argv)
    config = from_arguments(DatasetConfig, args, "dataset.yaml", {})
    corrections = tuple(paths.normalise(c) for c in args.corrections)
    inputs = [paths.normalise(i) for i in args.input] + list(corrections)
    for i in inputs:
        if not io_utils.is_remote(i) and not io_utils.exists(i):
            raise SystemExit(f"input folder {i} does not exist")
    for i in inputs:
        for j in inputs:
            if i is not j and paths.is_within(i, j):
                raise SystemExit(f"input {i} lies inside input {j} (or is given twice): give each folder once")
    output_dir = paths.normalise(args.output_dir)
    if listing.has_glob(output_dir):
        raise SystemExit(
            f"--output_dir {output_dir}: Beam's file sinks read the output path as a pattern, so it may not hold "
            "'[', '*' or '?'; choose a folder name without them"
        )
    cloud_checks.check_storage([*inputs, output_dir, args.previous_manifest])
    io_utils.check_writable(output_dir, "--output_dir")
    labels = config.load_labels()
    io_utils.write_text(paths.join(output_dir, "label_map.pbtxt"), labels.label_map_pbtxt())
    previous = paths.normalise(args.previous_manifest) if args.previous_manifest else None
    if previous and not io_utils.exists(previous):
        raise SystemExit(f"--previous_manifest {previous} does not exist")
    options = PipelineOptions(with_local_default(beam_args))
    options.view_as(SetupOptions).save_main_session = False
    log.info("building data set from %s into %s", ", ".join(inputs), output_dir)
    pipeline = beam.Pipeline(options=options)
    build(pipeline, inputs, output_dir, config, previous, corrections, args.follow_links_outside)
    result = pipeline.run()
    result.wait_until_finish()
    _log_counters(result)
    stats = json.loads(io_utils.read_text(paths.join(output_dir, "stats.json")))
    _remove_stale_shards(output_dir, stats["shards"])
    if stats["records_total"] == 0:
        log.warning(
            "no records written: no usable labelled image under %s; rejects.jsonl says why for each input",
            ", ".join(inputs),
        )
    log.info(
        "done: %d records %s, %d duplicates collapsed, %d near-duplicate groups, rejects %s",
        stats["records_total"],
        {s: sum(v.values()) for s, v in stats["records"].items()},
        stats["duplicates_collapsed"],
        stats["near_duplicate_groups"],
        stats["rejects_by_reason"],
    )
    return stats


def _log_counters(result) -> None:
    try:
        counters = result.metrics().query(MetricsFilter().with_namespace("dataset"))["counters"]
    except Exception as exc:  # some runners cannot report metrics; the stats file has the counts anyway
        log.info("pipeline metrics unavailable (%s)", exc)
        return
    summary = {c.key.metric.name: c.result for c in counters}
    log.info("pipeline counters: %s", ", ".join(f"{k}={v}" for k, v in sorted(summary.items())))


def _remove_stale_shards(output_dir: str, shard_counts: dict[str, int]) -> None:
    """Shards of an earlier build that this one did not rewrite (another -of-N, a split now empty).

    New shards replace old ones of the same name atomically, so readers of a data set being rebuilt
    see either the old or the new file; only then are the leftovers removed.
    """
    from apache_beam.io.filesystems import FileSystems

    current = {T.shard_path(output_dir, s, i, n) for s, n in shard_counts.items() for i in range(n)}
    found = io_utils.matching(paths.join(output_dir, "*.tfrecord*"))
    stale = [p for p in found if paths.normalise(p) not in current]
    if stale:
        log.info("removing %d shards left by an earlier build in %s", len(stale), output_dir)
        FileSystems.delete(stale)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        stats = run(argv)
    except Exception as exc:  # a full, read-only or forbidden output folder: one line, not a traceback
        output_dir = parse_args(argv)[0].output_dir
        if (message := io_utils.write_failure(exc, [paths.normalise(output_dir)])) is None:
            raise
        raise io_utils.OutputNotWritable(message) from None
    print(
        json.dumps(
            {
                k: stats[k]
                for k in (
                    "records",
                    "records_total",
                    "duplicates_collapsed",
                    "near_duplicate_groups",
                    "rejects_by_reason",
                    "boxes",
                )
            },
            indent=1,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
