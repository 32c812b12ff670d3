"""tf.data input for the training jobs: the data set's TFRecord shards, local or ``gs://``.

``parsed_dataset`` is the one reader (classifier and detector alike): it yields the dicts of
``corrosion.data.schema.parse_tf``. ``image_dataset`` adds the classifier's decoding (the very
``corrosion.imaging.preprocess.decode_and_resize`` the serving graph uses), batching, caching and prefetch.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from corrosion.core import staging
from corrosion.data import clean_crops, layout, regions, schema
from corrosion.imaging import preprocess

log = logging.getLogger(__name__)

AUTOTUNE = tf.data.AUTOTUNE


class DatasetError(ValueError):
    """A data set that cannot be trained or evaluated on; the message says what to do."""


@dataclass(frozen=True)
class SplitCounts:
    """Images per image-level label in one split (label ids as in configs/labels.yaml)."""

    split: str
    by_label: dict[int, int]

    @property
    def total(self) -> int:
        return sum(self.by_label.values())

    def count(self, label: int) -> int:
        return self.by_label.get(label, 0)


def _shards(data_dir: str, split: str) -> list[str]:
    """Sorted local shard paths: a ``gs://`` data set is read from this process's local copy of it
    (``corrosion.core.staging``: one storage client, Beam's, for the whole product); none when
    a ``gs://`` folder holds nothing (the caller's DatasetError names it)."""
    try:
        local = staging.local_folder(data_dir)
    except FileNotFoundError:
        return []
    return sorted(tf.io.gfile.glob(layout.shard_pattern(local, split)))


def shard_files(data_dir: str, split: str) -> list[str]:
    """Sorted shard paths of ``split``; a DatasetError naming the pattern when there are none."""
    pattern = layout.shard_pattern(data_dir, split)
    files = _shards(data_dir, split)
    if not files:
        raise DatasetError(
            f"no {split} shards match {pattern}: --data must be a data set directory written by "
            f"`python -m pipelines.build_dataset` (files {split}-NNNNN-of-NNNNN.tfrecord)"
        )
    return files


def available_splits(data_dir: str) -> list[str]:
    """The standard splits that have at least one shard in ``data_dir``."""
    return [s for s in layout.SPLITS if _shards(data_dir, s)]


def parsed_dataset(
    data_dir: str,
    split: str,
    shuffle: bool = False,
    seed: int | None = None,
    shuffle_buffer: int = 1000,
) -> tf.data.Dataset:
    """Parsed records of one split (dicts from ``schema.parse_tf``), shards read in parallel.

    Unshuffled, the order is deterministic, the same as ``record_metadata``'s, so evaluation
    outputs line up with file names.
    """
    files = shard_files(data_dir, split)
    if shuffle:
        ds = tf.data.Dataset.from_tensor_slices(files).shuffle(len(files), seed=seed)
        ds = ds.interleave(
            tf.data.TFRecordDataset, cycle_length=min(len(files), 8), num_parallel_calls=AUTOTUNE, deterministic=True
        )
        ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    else:
        ds = _records(files)
    return ds.map(schema.parse_tf, num_parallel_calls=AUTOTUNE, deterministic=True)


def _records(files: list[str]) -> tf.data.Dataset:
    """Serialized records, shards read in parallel but in a deterministic interleaved order."""
    return tf.data.TFRecordDataset(files, num_parallel_reads=min(len(files), 8))


def count_labels(data_dir: str, split: str) -> SplitCounts:
    """Images per image-level label, reading only the label feature."""
    spec = {schema.CLASS_LABEL: schema.FEATURE_SPEC[schema.CLASS_LABEL]}
    ds = _records(shard_files(data_dir, split)).map(
        lambda s: tf.io.parse_single_example(s, spec)[schema.CLASS_LABEL], num_parallel_calls=AUTOTUNE
    )
    labels = np.fromiter((int(x) for x in ds.as_numpy_iterator()), dtype=np.int64)
    values, counts = np.unique(labels, return_counts=True)
    return SplitCounts(split, {int(v): int(c) for v, c in zip(values, counts, strict=True)})


def require_both_classes(counts: SplitCounts, class_names: tuple[str, ...], data_dir: str) -> None:
    """A binary classifier cannot be trained or honestly evaluated on an empty or one-class split."""
    summary = ", ".join(f"{counts.count(i)} {name}" for i, name in enumerate(class_names))
    if counts.total == 0:
        raise DatasetError(
            f"the {counts.split} split of {data_dir} is empty ({summary}); rebuild the data set with more images"
        )
    missing = [name for i, name in enumerate(class_names) if counts.count(i) == 0]
    if missing:
        raise DatasetError(
            f"the {counts.split} split of {data_dir} has a single class ({summary}): no {', '.join(missing)} images. "
            f"A rust classifier needs both classes in every split; add images of the missing class and rebuild the data set"
        )
    unknown = sorted(set(counts.by_label) - set(range(len(class_names))))
    if unknown:
        raise DatasetError(
            f"the {counts.split} split of {data_dir} has labels {unknown} outside the classes {class_names}"
        )


def decode_example(parsed: dict[str, tf.Tensor], input_size: int) -> tuple[tf.Tensor, tf.Tensor]:
    """(image float32 (S, S, 3) in 0..255, label float32) via the shared preprocessing."""
    return preprocess.decode_and_resize(parsed["encoded"], input_size), tf.cast(parsed["label"], tf.float32)


def image_dataset(
    data_dir: str,
    split: str,
    input_size: int,
    batch_size: int,
    shuffle: bool = False,
    seed: int | None = None,
    cache: bool = True,
    shuffle_buffer: int = 1000,
    extra: CleanCrops | None = None,
) -> tf.data.Dataset:
    """Batches of (images 0..255, labels) for one split, ``extra`` crops (label 0) after its records.

    Decoded, resized images are cached in memory (``cache``) before shuffling, so each epoch after the
    first skips JPEG decoding; at 224 px a float image is 0.6 MB, about 1 GB for 1,700 images.
    """
    ds = _records(shard_files(data_dir, split)).map(schema.parse_tf, num_parallel_calls=AUTOTUNE, deterministic=True)
    ds = ds.map(lambda p: decode_example(p, input_size), num_parallel_calls=AUTOTUNE, deterministic=True)
    if extra is not None and len(extra):
        ds = ds.concatenate(extra.dataset())
    if cache:
        ds = ds.cache()
    if shuffle:
        ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size).prefetch(AUTOTUNE)


