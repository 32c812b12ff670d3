"""Beam steps of the dataset pipeline; each wraps a plain function from ``corrosion/``.

Element types are small frozen dataclasses so every step pickles for DirectRunner
multi-processing and Dataflow alike.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from dataclasses import dataclass, replace

import apache_beam as beam
from apache_beam.metrics import Metrics

from corrosion.core import io_utils, paths
from corrosion.core.labels import LabelConfig
from corrosion.core.rejects import ANNOTATION, DUPLICATES, IMAGE, Reject
from corrosion.data import decodable, dedup, discovery, layout, manifest, schema, splits, stats
from corrosion.data.dataset_config import DatasetConfig
from corrosion.data.manifest import DUPLICATE, KEPT, REJECTED, ManifestRow
from corrosion.data.record import Record
from corrosion.data.validate import ValidationError
from corrosion.imaging import images

log = logging.getLogger("pipelines.build_dataset")

REJECTS = "rejects"
MANIFEST = "manifest"
EVENTS = "events"
ANNOTATIONS = "annotations"
IGNORED = "ignored"


@dataclass(frozen=True)
class Candidate:
    """A validated image file: its record and what duplicate detection needs."""

    path: str
    sha256: str
    pixel_hash: str
    dhash: int
    thumb: bytes
    record: Record
    boxes_known: bool
    annotation: str
    source: str
    source_split: str | None
    origin: str | None = None


@dataclass(frozen=True)
class Unique:
    """One distinct image (identical copies collapsed) and the copies that collapsed into it."""

    rep: Candidate
    copies: tuple[Candidate, ...]  # the other files, records dropped

    def signature(self) -> dedup.Signature:
        members = (self.rep, *self.copies)
        return dedup.Signature(
            key=self.rep.pixel_hash,
            shas=tuple(sorted({m.sha256 for m in members})),
            dhash=self.rep.dhash,
            thumb=self.rep.thumb,
            image_class=self.rep.record.image_class,
            source_splits=tuple(sorted({m.source_split for m in members if m.source_split})),
            origins=tuple(sorted({m.origin for m in members if m.origin})),
            stratum=dedup.stratum(self.rep.source, self.rep.record),
        )


def _reject_row(reject: Reject, sha: str = "", annotation: str = "", source: str = "") -> ManifestRow:
    return ManifestRow(reject.path, sha, REJECTED, reject.reason, annotation=annotation, source=source)


# ---------------------------------------------------------------- discovery


class ListRoot(beam.DoFn):
    """(root, file) for every readable file under an input root; names that are no readable file
    (dangling symlinks, FIFOs, non-UTF-8 names, a loop, a link out of the root unless
    ``follow_outside``) become reject rows, and a manifest row when named like an image. The data
    set's own output folder, when inside the root, is not listed."""

    def __init__(self, output_dir: str, follow_outside: bool = False) -> None:
        self.output_dir = output_dir
        self.follow_outside = follow_outside

    def process(self, root: str):
        files, problems = discovery.list_inputs(root, (self.output_dir,), self.follow_outside)
        log.info("found %d files under %s (%d unreadable names)", len(files), root, len(problems))
        Metrics.counter("dataset", "files_listed").inc(len(files) + len(problems))
        for f in files:
            yield root, f
        for reject in problems:
            yield beam.pvalue.TaggedOutput(REJECTS, reject)
            if paths.is_image(reject.path):
                yield beam.pvalue.TaggedOutput(MANIFEST, _reject_row(reject, source=discovery.source_name(root)))


def key_by_unit(root_file: tuple[str, str]) -> tuple[tuple[str, str], str]:
    root, f = root_file
    return (root, discovery.unit_of(f)), f


class PlanUnit(beam.DoFn):
    """A folder's listing -> image tasks, annotation tasks, listing rejects, ignored files."""

    def __init__(self, labels: LabelConfig) -> None:
        self.labels = labels

    def process(self, element):
        (root, unit), files = element
        plan = discovery.plan_unit(root, unit, list(files), self.labels)
        for task in plan.images:
            yield task
        for task in plan.annotations:
            yield beam.pvalue.TaggedOutput(ANNOTATIONS, task)
        for r in plan.rejects:
            yield beam.pvalue.TaggedOutput(REJECTS, r)
        for f in plan.ignored:
            yield beam.pvalue.TaggedOutput(IGNORED, f)


