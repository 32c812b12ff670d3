"""Train, evaluate and export the rust-region model (segmenter).

    python -m training.train_segmenter --data DATASET_DIR --model_dir MODEL_DIR \\
        [--config configs/segmenter.yaml] [--set KEY=VALUE ...] [--head_epochs N] ...

The ImageNet backbone stays frozen: its features at strides 8 / 16 / 32 are computed once for every
photo with pixel facts (and a mirrored copy of each training photo), and only the decoder trains,
on per-cell rust shares with per-cell weights (``training.segmenter.data``), by cross-entropy plus
soft Dice. The best epoch by validation loss is kept, the pixel threshold is the one with the best
validation rust-pixel F1; validation and test are scored per source and pooled
(``training.segmenter.metrics``) on the cached features, which the export check holds to the
exported SavedModel's own maps (float16 caching moves them by about 4e-4);
``training.evaluate`` scores the export itself.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf

from corrosion.core import io_utils
from corrosion.data import layout
from corrosion.imaging import preprocess
from corrosion.models import lite_runtime, serving
from corrosion.models.weights import resolve_weights
from training.common import lite, report
from training.common.export import export_model
from training.common.job import Job, JobSpec
from training.common.job import main as job_main
from training.segmenter import fine_tune, flip_test, metrics, model_card, quantised
from training.segmenter.config import DEFAULT_FILE, SegmenterConfig
from training.segmenter.data import SplitData, cache_key, load_augmented, load_split, load_weak, sample_photos
from training.segmenter.data import load as load_cached
from training.segmenter.data import save as save_cached
from training.segmenter.fitting import fit, predict
from training.segmenter.model import (
    FEATURE_NAMES,
    build_decoder,
    build_feature_extractor,
    build_segmenter,
    with_standardisation,
)
from training.segmenter.subsets import concat

log = logging.getLogger("training.train_segmenter")

STATISTICS_PHOTOS = 256  # training photos the feature standardisation is measured on


def cached_split(data: str, split: str, features, config: SegmenterConfig, weights: str) -> SplitData:
    """A split's photos and features, from ``feature_cache`` when an earlier run on the same facts left them."""
    flip = mirrored(split, config)
    name = f"{split}-{cache_key(data, split, config, weights, flip)}"
    found = _from_cache(config, name, lambda folder: load_split(data, split, features, config, flip, folder))
    if found.originals is None:  # a cache written before the field: the photos, then their mirrors
        found.originals = len(found) // 2 if flip else len(found)
    return found


def mirrored(split: str, config: SegmenterConfig) -> bool:
    """Whether a split's cache holds each photo's mirror: training views, or the photos flip test scores."""
    return (config.flip_views and split == layout.TRAIN) or config.flip_test


def _cache_folders(data: str, config: SegmenterConfig, weights: str) -> dict[str, str] | None:
    if config.feature_cache is None:
        return None
    flips = {s: mirrored(s, config) for s in layout.SPLITS}
    return {
        s: io_utils.join(config.feature_cache, f"{s}-{cache_key(data, s, config, weights, f)}")
        for s, f in flips.items()
    }


def export(model_dir: str, network: keras.Model, metadata: serving.ModelMetadata) -> None:
    def serve(images: tf.Tensor) -> dict[str, tf.Tensor]:
        return {serving.SEGMENTER_OUTPUT: network(images, training=False)}

    export_model(model_dir, serve, network, metadata)


def prepared_splits(data: str, config: SegmenterConfig):
    """(standardised feature extractor, every split's photos and features, weight source), the
    features from ``feature_cache`` where an earlier run left them."""
    weights = resolve_weights(config.weights)
    features = with_standardisation(
        build_feature_extractor(config, weights), sample_photos(data, layout.TRAIN, config, STATISTICS_PHOTOS)
    )
    splits = {s: cached_split(data, s, features, config, weights.description) for s in layout.SPLITS}
    extra = [cached_augmented(data, features, config, weights.description)] if config.augment_views else []
    extra += [cached_weak(data, features, config, weights.description)] if config.weak_photos else []
    if extra:  # more training views after the photos and their mirrors
        originals = splits[layout.TRAIN].originals
        splits[layout.TRAIN] = dataclasses.replace(concat([splits[layout.TRAIN], *extra]), originals=originals)
    if config.fine_tune_from:
        splits = fine_tune.with_cut(splits, data, features, config, weights.description, mirrored)
    return features, splits, weights


