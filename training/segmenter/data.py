"""What the segmenter learns from, per photo, at its stride-8 output grid, and the frozen features
computed once for every photo (the backbone never trains, so nothing is lost by caching).

Each kind of labelled photo says something different about its pixels:
- a rust mask (region sources): the share of rust pixels in every cell, all cells weighted;
- boxes only (VOC, YOLO boxes): no rust outside the boxes; inside them unknown, ignored;
- no_rust (any source): every cell clean steel;
- rust without boxes or mask (class folders): nothing about any one pixel; left out (counted), or
  with ``weak_photos`` taught that some of its cells are rust (``load_weak``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import tensorflow as tf

from corrosion.core.labels import NO_RUST, load_labels
from corrosion.data import layout, regions
from corrosion.imaging import preprocess
from training.common.records import DatasetError, parsed_dataset
from training.segmenter.config import SegmenterConfig
from training.segmenter.model import FEATURE_NAMES

log = logging.getLogger("training.train_segmenter")

REGIONS, BOXES, NEGATIVE = "regions", "boxes", "negative"
IMAGE = "image"  # a rust photo with only its image-level label (``load_weak``)
SAMPLE_PHOTOS = 8


@dataclass
class SplitData:
    """One split's photos as the segmenter sees them; arrays indexed alike."""

    features: dict[str, np.ndarray]  # s8 / s16 / s32, float16
    target: np.ndarray  # (N, M, M) rust share per cell
    weight: np.ndarray  # (N, M, M) 0 = ignored
    kinds: list[str]
    sources: list[str]
    names: list[str]
    truth: list[np.ndarray | None]  # region photos: the 0/1 mask at S x S; else None
    boxes: list[np.ndarray]  # true boxes, normalised (ymin, xmin, ymax, xmax)
    left_out: int = 0  # rust photos that say nothing about their pixels
    counts: dict[str, int] = field(default_factory=dict)
    sample_encoded: list[bytes] = field(default_factory=list)  # the first photos' bytes, to check the export
    keys: list[str] = field(default_factory=list)  # sha256 per photo (evaluation: near-duplicate groups)
    originals: int | None = None  # rows before this are the photos, the rest derived views; None: all photos

    def __len__(self) -> int:
        return len(self.kinds)


def cell_targets(
    mask: np.ndarray | None, boxes: np.ndarray, negative: bool, config: SegmenterConfig
) -> tuple[np.ndarray, np.ndarray, str] | None:
    """(rust share per cell, weight per cell, kind) at the M x M grid; None for a photo without pixel facts.

    ``mask`` is the 0/1 mask at the model's input size S; ``boxes`` normalised (ymin, xmin, ymax, xmax).
    """
    m = config.mask_size
    if mask is not None:
        s = mask.shape[0] // m
        share = mask.reshape(m, s, m, s).mean(axis=(1, 3))
        return share.astype(np.float32), np.ones((m, m), np.float32), REGIONS
    if negative:
        return np.zeros((m, m), np.float32), np.full((m, m), config.negatives_weight, np.float32), NEGATIVE
    if len(boxes) == 0:
        return None
    weight = np.full((m, m), config.box_outside_weight, np.float32)
    for y0, x0, y1, x1 in np.clip(boxes, 0.0, 1.0):  # cells touching a box: unknown
        weight[int(y0 * m) : int(np.ceil(y1 * m)), int(x0 * m) : int(np.ceil(x1 * m))] = 0.0
    return np.zeros((m, m), np.float32), weight, BOXES


def mask_at(mask_png: bytes, size: int) -> np.ndarray:
    """The stored mask at the model's square input (nearest neighbour, as the photo is squashed)."""
    from PIL import Image

    img = Image.fromarray(regions.decode(mask_png)).resize((size, size), Image.Resampling.NEAREST)
    return np.asarray(img, dtype=np.uint8)


