"""tf.data input for the detector: shards -> (images, per-anchor targets), with box-aware augmentation.

Which images a detector can learn from: those with rust boxes, and ``no_rust`` images (no rust
anywhere, so every anchor is background). A ``rust`` image without boxes (class-folder sources)
says nothing about where the rust is: its anchors are all ignored, and it trains only the
model's image-level head (rust somewhere in the photo), when the model has one.
"""

from __future__ import annotations

import hashlib
import logging
import math
from dataclasses import dataclass

import tensorflow as tf

from corrosion.core import io_utils
from corrosion.core.labels import NO_RUST, load_labels
from corrosion.data import discovery, layout, manifest
from corrosion.imaging import preprocess
from training.common.records import DatasetError, parsed_dataset
from training.detector.targets import IGNORE, AssignmentConfig, assign

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AugmentConfig:
    flip: str = "horizontal_and_vertical"  # or "horizontal", or "none"
    zoom: tuple[float, float] = (-0.3, 0.2)  # keras RandomZoom: negative zooms in, positive out
    translate: float = 0.1
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: tuple[float, float] = (0.4, 0.6)  # keras RandomColorJitter: 0.5 = unchanged
    hue: float = 0.02


@dataclass(frozen=True)
class SplitCounts:
    images: int  # all records in the split
    box_images: int  # images with at least one rust box
    boxes: int
    negatives: int  # no_rust images (no boxes)
    skipped: int  # rust images without boxes: no anchor targets; only the image-level head learns from them

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


def dataset_manifest(data_dir: str) -> list[manifest.ManifestRow]:
    """The data set's manifest rows; none for a data set written without one."""
    path = io_utils.join(data_dir, layout.MANIFEST)
    return manifest.read(path) if io_utils.exists(path) else []


def held_out_sha256(folder: str, data_dir: str) -> frozenset[str]:
    """SHA-256 of every image under ``folder``, widened to their near-duplicate groups in the data set's manifest.

    Used to keep a benchmark folder (the article's test images) out of training even when the
    data set's split put them, or a resized copy of them, in ``train``.
    """
    image_ext = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
    hashes = {
        hashlib.sha256(io_utils.read_bytes(path)).hexdigest()
        for path in discovery.list_files(folder)
        if path.lower().endswith(image_ext)
    }
    if not hashes:
        raise DatasetError(f"--hold_out {folder} holds no images")
    rows = dataset_manifest(data_dir)
    groups = {r.group for r in rows if r.sha256 in hashes and r.group}
    hashes |= {r.sha256 for r in rows if r.group in groups}
    log.info("holding %d images (with their near-duplicate groups) out of training", len(hashes))
    return frozenset(hashes)


def _not_held_out(exclude: frozenset[str]):
    excluded = tf.constant(sorted(exclude) or [""], tf.string)

    def keep(ex) -> tf.Tensor:
        return ~tf.reduce_any(tf.equal(ex["sha256"], excluded))

    return keep


def count_split(data_dir: str, split: str, exclude: frozenset[str] = frozenset()) -> SplitCounts:
    """One cheap pass (no image decoding) to count what the split offers a detector."""
    negative = load_labels().image_label_id(NO_RUST)
    images = box_images = boxes = negatives = 0
    for ex in (
        parsed_dataset(data_dir, split)
        .filter(_not_held_out(exclude))
        .map(lambda e: (tf.shape(e["boxes"])[0], e["label"]))
        .as_numpy_iterator()
    ):
        n, label = int(ex[0]), int(ex[1])
        images += 1
        box_images += n > 0
        boxes += n
        negatives += n == 0 and label == negative
    return SplitCounts(images, box_images, boxes, negatives, images - box_images - negatives)


POSITIVES, NEGATIVES, UNLOCATED = "positives", "negatives", "unlocated"  # box images, no_rust, rust without boxes


def _decoded(
    data_dir: str, split: str, size: int, max_boxes: int, kind: str, exclude: frozenset[str] = frozenset()
) -> tf.data.Dataset:
    """Decoded, resized, uint8-cached images of one ``kind`` with their (<= max_boxes) boxes padded
    to label -1, and the image-level target: (rust, located) as float32 (2,)."""
    negative = load_labels().image_label_id(NO_RUST)
    flags = {POSITIVES: (1.0, 1.0), NEGATIVES: (0.0, 1.0), UNLOCATED: (1.0, 0.0)}[kind]

    def keep(ex):
        has_boxes = tf.shape(ex["boxes"])[0] > 0
        is_negative = ex["label"] == negative
        return {POSITIVES: has_boxes, NEGATIVES: ~has_boxes & is_negative, UNLOCATED: ~has_boxes & ~is_negative}[kind]

    def load(ex):
        image = tf.cast(tf.round(preprocess.decode_and_resize(ex["encoded"], size)), tf.uint8)
        boxes = tf.clip_by_value(ex["boxes"][:max_boxes], 0.0, 1.0)
        n = tf.shape(boxes)[0]
        pad = max_boxes - n
        batch = {
            "images": image,
            "bounding_boxes": {
                "boxes": tf.pad(boxes, [[0, pad], [0, 0]], constant_values=-1.0),
                "labels": tf.pad(tf.ones([n], tf.float32), [[0, pad]], constant_values=-1.0),
            },
        }
        return batch, tf.constant(flags, tf.float32)

    return (
        parsed_dataset(data_dir, split)
        .filter(_not_held_out(exclude))
        .filter(keep)
        .map(load, num_parallel_calls=tf.data.AUTOTUNE)
        .cache()
    )


