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
from training.segmenter import fine_tune, flip_test, metrics
from training.segmenter.config import SegmenterConfig
from training.segmenter.data import REGIONS, SplitData
from training.segmenter.fitting import fit, predict
from training.segmenter.model import FEATURE_NAMES, build_decoder
from training.segmenter.subsets import select, where_source

log = logging.getLogger("training.leave_one_source_out")

MIN_REGION_PHOTOS = 50  # a source with fewer region photos is too small to score on its own
FIGURES = ("pixel_f1", "pixel_iou", "rusted_pct_mae", "rusted_pct_bias", "d610_within_1", "region_photos")


originals = flip_test.photos  # how many of a split's rows are photos (its views follow them)


def region_sources(splits: dict[str, SplitData], minimum: int = MIN_REGION_PHOTOS) -> list[str]:
    """Sources with at least ``minimum`` region photos over all splits, largest first."""
    counts: dict[str, int] = {}
    for data in splits.values():
        for i in range(originals(data)):
            if data.kinds[i] == REGIONS:
                counts[data.sources[i]] = counts.get(data.sources[i], 0) + 1
    return [s for s, n in sorted(counts.items(), key=lambda kv: -kv[1]) if n >= minimum]


def fold(splits: dict[str, SplitData], held_out: str, config: SegmenterConfig, features=None, restore=None) -> dict:
    """Train without ``held_out``, score on all of its photos; the held-out figures and the fold's own
    validation figures (the other sources). Under ``flip_test`` the same decoder is scored a second
    time with flip test-time augmentation (``flip_test`` in the result), so the two are paired; under
    ``fine_tune_from``, the decoder on the frozen features is scored before the fine-tuning too, and
    ``restore`` puts ImageNet's upper weights back first (the layers are shared by every fold)."""
    started = time.time()
    train = select(splits[layout.TRAIN], where_source(splits[layout.TRAIN], lambda s: s != held_out))
    validation = splits[layout.VALIDATION]
    val = select(validation, where_source(validation, lambda s: s != held_out, originals(validation)))
    keras.utils.set_random_seed(config.seed)
    decoder = build_decoder(config, {n: train.features[n].shape[1:] for n in FEATURE_NAMES})
    scorer = decoder
    with tempfile.TemporaryDirectory(prefix="loso-") as logs:
        history = fit(decoder, train, val, config, logs)
        result = {"held_out": held_out, "epochs": len(history["loss"]), "training_views": len(train)}
        if config.fine_tune_from:
            result["before_fine_tune"] = _scored(decoder, splits, held_out, config, tta=False)  # the pair to it
            restore()
            scorer, tuned = fine_tune.fine_tune(features, decoder, train, val, config, logs)
            result["fine_tune_epochs"] = len(tuned["loss"])
    result |= _scored(scorer, splits, held_out, config, tta=False)
    if config.flip_test:
        result["flip_test"] = _scored(scorer, splits, held_out, config, tta=True)
    result["seconds"] = round(time.time() - started, 1)
    log.info("held out %s: %s (%.1f min)", held_out, result["held_out_figures"], result["seconds"] / 60)
    if config.flip_test:
        log.info("held out %s, flip test: %s", held_out, result["flip_test"]["held_out_figures"])
    return result


def _scored(decoder, splits: dict[str, SplitData], held_out: str, config: SegmenterConfig, tta: bool) -> dict:
    """Threshold on the other sources' validation photos, then the held-out source's figures."""
    validation = splits[layout.VALIDATION]
    val_probs, val = _maps(decoder, validation, where_source(validation, lambda s: s != held_out, originals(validation)),
                           config, tta)  # fmt: skip
    threshold, _ = metrics.choose_threshold(val_probs, val, config.input_size)
    tables, boxes = [], []
    for data in splits.values():
        rows = where_source(data, lambda s: s == held_out, originals(data))
        if len(rows):
            table, found = _photo_table(*_maps(decoder, data, rows, config, tta), config, threshold)
            tables.append(table)
            boxes += found
    held = metrics.summarise(pd.concat(tables, ignore_index=True), boxes)[metrics.POOLED]
    own = metrics.summarise(*_photo_table(val_probs, val, config, threshold))[metrics.POOLED]
    return {
        "threshold": threshold,
        "held_out_figures": {k: held.get(k) for k in FIGURES},
        "validation_without_it": {k: own.get(k) for k in FIGURES},
    }


def _maps(decoder, data: SplitData, rows: np.ndarray, config: SegmenterConfig, tta: bool):
    """(one rust map per photo at ``rows``, those photos): mirrored and averaged under ``tta``."""
    part = flip_test.with_mirrors(data, rows) if tta else select(data, rows)
    probs = flip_test.predict_photos(predict, decoder, part, config.batch_size, tta)
    return probs, flip_test.photos_only(part)


def _photo_table(probs: np.ndarray, data: SplitData, config: SegmenterConfig, threshold: float):
    return metrics.photo_table(
        probs, data, config.input_size, threshold, config.region_merge_radius, config.min_region_area
    )


def summary(folds: list[dict]) -> dict:
    """Mean and worst over the held-out sources (worst: lowest F1, largest rusted-% error); the same
    under flip test-time augmentation as ``flip_test`` where the folds were scored with it."""
    out = _summary(folds)
    if folds and all("flip_test" in f for f in folds):
        out["flip_test"] = _summary([{"held_out": f["held_out"]} | f["flip_test"] for f in folds])
    return out


def _summary(folds: list[dict]) -> dict:
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


def run(splits: dict[str, SplitData], config: SegmenterConfig, sources: list[str] | None = None,
        features=None) -> dict:  # fmt: skip
    """Every fold, then the summary; the recipe (``config``) is recorded beside it. ``features`` (the
    standardised extractor) is needed to fine-tune the upper backbone (``fine_tune_from``)."""
    if config.fine_tune_from and features is None:
        raise ValueError("fine_tune_from is set: pass the feature extractor (training.segmenter.train.prepared_splits)")
    chosen = sources or region_sources(splits)
    log.info("leave-one-source-out over %s", chosen)
    restore = fine_tune.reset_upper(features, config) if config.fine_tune_from else None  # before any fold
    folds = [fold(splits, source, config, features, restore) for source in chosen]
    return {"summary": summary(folds), "folds": folds, "config": dataclasses.asdict(config)}
