"""Training a network on the cached features: the loss, the batches, the fit and the maps.

Shared by the training job, leave-one-source-out folds and the upper-backbone fine-tuning
(``training.segmenter.fine_tune``), whose networks all read cached arrays named as their inputs.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from corrosion.core import io_utils
from training.common.tensorboard import TensorBoardScalars
from training.segmenter.config import SegmenterConfig
from training.segmenter.data import IMAGE, SplitData
from training.segmenter.model import FEATURE_NAMES


def region_loss(dice_weight: float, image_weight: float = 0.0, image_top_share: float = 0.05):
    """Weighted per-cell cross-entropy on rust shares + soft Dice, + ``image_weight`` times the
    image-level loss of the photos flagged as rust by their label alone: cross-entropy of "rust"
    against the mean logit of their top ``image_top_share`` cells (some part of a rust photo is
    rust; which part, nobody said). ``y_true`` packs (share, weight, image-level flag) per cell."""

    def loss(y_true: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
        target, weight, flagged = y_true[..., 0], y_true[..., 1], y_true[:, 0, 0, 2]
        bce = tf.nn.sigmoid_cross_entropy_with_logits(labels=target, logits=logits)
        bce = tf.reduce_sum(weight * bce) / tf.maximum(tf.reduce_sum(weight), 1.0)
        p = tf.sigmoid(logits)
        inter = tf.reduce_sum(weight * p * target)
        dice = 1.0 - (2.0 * inter + 1.0) / (tf.reduce_sum(weight * (p + target)) + 1.0)
        if not image_weight:
            return bce + dice_weight * dice
        cells = tf.reshape(logits, (tf.shape(logits)[0], -1))
        top = max(1, round(image_top_share * logits.shape[1] * logits.shape[2]))
        pooled = tf.reduce_mean(tf.math.top_k(cells, top).values, axis=-1)
        image = tf.nn.sigmoid_cross_entropy_with_logits(labels=tf.ones_like(pooled), logits=pooled)
        image = tf.reduce_sum(flagged * image) / tf.maximum(tf.reduce_sum(flagged), 1.0)
        return bce + dice_weight * dice + image_weight * image

    return loss


class Batches(keras.utils.PyDataset):
    """Batches of the cached float16 features as float32, with (share, weight, image-level flag) targets packed.

    Slicing per batch keeps the cache as it is: handing Keras the whole arrays makes it copy them
    (as float32: twice the cache) before the first step.
    """

    def __init__(self, data: SplitData, batch_size: int, shuffle: bool, seed: int,
                 names: tuple[str, ...] = FEATURE_NAMES, photo_weight: np.ndarray | None = None) -> None:  # fmt: skip
        super().__init__()
        self.data, self.batch_size, self.shuffle, self.names = data, batch_size, shuffle, names
        self.photo_weight = np.ones(len(data), np.float32) if photo_weight is None else photo_weight
        self.image_level = np.array([kind == IMAGE for kind in data.kinds], np.float32)  # region_loss's flag
        self.rng = np.random.default_rng(seed)
        self.order = np.arange(len(data))
        self.on_epoch_end()

    def __len__(self) -> int:
        return max(1, -(-len(self.data) // self.batch_size))

    def __getitem__(self, index: int):
        rows = np.sort(self.order[index * self.batch_size : (index + 1) * self.batch_size])
        x = {name: self.data.features[name][rows].astype(np.float32) for name in self.names}
        weight = self.data.weight[rows] * self.photo_weight[rows, None, None]
        flagged = np.broadcast_to(self.image_level[rows, None, None], weight.shape)
        y = np.stack([self.data.target[rows], weight, flagged], axis=-1)
        return x, y.astype(np.float32)

    def on_epoch_end(self) -> None:
        if self.shuffle:
            self.rng.shuffle(self.order)


def source_weights(sources: list[str], power: float) -> np.ndarray:
    """Per photo, its source's photo count to the power ``-power``, scaled to mean 1.

    0 weighs every photo alike, so the largest source (roboflow-corrosion-seg: half the region
    photos, tiny polygons on web photos) sets what rust looks like; 1 gives every source the same
    total weight; between, a tempered balance. Why: a customer's new structure type is a new
    source, and a model that learns every source's way of seeing rust should carry further.
    """
    _, index, counts = np.unique(np.asarray(sources, object), return_inverse=True, return_counts=True)
    weight = counts[index].astype(np.float64) ** -power
    return (weight / weight.mean()).astype(np.float32)


def fit(decoder: keras.Model, train: SplitData, val: SplitData, config: SegmenterConfig, model_dir: str,
        epochs: int | None = None, learning_rate: float | None = None) -> dict:  # fmt: skip
    """The decoder (or any network on cached inputs named as its inputs) on the cached features;
    best epoch by validation loss restored. Returns the history."""
    epochs = epochs or config.head_epochs
    steps = max(1, len(train) // config.batch_size)
    schedule = keras.optimizers.schedules.CosineDecay(learning_rate or config.head_learning_rate, steps * epochs,
                                                      alpha=0.05)  # fmt: skip
    decoder.compile(
        keras.optimizers.AdamW(schedule, weight_decay=config.weight_decay),
        loss=region_loss(config.dice_weight, config.weak_weight if config.weak_photos else 0.0, config.weak_top_share),
    )
    callbacks = [
        keras.callbacks.EarlyStopping(patience=config.early_stopping_patience, restore_best_weights=True, verbose=1),
        TensorBoardScalars(io_utils.join(model_dir, "logs")),
    ]
    names, power = input_names(decoder), config.source_balance
    history = decoder.fit(
        Batches(train, config.batch_size, True, config.seed, names, source_weights(train.sources, power)),
        validation_data=Batches(val, config.batch_size, False, config.seed, names, source_weights(val.sources, power)),
        epochs=epochs, callbacks=callbacks, verbose=2,
    )  # fmt: skip
    return {k: [float(v) for v in values] for k, values in history.history.items()}


def input_names(network: keras.Model) -> tuple[str, ...]:
    """The cached arrays a network on cached features reads, by its inputs' names."""
    return tuple(x.name for x in network.inputs)


def predict(decoder: keras.Model, data: SplitData, batch_size: int) -> np.ndarray:
    batches = Batches(data, batch_size, False, 0, input_names(decoder))
    logits = [np.asarray(decoder.predict_on_batch(batches[i][0])) for i in range(len(batches))]
    return tf.sigmoid(np.concatenate(logits)).numpy()
