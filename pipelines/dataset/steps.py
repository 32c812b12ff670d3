"""The dataset pipeline's graph as five composite stages, each a ``beam.PTransform``.

    FindImages -> ValidateImages -> CollapseCopies -> SplitAndShard -> WriteReports

Every stage passes on what it could not use as ``rejects`` and ``manifest`` outputs; ``build_dataset``
flattens them once for ``WriteReports``, so every input ends in a shard or in a row saying why not.
"""

from __future__ import annotations

import logging

import apache_beam as beam

from corrosion.core import paths
from corrosion.core.labels import LabelConfig
from corrosion.data import layout, manifest, stats
from corrosion.data.dataset_config import DatasetConfig
from pipelines.dataset import transforms as T

log = logging.getLogger("pipelines.build_dataset")


class FindImages(beam.PTransform):
    """Input roots -> image tasks, the annotations claiming images, and what was ignored or refused."""

    def __init__(self, output_dir: str, labels: LabelConfig, follow_outside: bool = False) -> None:
        super().__init__()
        self.output_dir = output_dir
        self.labels = labels
        self.follow_outside = follow_outside

    def expand(self, roots):
        listed = roots | "ListFiles" >> beam.ParDo(T.ListRoot(self.output_dir, self.follow_outside)).with_outputs(
            T.REJECTS, T.MANIFEST, main="files"
        )
        planned = (
            listed.files
            | "KeyByUnit" >> beam.Map(T.key_by_unit)
            | "GroupUnits" >> beam.GroupByKey()
            | "PlanUnits"
            >> beam.ParDo(T.PlanUnit(self.labels)).with_outputs(T.ANNOTATIONS, T.REJECTS, T.IGNORED, main="images")
        )
        parsed = planned[T.ANNOTATIONS] | "ParseXml" >> beam.ParDo(T.ParseAnnotation()).with_outputs(
            T.REJECTS, main="claims"
        )
        return {
            "tasks": planned.images,
            "claims": parsed.claims,
            T.IGNORED: planned[T.IGNORED],
            T.REJECTS: (listed[T.REJECTS], planned[T.REJECTS], parsed[T.REJECTS]),
            T.MANIFEST: (listed[T.MANIFEST],),
        }


class ValidateImages(beam.PTransform):
    """Each image with the annotations claiming it -> a validated candidate, or a reject row."""

    def __init__(self, labels: LabelConfig, config: DatasetConfig) -> None:
        super().__init__()
        self.labels = labels
        self.config = config

    def expand(self, found):
        tasks = found["tasks"] | "KeyByPath" >> beam.Map(lambda t: (t.path, t))
        return (
            {"task": tasks, "ann": found["claims"]}
            | "JoinAnnotations" >> beam.CoGroupByKey()
            | "Validate"
            >> beam.ParDo(T.ProcessImage(self.labels, self.config)).with_outputs(
                T.REJECTS, T.MANIFEST, T.EVENTS, main="valid"
            )
        )