class ParseAnnotation(beam.DoFn):
    """An annotation file (VOC XML, LabelMe or COCO JSON) -> (image path, ParsedAnnotation) per image
    it claims; a refused file or entry also gives a reject row."""

    def process(self, task: discovery.AnnotationTask):
        Metrics.counter("dataset", "annotations_parsed").inc()
        for image, parsed in discovery.parse_annotations(task):
            if parsed.error is not None:
                Metrics.counter("dataset", "annotations_rejected").inc()
                yield beam.pvalue.TaggedOutput(REJECTS, parsed.error)
            if image is not None:
                yield image, parsed


# ---------------------------------------------------------------- per image


class ProcessImage(beam.DoFn):
    """Read, hash, label, decode and validate one image; compute its duplicate signatures."""

    def __init__(self, labels: LabelConfig, config: DatasetConfig) -> None:
        self.labels = labels
        self.config = config
        self.read = Metrics.counter("dataset", "images_read")
        self.valid = Metrics.counter("dataset", "images_valid")
        self.rejected = Metrics.counter("dataset", "images_rejected")
        self.bytes_read = Metrics.counter("dataset", "bytes_read")

    def setup(self) -> None:
        self.count = 0
        self.started = time.monotonic()

    def process(self, element):
        image_path, grouped = element
        tasks, claims = list(grouped["task"]), list(grouped["ann"])
        if not tasks:  # an XML naming a file that is not an image we listed
            for c in claims:
                if c.error is None:
                    yield beam.pvalue.TaggedOutput(
                        REJECTS,
                        Reject(c.annotation_path, ANNOTATION, "missing_image", f"{image_path} is not an image file"),
                    )
            return
        task = tasks[0]
        yield from self._process(task, claims)
        self.count += 1
        if self.count % self.config.progress_every == 0:
            rate = self.count / max(time.monotonic() - self.started, 1e-9)
            log.info("validated %d images on this worker (%.1f images/s)", self.count, rate)

    def _process(self, task: discovery.ImageTask, claims):
        self.read.inc()
        try:
            data = io_utils.read_bytes(task.path, self.config.validation.max_file_bytes)
        except OSError as exc:
            reason = io_utils.read_error_reason(exc)
            yield from self._reject(Reject(task.path, IMAGE, reason, f"{task.path}: cannot read ({exc})"), task)
            return
        self.bytes_read.inc(len(data))
        sha = hashlib.sha256(data).hexdigest()
        labelling = discovery.label_image(
            task, claims, self.labels, self.config.missing_annotation_is_negative, data=data
        )
        for r in labelling.rejects:
            yield beam.pvalue.TaggedOutput(REJECTS, r)
        annotation = labelling.labelled.annotation_path if labelling.labelled else (task.label_path or "")
        if labelling.labelled is None:
            # a broken image is reported as broken even when it also lacks a label
            reject = labelling.image_reject
            try:
                images.decode(data, task.path, self.config.validation.max_pixels)
            except images.ImageError as exc:
                reject = Reject(task.path, IMAGE, exc.reason, str(exc))
            yield from self._reject(reject, task, sha, claims)
            return
        source_id = f"{task.source}/{paths.relative(task.path, task.root)}"
        try:
            result = decodable.validate(
                labelling.labelled, data, self.labels, self.config, sha256=sha, source_id=source_id
            )
        except ValidationError as exc:
            yield from self._reject(exc.to_reject(), task, sha, claims)
            return
        for fix in result.fixes:
            yield beam.pvalue.TaggedOutput(EVENTS, stats.fix(fix))
        for note in labelling.labelled.notes:
            yield beam.pvalue.TaggedOutput(EVENTS, stats.note(note))
        for dropped in result.dropped_boxes:
            yield beam.pvalue.TaggedOutput(REJECTS, dropped)
        cfg = self.config.dedup
        self.valid.inc()
        pixel_hash, dhash, thumb = dedup.fingerprints(result.image, cfg.hash_size, cfg.thumb_size)
        yield Candidate(
            path=task.path,
            sha256=sha,
            pixel_hash=pixel_hash,
            dhash=dhash,
            thumb=thumb,
            record=result.record,
            boxes_known=labelling.labelled.boxes is not None,
            annotation=annotation or "",
            source=task.source,
            source_split=task.source_split,
            origin=dedup.origin_of(paths.stem(task.path), task.source, cfg.origin_patterns),
        )

    def _reject(self, reject: Reject, task, sha: str = "", claims=()):
        self.rejected.inc()
        annotation = next((c.annotation_path for c in claims), task.label_path or "")
        yield beam.pvalue.TaggedOutput(REJECTS, reject)
        yield beam.pvalue.TaggedOutput(MANIFEST, _reject_row(reject, sha, annotation, task.source))


