"""Score an exported rust-region model on data sets and raw labelled folders, each and pooled.

Photos go through the export's bytes signature (whole photo, squashed to its input, as training
scores them) and, under ``tiled``, through batch inference's tiling and stitching. Every split of
a TFRecord data set, or a raw folder read as the dataset pipeline reads it (``all``), is scored
per source and pooled, and all of them together under ``pooled``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

import numpy as np
import pandas as pd
import tensorflow as tf

from corrosion.core import io_utils
from corrosion.core.labels import NO_RUST, load_labels
from corrosion.core.rejects import Reject
from corrosion.data import layout, schema
from corrosion.data.record import Record
from corrosion.models import serving
from training.common import records, report
from training.common.raw_folder import raw_records
from training.segmenter import metrics
from training.segmenter.config import SegmenterConfig
from training.segmenter.data import SplitData, cell_targets, mask_at

log = logging.getLogger("training.evaluate")

RAW_SPLIT = "all"


def split_records(data_path: str, splits: tuple[str, ...] | None, rejects: list[Reject]) -> dict[str, list[Record]]:
    """Records per TFRecord split, or one raw folder as ``all`` (refusals into ``rejects``)."""
    present = records.available_splits(data_path)
    if present:
        chosen = [s for s in present if splits is None or s in splits]
        return {
            s: [schema.from_example(r.numpy()) for r in tf.data.TFRecordDataset(records.shard_files(data_path, s))]
            for s in chosen
        }
    return {RAW_SPLIT: [record for _, record in raw_records(data_path, load_labels(), rejects)]}


def as_split(recs: list[Record], config: SegmenterConfig) -> SplitData:
    """The photos with pixel facts, as training holds them (without features)."""
    out = SplitData({}, np.zeros(0), np.zeros(0), [], [], [], [], [])
    for r in recs:
        mask = mask_at(r.mask, config.input_size) if r.mask is not None else None
        boxes = np.array([b.normalised(r.width, r.height) for b in r.boxes], np.float32).reshape(-1, 4)
        facts = cell_targets(mask, boxes, r.image_class == NO_RUST and mask is None, config)
        if facts is None:
            out.left_out += 1
            continue
        out.kinds.append(facts[2])
        out.sources.append(layout.source_folder(r.source_id))
        out.names.append(r.source_id or r.filename)
        out.truth.append(mask)
        out.boxes.append(boxes)
        out.sample_encoded.append(r.encoded)
        out.keys.append(r.sha256)
    return out


def rust_maps(model_dir: str, encoded: list[bytes], batch_size: int = 16) -> np.ndarray:
    signature = tf.saved_model.load(model_dir).signatures[serving.BYTES_SIGNATURE]
    maps = [
        signature(image_bytes=tf.constant(encoded[i : i + batch_size]))[serving.SEGMENTER_OUTPUT].numpy()
        for i in range(0, len(encoded), batch_size)
    ]
    return np.concatenate(maps)


def tiled_rust_maps(model_dir: str, encoded: list[bytes], size: int) -> tuple[np.ndarray, int]:
    """Each photo scored the way batch inference scores it (``configs/inference.yaml``'s tiles, maps
    stitched: ``pipelines.inference.handlers.stitched_rust_map``, the very code), resized to the
    evaluation grid; and how many photos took more than one view."""
    from corrosion.core.config import config_path, load_config
    from corrosion.imaging import images
    from pipelines.inference.config import InferenceConfig
    from pipelines.inference.handlers import ImageRecord, SavedSegmenter, stitched_rust_map

    config = load_config(InferenceConfig, config_path("inference.yaml"))
    meta, model = serving.read_metadata(model_dir), SavedSegmenter(model_dir)
    out, tiled = np.zeros((len(encoded), size, size), np.float32), 0
    for i, data in enumerate(encoded):
        info = images.probe(data)
        record = ImageRecord(f"photo-{i}", "", info.width, info.height, data)
        prob, views, _, _ = stitched_rust_map(model, record, meta, config)
        tiled += views > 1
        out[i] = tf.image.resize(prob[..., None], (size, size), method="bilinear", antialias=True).numpy()[..., 0]
    return out, tiled


def _pooled(scored: list[tuple[pd.DataFrame, list]]) -> dict:
    """All scored splits' photos together (the per-photo tables and box results concatenated)."""
    table = pd.concat([t for t, _ in scored], ignore_index=True)
    return metrics.summarise(table, [b for _, boxes in scored for b in boxes])[metrics.POOLED]