class CollapseCopies(beam.PTransform):
    """Files with identical pixels -> one unique image (copies labelled both ways are rejected);
    a copy under one of ``corrections`` carries the labels."""

    def __init__(self, corrections: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.corrections = corrections

    def expand(self, valid):
        return (
            valid
            | "KeyByPixels" >> beam.Map(lambda c: (c.pixel_hash, c))
            | "GroupIdentical" >> beam.GroupByKey()
            | "CollapseIdentical"
            >> beam.ParDo(T.CollapseIdentical(self.corrections)).with_outputs(
                T.REJECTS, T.MANIFEST, T.EVENTS, main="unique"
            )
        )


class SplitAndShard(beam.PTransform):
    """Unique images -> near-duplicate groups, their splits, and the shards written.

    The group join is the one step that sees every (tiny) signature at once. Shards are sized by
    bytes per split first, so each record knows its shard when placed.
    """

    def __init__(self, output_dir: str, config: DatasetConfig, previous_manifest: str | None) -> None:
        super().__init__()
        self.output_dir = output_dir
        self.config = config
        self.previous_manifest = previous_manifest

    def expand(self, unique):
        assignments = (
            unique
            | "Signatures" >> beam.Map(lambda u: u.signature())
            | "AllSignatures" >> beam.combiners.ToList()
            | "GroupAndSplit" >> beam.Map(T.assign_groups, self.config, self.previous_manifest)
        )
        assignments_side = beam.pvalue.AsSingleton(assignments)
        counts = (
            unique
            | "RecordBytes" >> beam.FlatMap(T.record_size, assignments_side)
            | "BytesPerSplit" >> beam.CombinePerKey(sum)
            | "ShardCounts" >> beam.Map(T.shard_counts, self.config.shard_target_mb)
        )
        counts_side = beam.pvalue.AsDict(counts)
        placed = unique | "Place" >> beam.ParDo(T.Place(), assignments_side, counts_side).with_outputs(
            T.REJECTS, T.MANIFEST, T.EVENTS, main="records"
        )
        _ = (
            placed.records
            | "GroupShards" >> beam.GroupByKey()
            | "WriteShards" >> beam.FlatMap(T.write_shard, self.output_dir, counts_side)
            | "ShardsPerSplit" >> beam.GroupByKey()
            | "EmptyShards" >> beam.FlatMap(T.write_missing_shards, self.output_dir, counts_side)
        )
        return {"placed": placed, "assignments": assignments, "shard_counts": counts}


class WriteReports(beam.PTransform):
    """Every stage's rejects, manifest rows and events (flattened once by the caller) -> manifest.csv, rejects.jsonl, stats.json."""

    def __init__(self, output_dir: str, split_names: list[str]) -> None:
        super().__init__()
        self.output_dir = output_dir
        self.split_names = split_names

    def expand(self, outputs):
        rejects, rows = outputs[T.REJECTS], outputs[T.MANIFEST]
        self._write_lines(
            rows | "ManifestCsv" >> beam.Map(lambda r: r.to_csv()), "Manifest", layout.MANIFEST, manifest.header()
        )
        self._write_lines(rejects | "RejectJson" >> beam.Map(lambda r: r.to_json()), "Rejects", layout.REJECTS)
        events = (
            rows | "ManifestEvents" >> beam.FlatMap(stats.manifest_events),
            rejects | "RejectEvents" >> beam.FlatMap(stats.reject_events),
            outputs[T.EVENTS] | "CountEvents" >> beam.Map(lambda e: (e, 1)),
            outputs[T.IGNORED] | "IgnoredEvents" >> beam.Map(lambda f: (stats.ignored_file(), 1)),
        ) | "AllEvents" >> beam.Flatten()
        groups = outputs["assignments"] | "GroupStats" >> beam.Map(T.group_sizes)
        _ = (
            events
            | "SumEvents" >> beam.CombinePerKey(sum)
            | "EventList" >> beam.combiners.ToList()
            | "WriteStats"
            >> beam.Map(
                T.write_stats,
                self.output_dir,
                self.split_names,
                beam.pvalue.AsSingleton(groups),
                beam.pvalue.AsDict(outputs["shard_counts"]),
            )
        )
        _ = outputs[T.IGNORED] | "LogIgnored" >> beam.Map(
            lambda f: log.info("ignored (not an image or annotation): %s", f)
        )
        return beam.pvalue.PDone(outputs[T.IGNORED].pipeline)

    def _write_lines(self, lines, label: str, name: str, header: str | None = None) -> None:
        """One unsharded text file ``name`` (a ``layout`` name) in the output folder."""
        stem, dot, suffix = name.rpartition(".")
        _ = lines | f"Write{label}" >> beam.io.WriteToText(
            paths.join(self.output_dir, stem), dot + suffix, num_shards=1, shard_name_template="", header=header
        )