# ---------------------------------------------------------------- duplicates and splits


class CollapseIdentical(beam.DoFn):
    """Identical pixels -> one Unique (a correction wins, then boxes); copies labelled rust and no_rust
    are all rejected, unless a correction settles it."""

    def __init__(self, corrections: tuple[str, ...] = ()) -> None:
        self._corrections = corrections

    def process(self, element):
        _, candidates = element
        candidates = sorted(candidates, key=lambda c: c.path)
        copies = [
            dedup.Copy(
                c.path,
                c.record.image_class,
                len(c.record.boxes),
                c.boxes_known,
                c.record.mask is not None,
                corrected=any(paths.is_within(c.path, root) for root in self._corrections),
            )
            for c in candidates
        ]
        rep_copy, conflict = dedup.pick_representative(copies)
        if conflict:
            Metrics.counter("dataset", "identical_conflicts").inc()
            for c in candidates:
                reject = Reject(c.path, DUPLICATES, "label_conflict", conflict)
                yield beam.pvalue.TaggedOutput(REJECTS, reject)
                yield beam.pvalue.TaggedOutput(MANIFEST, _reject_row(reject, c.sha256, c.annotation, c.source))
            return
        rep = next(c for c in candidates if c.path == rep_copy.path)
        if rep_copy.corrected and len(candidates) > 1:
            yield beam.pvalue.TaggedOutput(EVENTS, stats.note("labels_replaced_by_a_correction"))
        others = tuple(replace(c, thumb=b"", record=_stub(c.record)) for c in candidates if c.path != rep.path)
        rep_boxes = rep.record.boxes
        if any(len(o.record.boxes) and o.record.boxes != rep_boxes for o in others):
            yield beam.pvalue.TaggedOutput(EVENTS, stats.note("identical_copies_with_different_boxes"))
        yield Unique(rep, others)


def _stub(record: Record) -> Record:
    """The record without its pixels: duplicates only need their label facts in the manifest."""
    return replace(record, encoded=b"", mask=None)


def assign_groups(
    signatures: list[dedup.Signature], config: DatasetConfig, previous_manifest: str | None = None
) -> dict[str, splits.Assignment]:
    """The small global join: near-duplicate groups and their splits, keyed by unique-image key."""
    started = time.monotonic()
    groups = dedup.near_duplicate_groups(signatures, config.dedup)
    previous = manifest.previous_splits(previous_manifest)
    result = splits.assign(groups, config.split, config.dedup.reject_near_duplicate_conflicts, previous)
    multi = sum(1 for g in groups if len(g) > 1)
    log.info(
        "grouped %d unique images into %d groups (%d near-duplicate groups) in %.1f s",
        len(signatures),
        len(groups),
        multi,
        time.monotonic() - started,
    )
    return result


class Place(beam.DoFn):
    """Give each unique image its group, split and shard: ((split, shard), (sha256, record)) + manifest rows."""

    def process(self, unique: Unique, assignments: dict[str, splits.Assignment], counts: dict[str, int]):
        a = assignments[unique.rep.pixel_hash]
        group = a.group[:16]
        members = (unique.rep, *unique.copies)
        if a.rejected:
            Metrics.counter("dataset", "near_duplicate_conflicts").inc()
            for c in members:
                reject = Reject(c.path, DUPLICATES, "near_duplicate_label_conflict", f"{c.path}: {a.rejected}")
                yield beam.pvalue.TaggedOutput(REJECTS, reject)
                yield beam.pvalue.TaggedOutput(MANIFEST, _reject_row(reject, c.sha256, c.annotation, c.source))
            return
        rec = unique.rep.record
        if a.size > 1:
            yield beam.pvalue.TaggedOutput(EVENTS, stats.in_near_duplicate_group(a.split))
        yield beam.pvalue.TaggedOutput(EVENTS, stats.record_stratum(a.split, dedup.stratum(unique.rep.source, rec)))
        for c in members:
            dup = c is not unique.rep
            yield beam.pvalue.TaggedOutput(
                MANIFEST,
                ManifestRow(
                    c.path,
                    c.sha256,
                    DUPLICATE if dup else KEPT,
                    "",
                    group,
                    a.split,
                    rec.image_class,
                    len(rec.boxes),
                    rec.width,
                    rec.height,
                    unique.rep.path if dup else "",
                    c.annotation,
                    c.source,
                ),
            )
        Metrics.counter("dataset", "records_kept").inc()
        # deterministic proto serialisation: reruns and runners give byte-identical shards
        yield shard_key((a.split, rec.sha256, schema.to_example(rec).SerializeToString(deterministic=True)), counts)