def augmenter(config: AugmentConfig, seed: int):
    """Keras box-aware preprocessing layers, applied to a batch dict {"images", "bounding_boxes"}."""
    import keras

    fmt = "rel_yxyx"
    layers = []
    if config.flip != "none":
        layers.append(keras.layers.RandomFlip(config.flip, bounding_box_format=fmt, seed=seed))
    if config.zoom != (0.0, 0.0):
        layers.append(
            keras.layers.RandomZoom(config.zoom, bounding_box_format=fmt, fill_mode="constant", seed=seed + 1)
        )
    if config.translate:
        layers.append(
            keras.layers.RandomTranslation(
                config.translate, config.translate, bounding_box_format=fmt, fill_mode="constant", seed=seed + 2
            )
        )
    layers.append(
        keras.layers.RandomColorJitter(
            value_range=(0, 255),
            brightness_factor=config.brightness,
            contrast_factor=config.contrast,
            saturation_factor=config.saturation,
            hue_factor=config.hue,
            bounding_box_format=fmt,
            seed=seed + 3,
        )
    )

    def apply(batch):
        for layer in layers:
            batch = layer(batch, training=True)
        return batch

    return apply


def _to_targets(anchors, assignment: AssignmentConfig, variance, image_head: bool):
    anchors = tf.constant(anchors, tf.float32)

    def fn(batch, flags):
        images = tf.clip_by_value(tf.cast(batch["images"], tf.float32), 0.0, 255.0)
        cls, deltas = assign(
            anchors, batch["bounding_boxes"]["boxes"], batch["bounding_boxes"]["labels"], assignment, variance
        )
        cls = tf.where(flags[:, 1:2] > 0, cls, IGNORE)  # rust somewhere, nobody drew where: no anchor target
        targets = {"box": tf.concat([deltas, cls[..., None]], axis=-1), "cls": cls}
        if image_head:
            targets["image"] = flags[:, 0:1]
        return images, targets

    return fn


def training_dataset(
    data_dir: str,
    counts: SplitCounts,
    *,
    size: int,
    batch_size: int,
    max_boxes: int,
    negatives_per_positive: float,
    anchors,
    assignment: AssignmentConfig,
    variance,
    augment: AugmentConfig,
    seed: int,
    exclude: frozenset[str] = frozenset(),
    unlocated_per_positive: float = 0.0,
    image_head: bool = False,
) -> tuple[tf.data.Dataset, int]:
    """Endless augmented batches and the steps per epoch: every box image once, plus sampled
    negatives and (for a model with an image head) sampled rust images without boxes."""
    if counts.box_images == 0:
        raise DatasetError(
            f"the training split has no image with rust boxes ({counts.images} images: {counts.negatives} negatives, "
            f"{counts.skipped} rust images without boxes); build the data set from a source with boxes (VOC XML or YOLO txt)"
        )
    n_neg = min(counts.negatives, int(round(counts.box_images * negatives_per_positive)))
    n_unl = min(counts.skipped, int(round(counts.box_images * unlocated_per_positive))) if image_head else 0
    ds, total = _mixed_stream(data_dir, counts, n_neg, n_unl, size, max_boxes, seed, exclude)
    steps = max(1, math.ceil(total / batch_size))
    log.info(
        "training on %d box images (%d boxes) + %d of %d negatives + %d of %d rust images without boxes "
        "per epoch, %d steps of %d",
        counts.box_images,
        counts.boxes,
        n_neg,
        counts.negatives,
        n_unl,
        counts.skipped,
        steps,
        batch_size,
    )
    augment_batch = augmenter(augment, seed)
    ds = ds.batch(batch_size, drop_remainder=True).map(
        lambda batch, flags: (augment_batch(batch), flags), num_parallel_calls=tf.data.AUTOTUNE
    )
    ds = ds.map(_to_targets(anchors, assignment, variance, image_head), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE), steps


def _mixed_stream(
    data_dir: str,
    counts: SplitCounts,
    n_neg: int,
    n_unl: int,
    size: int,
    max_boxes: int,
    seed: int,
    exclude: frozenset[str],
) -> tuple[tf.data.Dataset, int]:
    """Box images, negatives and unlocated rust images, each shuffled endlessly, sampled in proportion
    to how many of each an epoch holds; (the stream, images per epoch)."""
    streams, weights = [], []
    for kind, n, buffer, offset in (
        (POSITIVES, counts.box_images, 256, 0),
        (NEGATIVES, n_neg, 1024, 1),
        (UNLOCATED, n_unl, 1024, 3),
    ):
        if n > 0:
            ds = _decoded(data_dir, layout.TRAIN, size, max_boxes, kind, exclude).repeat()
            streams.append(ds.shuffle(buffer, seed=seed + offset))
            weights.append(n)
    total = sum(weights)
    if len(streams) == 1:
        return streams[0], total
    return tf.data.Dataset.sample_from_datasets(streams, [w / total for w in weights], seed=seed + 2), total


def loss_dataset(
    data_dir: str,
    split: str,
    *,
    size: int,
    batch_size: int,
    max_boxes: int,
    anchors,
    assignment,
    variance,
    image_head: bool = False,
) -> tf.data.Dataset:
    """Un-augmented batches of a split's box images, for the validation loss.

    Box images only: the loss is divided by the batch's positive anchors, so a batch of negatives
    alone would be divided by 1 and swamp the figure. Negatives are judged by COCO AP instead.
    """
    ds = _decoded(data_dir, split, size, max_boxes, POSITIVES).batch(batch_size)
    return ds.map(_to_targets(anchors, assignment, variance, image_head)).prefetch(tf.data.AUTOTUNE)