def record_metadata(data_dir: str, split: str) -> list[dict[str, object]]:
    """Filename, source folder, sha256 and label of every record, in ``parsed_dataset``'s unshuffled order."""
    keys = (schema.FILENAME, schema.SOURCE_ID, schema.SHA256, schema.CLASS_LABEL)
    spec = {k: schema.FEATURE_SPEC[k] for k in keys}
    ds = _records(shard_files(data_dir, split)).map(lambda s: tf.io.parse_single_example(s, spec))
    return [
        {
            "filename": r[schema.FILENAME].decode(),
            "source": layout.source_folder(r[schema.SOURCE_ID].decode()),
            "sha256": r[schema.SHA256].decode(),
            "label": int(r[schema.CLASS_LABEL]),
        }
        for r in ds.as_numpy_iterator()
    ]


@dataclass(frozen=True)
class CleanCrops:
    """Clean-steel squares of one split's mask-annotated rust photos (``corrosion.data.clean_crops``),
    resized like every classifier input, kept as uint8 (a quarter of float32's memory)."""

    images: np.ndarray  # (N, S, S, 3) uint8
    sources: tuple[str, ...]
    filenames: tuple[str, ...]
    photos: int  # mask-annotated rust photos searched; photos - N had no clean square

    def __len__(self) -> int:
        return len(self.images)

    def dataset(self) -> tf.data.Dataset:
        """(image float32 0..255, label 0.0) pairs, unbatched, as ``decode_example`` yields them."""
        labels = np.zeros(len(self.images), np.float32)
        return tf.data.Dataset.from_tensor_slices((self.images, labels)).map(lambda x, y: (tf.cast(x, tf.float32), y))


def clean_crop_images(
    data_dir: str, split: str, input_size: int, sides: tuple[float, ...], margin: float, rust_label: int = 1
) -> CleanCrops:
    """At most one clean-steel square per mask-annotated rust photo of ``split``: the largest of
    ``sides`` (fractions of the short side) that keeps ``margin`` (of the long side) from every
    rust pixel and box (``clean_crops.clean_window``)."""
    ds = parsed_dataset(data_dir, split).filter(lambda p: (p["mask"] != b"") & (p["label"] == rust_label))
    resize = preprocess.resize_one(input_size)
    images, sources, names, photos = [], [], [], 0
    for p in ds.as_numpy_iterator():
        photos += 1
        pixels = preprocess.decode_pixels(p["encoded"]).numpy()
        height, width = pixels.shape[:2]
        boxes = [(x0 * width, y0 * height, x1 * width, y1 * height) for y0, x0, y1, x1 in p["boxes"]]
        mask = regions.decode(p["mask"])
        if mask.shape != (height, width):
            raise DatasetError(
                f"{p['filename'].decode()}: its mask is {mask.shape[1]}x{mask.shape[0]}, the image {width}x{height}; "
                f"rebuild the data set"
            )
        window = clean_crops.clean_window(clean_crops.occupied(mask, boxes), sides, margin)
        if window is None:
            continue
        x0, y0, x1, y1 = window
        crop = resize(tf.constant(pixels[y0:y1, x0:x1]))
        images.append(np.round(crop.numpy()).astype(np.uint8))
        sources.append(layout.source_folder(p["source_id"].decode()))
        names.append(p["filename"].decode())
    log.info("%s: %d clean-steel crops from %d mask-annotated rust photos", split, len(images), photos)
    shape = (0, input_size, input_size, 3)
    stack = np.stack(images) if images else np.zeros(shape, np.uint8)
    return CleanCrops(stack, tuple(sources), tuple(names), photos)