def load_split(
    data_dir: str, split: str, features, config: SegmenterConfig, flip: bool = False, folder: str | None = None
) -> SplitData:
    """Every photo of ``split`` with pixel facts, its targets and frozen features (and mirrored copies).

    Two passes over the split: the first reads the pixel facts and counts the photos, the second
    decodes them a batch at a time (the serving graph's own preprocessing) and writes each batch's
    features straight into arrays of their final size: in ``folder`` as memory-mapped ``.npy`` files
    when it is given (the feature cache), so memory holds one batch of photos whatever the input
    size, never the split's features twice.
    """
    out, kept = _pixel_facts(data_dir, split, config)
    out.features = _features(data_dir, split, features, config, kept, len(out.target), flip, folder)
    if flip:
        out = _with_mirrors(out)
    out.counts = {kind: out.kinds.count(kind) for kind in (REGIONS, BOXES, NEGATIVE)} | {"left_out": out.left_out}
    log.info("%s: %s, %d feature views", split, out.counts, len(out))
    return out


def _pixel_facts(data_dir: str, split: str, config: SegmenterConfig) -> tuple[SplitData, list[bool]]:
    """The split's photos with pixel facts (no features yet) and, per record, whether it is one of them."""
    negative_label = load_labels().image_label_id(NO_RUST)
    out = SplitData({}, np.zeros(0), np.zeros(0), [], [], [], [], [])
    targets, weights, kept = [], [], []
    for ex in parsed_dataset(data_dir, split).as_numpy_iterator():
        mask = mask_at(ex["mask"], config.input_size) if ex["mask"] else None
        facts = cell_targets(mask, ex["boxes"], int(ex["label"]) == negative_label and mask is None, config)
        kept.append(facts is not None)
        if facts is None:
            out.left_out += 1
            continue
        targets.append(facts[0])
        weights.append(facts[1])
        out.kinds.append(facts[2])
        out.sources.append(ex["source_id"].decode().split("/", 1)[0])
        out.names.append(ex["source_id"].decode() or ex["filename"].decode())
        out.truth.append(mask)
        out.boxes.append(ex["boxes"])
        if len(out.sample_encoded) < SAMPLE_PHOTOS:
            out.sample_encoded.append(ex["encoded"])
    if not targets:
        raise DatasetError(f"the {split} split of {data_dir} has no photo with rust masks, boxes or no_rust labels")
    out.target, out.weight = np.stack(targets), np.stack(weights)
    return out, kept


def _features(
    data_dir: str, split: str, features, config: SegmenterConfig, kept: list[bool], photos: int, flip: bool,
    folder: str | None,
) -> dict[str, np.ndarray]:  # fmt: skip
    """The kept photos' features, then (``flip``) their mirrors', written a batch at a time."""
    arrays = FeatureArrays(photos * (2 if flip else 1), folder)
    batch: list[np.ndarray] = []
    written = 0

    def flush() -> None:
        nonlocal written
        if batch:
            images = np.stack(batch)
            arrays.put(written, extract(features, images, config.batch_size))
            if flip:
                arrays.put(photos + written, extract(features, images[:, :, ::-1], config.batch_size))
            written += len(batch)
            batch.clear()
            if written % (config.batch_size * 20) == 0:
                log.info("%s: features of %d / %d photos", split, written, photos)

    for ex, use in zip(parsed_dataset(data_dir, split).as_numpy_iterator(), kept, strict=True):
        if use:
            batch.append(preprocess.decode_and_resize(tf.constant(ex["encoded"]), config.input_size).numpy())
            if len(batch) == config.batch_size:
                flush()
    flush()
    return arrays.done()


class FeatureArrays:
    """Each feature tap's array for ``rows`` views, made at the first batch (its shapes are the
    backbone's); in ``folder``, as the ``.npy`` files ``load`` maps, when one is given."""

    def __init__(self, rows: int, folder: str | None) -> None:
        self.rows, self.folder = rows, folder
        self.arrays: dict[str, np.ndarray] = {}

    def put(self, start: int, batch: dict[str, np.ndarray]) -> None:
        if not self.arrays:
            for name, values in batch.items():
                shape = (self.rows, *values.shape[1:])
                if self.folder is None:
                    self.arrays[name] = np.empty(shape, np.float16)
                else:
                    from pathlib import Path

                    Path(self.folder).mkdir(parents=True, exist_ok=True)
                    path = str(Path(self.folder) / f"{name}.npy")
                    self.arrays[name] = np.lib.format.open_memmap(path, mode="w+", dtype=np.float16, shape=shape)
        for name, values in batch.items():
            self.arrays[name][start : start + len(values)] = values

    def done(self) -> dict[str, np.ndarray]:
        for values in self.arrays.values():
            if isinstance(values, np.memmap):
                values.flush()
        return self.arrays