def cached_augmented(data: str, features, config: SegmenterConfig, weights: str) -> SplitData:
    """The augmented training views (``training.segmenter.data.load_augmented``), cached as the splits are."""
    settings = ("augment", config.augment_views, config.augment_zoom, config.augment_strength, config.seed)
    key = cache_key(data, layout.TRAIN, config, weights, False, settings)
    return _from_cache(config, f"train-augmented-{key}", lambda folder: load_augmented(data, features, config, folder))


def cached_weak(data: str, features, config: SegmenterConfig, weights: str) -> SplitData:
    """The image-level rust photos (``training.segmenter.data.load_weak``), cached as the splits are."""
    key = cache_key(data, layout.TRAIN, config, weights, True, ("weak",))
    return _from_cache(config, f"train-weak-{key}", lambda folder: load_weak(data, features, config, folder))


def _from_cache(config: SegmenterConfig, name: str, make: Callable[[str | None], SplitData]) -> SplitData:
    """``make(folder)``'s views, read from ``feature_cache``/``name`` where an earlier run left them."""
    if config.feature_cache is None:
        return make(None)
    folder = io_utils.join(config.feature_cache, name)
    found = load_cached(folder)
    if found is None:
        found = make(folder)
        save_cached(found, folder)
    return found


def train(data: str, model_dir: str, config: SegmenterConfig, config_file: str | None = None) -> dict:
    """Cache features, train the decoder, choose the threshold, export, score; returns metrics.json's content."""
    started = time.time()
    keras.utils.set_random_seed(config.seed)
    features, splits, weights = prepared_splits(data, config)
    cached = time.time() - started
    log.info("features cached in %.1f min", cached / 60)
    decoder = build_decoder(config, {n: splits[layout.TRAIN].features[n].shape[1:] for n in FEATURE_NAMES})
    io_utils.make_dirs(model_dir)
    scored = {s: flip_test.photos_only(splits[s]) for s in (layout.VALIDATION, layout.TEST)}
    history = fit(decoder, splits[layout.TRAIN], scored[layout.VALIDATION], config, model_dir)
    scorer, tuned = decoder, None  # the network on cached inputs whose maps are scored
    if config.fine_tune_from:
        scorer, tuned = fine_tune.fine_tune(features, decoder, splits[layout.TRAIN], scored[layout.VALIDATION], config,
                                            io_utils.join(model_dir, "fine_tune"))  # fmt: skip
    probs = {s: flip_test.predict_photos(predict, scorer, splits[s], config.batch_size, config.flip_test)
             for s in scored}  # fmt: skip
    threshold, val_f1 = metrics.choose_threshold(probs[layout.VALIDATION], scored[layout.VALIDATION], config.input_size)
    source = "validation max rust-pixel F1"
    if config.score_threshold is not None:
        threshold, source = config.score_threshold, "configuration"
    log.info("pixel threshold %.2f (%s; validation pixel F1 %.3f there)", threshold, source, val_f1)
    network = build_segmenter(features, decoder)  # fine-tuned upper layers are the extractor's own
    if config.flip_test:
        network = flip_test.flip_averaged(network)
    metadata = _metadata(config, weights.description, threshold, source, data)
    export(model_dir, network, metadata)
    export_check = check_export(model_dir, network, scored[layout.TEST], probs[layout.TEST], config.input_size)
    if config.export_lite:
        photos = [preprocess.decode_and_resize(tf.constant(e), config.input_size).numpy()
                  for e in scored[layout.TEST].sample_encoded]  # fmt: skip
        export_check["lite"] = lite.export_segmenter_lite(model_dir, network, config.input_size,
                                                          config.lite_max_abs_diff, config.lite_check_images,
                                                          np.stack(photos) if photos else None)  # fmt: skip
        io_utils.remove_if_exists(lite_runtime.lite_path(model_dir, "segmenter_int8"))  # an earlier run's: never served
        if config.lite_int8:
            export_check["lite_int8"] = quantised.export_int8(model_dir, features, decoder, data, config, threshold)
    out = {
        "model": dataclasses.asdict(metadata) | {"class_names": list(metadata.class_names)},
        "data": data,
        "threshold": threshold,
        "threshold_source": source,
        "splits": {s: _evaluate(probs[s], scored[s], config, threshold) for s in probs},
        "data_counts": {s: d.counts for s, d in splits.items()},
        "export_check": export_check,
        "feature_cache": _cache_folders(data, config, weights.description),
        "training": {"seconds": round(time.time() - started, 1), "feature_cache_seconds": round(cached, 1),
                     "epochs": len(history["loss"]), "history": history,
                     "fine_tune_epochs": len(tuned["loss"]) if tuned else 0, "fine_tune_history": tuned},
        "versions": report.versions(),
    }  # fmt: skip
    card = model_card.render(out, config, config_file)
    report.write_outputs(model_dir, out, card, {})
    pooled = out["splits"][layout.TEST][metrics.POOLED]
    log.info(
        "done in %.1f min: test pooled %s",
        (time.time() - started) / 60,
        {k: pooled[k] for k in ("pixel_f1", "pixel_iou", "rusted_pct_mae", "d610_within_1", "AP50")},
    )
    return out


