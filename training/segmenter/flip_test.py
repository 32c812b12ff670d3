"""Flip test-time augmentation: each photo scored as itself and as its left-right mirror, the
mirror's map flipped back and the two averaged (``flip_test`` in ``configs/segmenter.yaml``).

Training and leave-one-source-out score it on the cached features of the mirrored photos, which
the cache holds after the photos (rows ``originals + i``); the export puts the same average in
the served graph, so the night runs the decoder and the backbone twice per tile.
"""

from __future__ import annotations

import keras
import numpy as np

from training.segmenter.data import SplitData
from training.segmenter.subsets import select


def photos(data: SplitData) -> int:
    """How many of the split's rows are photos (mirrored and augmented views follow them)."""
    return len(data) if data.originals is None else data.originals


def has_mirrors(data: SplitData) -> bool:
    """Whether row ``photos + i`` is photo ``i`` mirrored for every photo (a flipped cache)."""
    n = photos(data)
    return data.originals is not None and len(data) >= 2 * n and data.names[n : 2 * n] == data.names[:n]


def with_mirrors(data: SplitData, rows: np.ndarray) -> SplitData:
    """Photos ``rows`` of ``data``, then their mirrors; the view's ``originals`` is ``len(rows)``."""
    if not has_mirrors(data):
        raise ValueError("flip test needs the mirrored photos' features: build the cache with flip_test set")
    rows = np.asarray(rows, np.int64)
    view = select(data, np.concatenate([rows, rows + photos(data)]))
    view.originals = len(rows)
    return view


def photos_only(data: SplitData) -> SplitData:
    """The photos of ``data`` without their mirrors or other views (what the figures count)."""
    n = photos(data)
    if n == len(data):
        return data
    view = select(data, np.arange(n))
    view.sample_encoded = data.sample_encoded  # the first photos' bytes: still these rows
    return view


def averaged(probs: np.ndarray, n: int) -> np.ndarray:
    """Photos' maps averaged with their mirrors' maps flipped back ((2n, M, M) -> (n, M, M))."""
    return 0.5 * (probs[:n] + probs[n : 2 * n, :, ::-1])


def predict_photos(predict, decoder: keras.Model, data: SplitData, batch_size: int, flip_test: bool) -> np.ndarray:
    """One rust map per photo of ``data``: ``predict``'s, averaged with the mirror's under ``flip_test``."""
    n = photos(data)
    if not flip_test:
        return predict(decoder, photos_only(data), batch_size)
    if not has_mirrors(data):
        raise ValueError("flip_test is set but the split holds no mirrored photos")
    return averaged(predict(decoder, select(data, np.arange(2 * n)), batch_size), n)


def flip_averaged(network: keras.Model) -> keras.Model:
    """The served network with flip test-time augmentation in its graph (0..255 RGB -> (N, M, M))."""
    images = keras.Input(network.input_shape[1:], name="images")
    mirrored = keras.layers.Lambda(lambda x: keras.ops.flip(x, axis=2), name="mirror_photo")(images)
    back = keras.layers.Lambda(lambda x: keras.ops.flip(x, axis=2), name="mirror_map")(network(mirrored))
    mean = keras.layers.Average(name="flip_average")([network(images), back])
    return keras.Model(images, mean, name=f"{network.name}_flip_test")