def sample_photos(data_dir: str, split: str, config: SegmenterConfig, count: int) -> np.ndarray:
    """The first ``count`` photos of a split at the model's input, as the serving graph decodes them."""
    photos = [
        preprocess.decode_and_resize(tf.constant(ex["encoded"]), config.input_size).numpy()
        for ex in parsed_dataset(data_dir, split).take(count).as_numpy_iterator()
    ]
    return np.stack(photos)


def extract(features, images: np.ndarray, batch_size: int) -> dict[str, np.ndarray]:
    """The frozen backbone's taps of every image (each output of ``features``), as float16 (half the
    memory, ample precision)."""
    found: dict[str, list[np.ndarray]] = {}
    for start in range(0, len(images), batch_size):
        batch = features(tf.constant(images[start : start + batch_size], tf.float32), training=False)
        for name, values in batch.items():
            found.setdefault(name, []).append(values.numpy().astype(np.float16))
    return {name: np.concatenate(parts) for name, parts in found.items()}


def _with_mirrors(data: SplitData) -> SplitData:
    """Training views: each photo, then its left-right mirror (``data.features`` already holds the
    mirrored photos' features after the photos'; targets and masks are mirrored here)."""
    return SplitData(
        data.features,
        np.concatenate([data.target, data.target[:, :, ::-1]]),
        np.concatenate([data.weight, data.weight[:, :, ::-1]]),
        data.kinds * 2,
        data.sources * 2,
        data.names * 2,
        data.truth + [None if t is None else t[:, ::-1] for t in data.truth],
        data.boxes * 2,
        data.left_out,
        sample_encoded=data.sample_encoded,
        originals=len(data),
    )


def cache_key(data_dir: str, split: str, config: SegmenterConfig, weights: str, flip: bool, extra: tuple = ()) -> str:
    """What a split's cached features depend on: the data set's build, the backbone, its taps, the views."""
    import hashlib
    import json

    from corrosion.core import io_utils

    stats = (
        io_utils.read_text(io_utils.join(data_dir, layout.STATS))
        if io_utils.exists(io_utils.join(data_dir, layout.STATS))
        else ""
    )
    facts = [data_dir, split, stats, config.backbone, config.input_size, list(config.feature_layers), weights, flip,
             config.negatives_weight, config.box_outside_weight, *extra]  # fmt: skip
    return hashlib.sha256(json.dumps(facts, default=str).encode()).hexdigest()[:16]


def save(data: SplitData, folder: str) -> None:
    """The split's features as .npy files (memory-mapped when read back) and the rest pickled."""
    import dataclasses
    import pickle
    from pathlib import Path

    path = Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    for name, values in data.features.items():
        target = path / f"{name}.npy"
        if isinstance(values, np.memmap) and Path(values.filename).resolve() == target.resolve():
            values.flush()  # written there by load_split
        else:
            np.save(target, values)
    # last: a folder without it (a run cut off while extracting) is extracted again
    (path / "rest.pkl").write_bytes(pickle.dumps(dataclasses.replace(data, features={})))


def load(folder: str) -> SplitData | None:
    import dataclasses
    import pickle
    from pathlib import Path

    path = Path(folder)
    if not (path / "rest.pkl").exists():
        return None
    data = pickle.loads((path / "rest.pkl").read_bytes())
    for f in dataclasses.fields(data):  # a cache written before a field was added: the field's default
        if f.name not in vars(data):
            setattr(data, f.name, f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default)
    features = {name: np.load(path / f"{name}.npy", mmap_mode="r") for name in FEATURE_NAMES}
    log.info("features of %d views read from %s", len(data), folder)
    return dataclasses.replace(data, features=features)