def _evaluate(probs: np.ndarray, data: SplitData, config: SegmenterConfig, threshold: float) -> dict:
    table, boxes = metrics.photo_table(
        probs, data, config.input_size, threshold, config.region_merge_radius, config.min_region_area
    )
    return metrics.summarise(table, boxes)


def check_export(model_dir: str, network: keras.Model, test: SplitData, cached_probs: np.ndarray, size: int) -> dict:
    """The SavedModel's bytes signature on test photos must give the Keras network's maps; how far the
    float16 feature cache the decoder trained on moves them is reported beside it."""
    encoded = test.sample_encoded
    served = tf.saved_model.load(model_dir).signatures[serving.BYTES_SIGNATURE](image_bytes=tf.constant(encoded))
    served = served[serving.SEGMENTER_OUTPUT].numpy()
    images = tf.stack([preprocess.decode_and_resize(tf.constant(e), size) for e in encoded])
    direct = network(images, training=False).numpy()
    diff = float(np.max(np.abs(served - direct)))
    if not diff <= 1e-3:  # NaN included
        raise RuntimeError(
            f"exported model disagrees with the trained network by {diff:.2e} on test photos; export is broken"
        )
    cache_diff = float(np.max(np.abs(served - cached_probs[: len(encoded)])))
    log.info(
        "export check: %d test photos, max diff %.1e (float16 feature cache: %.1e)", len(encoded), diff, cache_diff
    )
    return {"images": len(encoded), "max_abs_difference": diff, "feature_cache_max_abs_difference": cache_diff}


def _metadata(config: SegmenterConfig, weights: str, threshold: float, source: str, data: str) -> serving.ModelMetadata:
    return serving.ModelMetadata(
        kind="segmenter",
        version="segmenter-" + time.strftime("%Y%m%dT%H%M%S", time.gmtime()),
        input_size=config.input_size,
        threshold=float(threshold),
        class_names=("rust",),
        backbone=config.backbone,
        weights=weights,
        extra={"threshold_source": source, "output": serving.SEGMENTER_OUTPUT, "stride": 8, "data": data,
               "region_merge_radius": config.region_merge_radius, "min_region_area": config.min_region_area,
               "flip_test": config.flip_test},
    )  # fmt: skip


def run(job: Job) -> dict:
    return train(job.data, job.model_dir, job.config, job.config_file)


SPEC = JobSpec(
    description=__doc__,
    config_cls=SegmenterConfig,
    default_file=DEFAULT_FILE,
    run=run,
    shortcuts={
        "head_epochs": ("head_epochs", int, "decoder epochs (early stopping on validation loss)"),
        "input_size": ("input_size", int, "model input side, pixels (multiple of 32)"),
        "batch_size": ("batch_size", int, "photos per step"),
        "weights": ("weights", str, "imagenet, none or a .h5 path (default: project resolution)"),
        "seed": ("seed", int, "random seed"),
    },
)


def main(argv: list[str] | None = None) -> int:
    return job_main(SPEC, argv)