RECORD_OVERHEAD = 512  # bytes a record adds to its encoded image (features, boxes), for shard sizing


def record_size(unique: Unique, assignments: dict[str, splits.Assignment]):
    """(split, approximate record bytes) of a unique image that will be written."""
    a = assignments[unique.rep.pixel_hash]
    if not a.rejected:
        yield a.split, len(unique.rep.record.encoded) + RECORD_OVERHEAD


# ---------------------------------------------------------------- shards


def shard_counts(split_bytes: tuple[str, int], target_mb: float) -> tuple[str, int]:
    split, total = split_bytes
    return split, max(1, math.ceil(total / (target_mb * 1e6)))


def shard_key(element: tuple[str, str, bytes], counts: dict[str, int]):
    split, sha, data = element
    return (split, int(sha[:12], 16) % counts[split]), (sha, data)


def shard_path(output_dir: str, split: str, index: int, count: int) -> str:
    return paths.join(output_dir, f"{split}-{index:05d}-of-{count:05d}.tfrecord")


def _write_atomically(path: str, records: list[bytes]) -> None:
    """Write under a temporary name, then rename: a reader never sees a half-written shard.

    Written through Beam's FileSystems with Beam's own TFRecord framing (what ``WriteToTFRecord``
    writes), not ``tf.io.TFRecordWriter``: TensorFlow's gs:// client is a second, separately
    configured path to storage (it ignores ``STORAGE_EMULATOR_HOST``, for one).
    """
    import uuid

    from apache_beam.io.filesystems import FileSystems
    from apache_beam.io.tfrecordio import _TFRecordUtil

    tmp = f"{path}.incomplete-{uuid.uuid4().hex[:8]}"
    with FileSystems.create(tmp, compression_type="uncompressed") as handle:
        for data in records:
            _TFRecordUtil.write_record(handle, data)
    if FileSystems.exists(path):
        FileSystems.delete([path])
    FileSystems.rename([tmp], [path])


def write_shard(element, output_dir: str, counts: dict[str, int]):
    """Write one shard (records sorted by sha256, so reruns give identical files)."""
    (split, index), records = element
    records = sorted(records)
    path = shard_path(output_dir, split, index, counts[split])
    _write_atomically(path, [data for _, data in records])
    log.info("wrote %s (%d records)", path, len(records))
    Metrics.counter("dataset", "shards_written").inc()
    yield split, index


def write_missing_shards(element, output_dir: str, counts: dict[str, int]):
    """Empty shards for indices no record hashed to, so ``-of-N`` always means N files."""
    split, written = element
    for index in sorted(set(range(counts[split])) - set(written)):
        _write_atomically(shard_path(output_dir, split, index, counts[split]), [])
    yield split


# ---------------------------------------------------------------- stats


def write_stats(counts, output_dir: str, split_names: list[str], groups: dict, shard_counts_: dict) -> None:
    built = stats.build(list(counts), split_names, {**groups, "shards": dict(shard_counts_)})
    io_utils.write_text(paths.join(output_dir, layout.STATS), json.dumps(built, indent=2, sort_keys=True) + "\n")


def group_sizes(assignments: dict[str, splits.Assignment]) -> dict[str, int]:
    """``groups`` and ``near_duplicate_groups`` of the split assignment, for stats.json."""
    return stats.group_counts((a.group, a.size) for a in assignments.values())