def load_augmented(data_dir: str, features, config: SegmenterConfig, folder: str | None = None) -> SplitData:
    """``config.augment_views`` augmented views of every training photo with pixel facts, with their
    own targets (the mask and boxes follow the crop) and features (``training.segmenter.augment``).

    A crop of a box-only photo that holds none of its boxes is all outside them: clean, taught with
    ``box_outside_weight``. Views are drawn from ``config.seed``, so each seed sees its own.
    """
    from training.segmenter.augment import augmented_view

    negative_label = load_labels().image_label_id(NO_RUST)
    out = SplitData({}, np.zeros(0), np.zeros(0), [], [], [], [], [])
    targets, weights, pixels = [], [], []
    for index, ex in enumerate(parsed_dataset(data_dir, layout.TRAIN).as_numpy_iterator()):
        mask = regions.decode(ex["mask"]) if ex["mask"] else None
        negative = int(ex["label"]) == negative_label and mask is None
        if mask is None and not negative and len(ex["boxes"]) == 0:
            continue  # no pixel facts, as in load_split
        photo = preprocess.decode_pixels(tf.constant(ex["encoded"])).numpy()
        for v in range(config.augment_views):
            rng = np.random.default_rng([config.seed, v, index])
            view = augmented_view(photo, mask, ex["boxes"], config.input_size, rng, config.augment_zoom,
                                  config.augment_strength)  # fmt: skip
            facts = cell_targets(view.mask, view.boxes, negative, config)
            if facts is None:  # a box photo's crop outside all of its boxes
                m = config.mask_size
                facts = np.zeros((m, m), np.float32), np.full((m, m), config.box_outside_weight, np.float32), BOXES
            targets.append(facts[0])
            weights.append(facts[1])
            out.kinds.append(facts[2])
            out.sources.append(ex["source_id"].decode().split("/", 1)[0])
            out.names.append(f"{ex['source_id'].decode() or ex['filename'].decode()}#aug{v}")
            out.truth.append(view.mask)
            out.boxes.append(view.boxes)
            pixels.append(view.pixels)
        if (index + 1) % 500 == 0:
            log.info("augmented views of %d training records", index + 1)
    out.target, out.weight = np.stack(targets), np.stack(weights)
    arrays = FeatureArrays(len(pixels), folder)
    for start in range(0, len(pixels), config.batch_size):
        batch = np.stack(pixels[start : start + config.batch_size]).astype(np.float32)
        arrays.put(start, extract(features, batch, config.batch_size))
    out.features = arrays.done()
    out.counts = {kind: out.kinds.count(kind) for kind in (REGIONS, BOXES, NEGATIVE)} | {"left_out": 0}
    out.originals = 0
    log.info("augmented training views: %s", out.counts)
    return out


def load_weak(data_dir: str, features, config: SegmenterConfig, folder: str | None = None) -> SplitData:
    """The training photos ``load_split`` leaves out (rust, neither mask nor boxes: class folders) and
    their mirrors, as ``IMAGE`` photos for ``weak_photos``: every cell weighs 0, so all they teach
    is the image-level loss (``training.segmenter.fitting.region_loss``: some cells are rust).

    Why: they are the most varied photos there are (web photos of tanks, hulls, pipes, cars, bridges),
    and a new structure type is what leave-one-source-out says the model lacks.
    """
    negative_label = load_labels().image_label_id(NO_RUST)
    out = SplitData({}, np.zeros(0), np.zeros(0), [], [], [], [], [])
    kept = []
    for ex in parsed_dataset(data_dir, layout.TRAIN).as_numpy_iterator():
        weak = not ex["mask"] and len(ex["boxes"]) == 0 and int(ex["label"]) != negative_label
        kept.append(weak)
        if weak:
            out.kinds.append(IMAGE)
            out.sources.append(ex["source_id"].decode().split("/", 1)[0])
            out.names.append(ex["source_id"].decode() or ex["filename"].decode())
    if not out.kinds:
        raise DatasetError(f"weak_photos is set, but the training split of {data_dir} has no rust photo without "
                           "mask or boxes (class folders); unset it")  # fmt: skip
    m, n = config.mask_size, len(out.kinds)
    out.target, out.weight = np.zeros((n, m, m), np.float32), np.zeros((n, m, m), np.float32)
    out.truth, out.boxes = [None] * n, [np.zeros((0, 4), np.float32)] * n
    out.features = _features(data_dir, layout.TRAIN, features, config, kept, n, True, folder)
    out = _with_mirrors(out)
    out.counts = {IMAGE: len(out)}
    log.info("image-level rust photos: %d, %d views with their mirrors", n, len(out))
    return out