def evaluate_segmenter(
    model_dir: str,
    data_paths: list[str],
    output_dir: str,
    splits: tuple[str, ...] | None = None,
    maps: Callable[[list[bytes]], np.ndarray] | None = None,
) -> dict:
    """metrics.json in ``output_dir``: per data path and split (per source and pooled), then all pooled.

    A segmenter is scored twice: on the whole photo squashed to its input (as training scores it)
    and, under ``tiled``, the way batch inference scores it (tiles stitched). ``maps`` scores
    another model's rust maps the same way (a detector's box union at its shipped
    threshold: ``training.detector.evaluate.box_union_maps``), thresholded at 0.5.
    """
    meta = serving.read_metadata(model_dir)
    config = SegmenterConfig(input_size=meta.input_size)
    settings = (
        config.input_size,
        meta.threshold if maps is None else 0.5,
        meta.extra.get("region_merge_radius", 0.02),
        meta.extra.get("min_region_area", 0.002),
    )
    views = {"data": maps or (lambda encoded: rust_maps(model_dir, encoded))}
    if maps is None:
        views["tiled"] = lambda encoded: tiled_rust_maps(model_dir, encoded, config.input_size)
    out: dict = {"kind": meta.kind, "model_version": meta.version, "threshold": settings[1]}
    out |= {view: {} for view in views}
    scored: dict[str, list] = {view: [] for view in views}  # per view: (photo table, box results) per split
    rejects: list[Reject] = []
    for path in data_paths:
        for split, recs in split_records(path, splits, rejects).items():
            data = as_split(recs, config)
            for view, fn in views.items():
                out[view].setdefault(path, {})[split] = _score_split(fn, data, settings, scored[view])
            log.info("%s %s: %s", path, split, _headline(out["data"][path][split]))
    if not scored["data"]:
        raise records.DatasetError(f"no photo with rust masks, boxes or no_rust labels in {data_paths}")
    if len(scored["data"]) > 1:
        out[metrics.POOLED] = _pooled(scored["data"])
        if "tiled" in views:
            out["tiled"][metrics.POOLED] = _pooled(scored["tiled"])
    out["rejects"] = [{"path": r.path, "reason": r.reason, "detail": r.detail} for r in rejects]
    io_utils.make_dirs(output_dir)
    io_utils.write_text(io_utils.join(output_dir, report.METRICS_FILE), json.dumps(out, indent=2) + "\n")
    return out


def _score_split(fn: Callable, data: SplitData, settings: tuple, scored: list) -> dict:
    """One split's figures from ``fn``'s rust maps (a tiled view also says how many photos it cut);
    the split's photo table and box results are appended to ``scored`` for pooling."""
    if not data.kinds:
        return {"photos": 0, "left_out": data.left_out}
    found = fn(data.sample_encoded)
    probs, n_tiled = found if isinstance(found, tuple) else (found, None)
    table, boxes = metrics.photo_table(probs, data, *settings)
    scored.append((table, boxes))
    extra = {"left_out": data.left_out} | ({} if n_tiled is None else {"photos_tiled": n_tiled})
    return metrics.summarise(table, boxes) | extra


def _headline(figures: dict) -> dict:
    pooled = figures.get(metrics.POOLED, {})
    return {k: pooled.get(k) for k in ("pixel_f1", "rusted_pct_mae", "AP50")}
