"""Leave one source out: how the rust-region recipe does on a structure type it has never seen.

For each region source (bridges, ballast tanks, web photos, ...), the decoder is trained on the
cached features of every other source's training photos, stopped and thresholded on every other
source's validation photos, and scored on *all* of the held-out source's photos (train,
validation and test: none of them was seen). Mean and worst over the sources are the figures a
customer's first survey of a new asset class should expect, so they choose between recipes
(``docs/segmenter.md``); the usual validation split is reported beside them.

The feature standardisation (a per-channel mean and variance over the first training photos) is
shared by every fold: it is measured on photos that may include the held-out source's, the one
thing a fold sees of it (no label).
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
import time

import keras
import numpy as np
import pandas as pd

from corrosion.data import layout
from training.segmenter import metrics
from training.segmenter.config import SegmenterConfig
from training.segmenter.data import REGIONS, SplitData
from training.segmenter.model import FEATURE_NAMES, build_decoder
from training.segmenter.subsets import select, where_source

log = logging.getLogger("training.leave_one_source_out")

MIN_REGION_PHOTOS = 50  # a source with fewer region photos is too small to score on its own
FIGURES = ("pixel_f1", "pixel_iou", "rusted_pct_mae", "rusted_pct_bias", "d610_within_1", "region_photos")


def originals(data: SplitData) -> int:
    """How many of the split's rows are photos (mirrored and augmented views follow them)."""
    return len(data) if data.originals is None else data.originals


def region_sources(splits: dict[str, SplitData], minimum: int = MIN_REGION_PHOTOS) -> list[str]:
    """Sources with at least ``minimum`` region photos over all splits, largest first."""
    counts: dict[str, int] = {}
    for data in splits.values():
        for i in range(originals(data)):
            if data.kinds[i] == REGIONS:
                counts[data.sources[i]] = counts.get(data.sources[i], 0) + 1
    return [s for s, n in sorted(counts.items(), key=lambda kv: -kv[1]) if n >= minimum]


def fold(splits: dict[str, SplitData], held_out: str, config: SegmenterConfig) -> dict:
    """Train without ``held_out``, score on all of its photos; the held-out figures and the fold's own
    validation figures (the other sources)."""
    from training.segmenter.train import fit, predict

    started = time.time()
    train = select(splits[layout.TRAIN], where_source(splits[layout.TRAIN], lambda s: s != held_out))
    val = select(splits[layout.VALIDATION], where_source(splits[layout.VALIDATION], lambda s: s != held_out))
    keras.utils.set_random_seed(config.seed)
    decoder = build_decoder(config, {n: train.features[n].shape[1:] for n in FEATURE_NAMES})
    with tempfile.TemporaryDirectory(prefix="loso-") as logs:
        history = fit(decoder, train, val, config, logs)
    val_probs = predict(decoder, val, config.batch_size)
    threshold, _ = metrics.choose_threshold(val_probs, val, config.input_size)
    tables, boxes = [], []
    for data in splits.values():
        rows = where_source(data, lambda s: s == held_out, originals(data))
        if len(rows):
            part = select(data, rows)
            table, found = _photo_table(predict(decoder, part, config.batch_size), part, config, threshold)
            tables.append(table)
            boxes += found
    table = pd.concat(tables, ignore_index=True)
    held = metrics.summarise(table, boxes)[metrics.POOLED]
    own = metrics.summarise(*_photo_table(val_probs, val, config, threshold))[metrics.POOLED]
    result = {
        "held_out": held_out,
        "threshold": threshold,
        "epochs": len(history["loss"]),
        "seconds": round(time.time() - started, 1),
        "training_views": len(train),
        "held_out_figures": {k: held.get(k) for k in FIGURES},
        "validation_without_it": {k: own.get(k) for k in FIGURES},
    }
    log.info("held out %s: %s (%.1f min)", held_out, result["held_out_figures"], result["seconds"] / 60)
    return result


def _photo_table(probs: np.ndarray, data: SplitData, config: SegmenterConfig, threshold: float):
    return metrics.photo_table(
        probs, data, config.input_size, threshold, config.region_merge_radius, config.min_region_area
    )


def summary(folds: list[dict]) -> dict:
    """Mean and worst over the held-out sources (worst: lowest F1, largest rusted-% error)."""
    f1 = [f["held_out_figures"]["pixel_f1"] for f in folds]
    mae = [f["held_out_figures"]["rusted_pct_mae"] for f in folds]
    return {
        "sources": [f["held_out"] for f in folds],
        "mean_pixel_f1": float(np.mean(f1)),
        "worst_pixel_f1": float(np.min(f1)),
        "worst_pixel_f1_source": folds[int(np.argmin(f1))]["held_out"],
        "mean_rusted_pct_mae": float(np.mean(mae)),
        "worst_rusted_pct_mae": float(np.max(mae)),
        "worst_rusted_pct_mae_source": folds[int(np.argmax(mae))]["held_out"],
    }


def run(splits: dict[str, SplitData], config: SegmenterConfig, sources: list[str] | None = None) -> dict:
    """Every fold, then the summary; the recipe (``config``) is recorded beside it."""
    chosen = sources or region_sources(splits)
    log.info("leave-one-source-out over %s", chosen)
    folds = [fold(splits, source, config) for source in chosen]
    return {"summary": summary(folds), "folds": folds, "config": dataclasses.asdict(config)}
