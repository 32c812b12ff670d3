"""Fine-tuning the upper backbone with the lower backbone's output cached (``fine_tune_from``).

The frozen-feature decoder trains first (as without fine-tuning: a linear probe before fine-tuning
distorts the ImageNet features least); then every backbone layer after ``fine_tune_from`` trains
with it at a low rate. The cut layer's output is cached per photo beside the taps, so an epoch
costs the upper blocks' forward and backward passes, never the lower blocks' or a photo decode.
The upper layers are the very layers of the extractor the export chains (a slice of its graph),
so the exported network serves the fine-tuned weights without copying them.

Batch normalisation keeps ImageNet's statistics (its layers run in inference mode and do not
train): the batches are small and from few sources, and the night sees other ones. Taps before
the cut stay cached; those after it are recomputed and standardised by the extractor's own
standardisation layers. With ``fine_tune_from`` at an early layer and a larger ``input_size``
this is the accelerator recipe (``configs/segmenter_gpu.yaml``).
"""

from __future__ import annotations

import logging

import keras
import numpy as np

from corrosion.core import io_utils
from training.segmenter.config import SegmenterConfig
from training.segmenter.data import SplitData, _features, _pixel_facts, cache_key
from training.segmenter.fitting import fit
from training.segmenter.model import FEATURE_NAMES

log = logging.getLogger("training.train_segmenter")

CUT = "cut"


def _taps(features: keras.Model) -> keras.Model:
    """The backbone's tap model inside the standardised extractor (``model.with_standardisation``)."""
    return features.get_layer("features").get_layer("taps")


def cut_extractor(features: keras.Model, config: SegmenterConfig) -> keras.Model:
    """0..255 RGB -> {"cut": the output of ``fine_tune_from``} (the frozen lower backbone)."""
    from corrosion.imaging import preprocess

    taps = _taps(features)
    lower = keras.Model(taps.input, taps.get_layer(config.fine_tune_from).output, name="lower")
    images = keras.Input(features.input_shape[1:], name="images")
    cut = lower(preprocess.normalisation_layer(config.backbone)(images), training=False)
    return keras.Model(images, {CUT: cut}, name="cut_features")


def with_cut(splits: dict[str, SplitData], data: str, features: keras.Model, config: SegmenterConfig,
             weights: str, mirrored) -> dict[str, SplitData]:  # fmt: skip
    """Every split with the cut layer's output beside its taps (cached in ``feature_cache``)."""
    extractor = cut_extractor(features, config)
    out = {}
    for split, found in splits.items():
        flip = mirrored(split, config)
        folder = None
        if config.feature_cache is not None:
            key = cache_key(data, split, config, weights, flip, ("cut", config.fine_tune_from))
            folder = io_utils.join(config.feature_cache, f"{split}-cut-{key}")
        cut = _cached_cut(folder)
        if cut is None:
            log.info("%s: caching the output of %s", split, config.fine_tune_from)
            _, kept = _pixel_facts(data, split, config)
            cut = _features(data, split, extractor, config, kept, sum(kept), flip, folder)[CUT]
            if folder is not None:
                io_utils.write_text(io_utils.join(folder, "done"), f"{len(found)}\n")
        if len(cut) != len(found):
            raise RuntimeError(f"{split}: {len(cut)} cut features for {len(found)} views; clear {folder}")
        found.features = {**found.features, CUT: cut}
        out[split] = found
    return out


def _cached_cut(folder: str | None) -> np.ndarray | None:
    if folder is None or not io_utils.exists(io_utils.join(folder, "done")):
        return None
    return np.load(io_utils.join(folder, f"{CUT}.npy"), mmap_mode="r")


def upper_model(features: keras.Model, config: SegmenterConfig) -> tuple[keras.Model, list[str]]:
    """(the backbone after the cut -> the taps that depend on it, those taps' names)."""
    taps = _taps(features)
    order = [layer.name for layer in taps.layers]
    if config.fine_tune_from not in order:
        raise ValueError(f"fine_tune_from={config.fine_tune_from!r} is not a layer of {config.backbone}")
    cut_at = order.index(config.fine_tune_from)
    layers = dict(zip(FEATURE_NAMES, config.feature_layers, strict=True))
    after = [n for n in FEATURE_NAMES if order.index(layers[n]) > cut_at]
    if not after:
        raise ValueError(f"fine_tune_from={config.fine_tune_from!r} comes after every tap: nothing would train")
    try:
        upper = keras.Model(taps.get_layer(config.fine_tune_from).output,
                            [taps.get_layer(layers[n]).output for n in after], name="upper")  # fmt: skip
    except ValueError as e:
        raise ValueError(
            f"fine_tune_from={config.fine_tune_from!r}: later layers also read layers before it ({e}); "
            "choose a block's _add output or the project_BN of a block without a shortcut"
        ) from e
    for layer in upper.layers:
        layer.trainable = not isinstance(layer, keras.layers.BatchNormalization)
    return upper, after


def network(features: keras.Model, decoder: keras.Model, config: SegmenterConfig) -> tuple[keras.Model, keras.Model]:
    """(cached inputs {taps before the cut, "cut"} -> rust logits, the trainable upper backbone)."""
    upper, after = upper_model(features, config)
    before = [n for n in FEATURE_NAMES if n not in after]
    inputs = {n: keras.Input(decoder.get_layer(n).output.shape[1:], name=n) for n in before}
    inputs[CUT] = keras.Input(upper.input_shape[1:], name=CUT)
    found = upper(inputs[CUT], training=False)
    found = found if isinstance(found, list) else [found]
    taps = {n: inputs[n] for n in before}
    taps |= {n: features.get_layer(f"standardise_{n}")(x) for n, x in zip(after, found, strict=True)}
    return keras.Model(inputs, decoder(taps), name="fine_tuned"), upper


def fine_tune(features: keras.Model, decoder: keras.Model, train: SplitData, val: SplitData,
              config: SegmenterConfig, logs: str) -> tuple[keras.Model, dict]:  # fmt: skip
    """The upper backbone and the decoder trained together; (that network, its history)."""
    model, upper = network(features, decoder, config)
    log.info("fine-tuning %d backbone weights after %s for up to %d epochs",
             sum(int(np.prod(w.shape)) for w in upper.trainable_weights), config.fine_tune_from,
             config.fine_tune_epochs)  # fmt: skip
    history = fit(model, train, val, config, logs, epochs=config.fine_tune_epochs,
                  learning_rate=config.fine_tune_learning_rate)  # fmt: skip
    return model, history


def reset_upper(features: keras.Model, config: SegmenterConfig):
    """A function that puts the upper backbone's present weights back (call it before any
    fine-tuning: one fold's must not carry into the next, the layers are shared)."""
    upper, _ = upper_model(features, config)
    saved = upper.get_weights()
    return lambda: upper.set_weights(saved)
