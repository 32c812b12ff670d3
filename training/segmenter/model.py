"""The segmenter: a frozen ImageNet backbone's features at strides 8 / 16 / 32, a light top-down
decoder (FPN-style: 1x1 lateral convolutions, upsample and add, separable 3x3 refinement) and one
rust logit per stride-8 cell.

The backbone stays frozen, so training runs on features computed once (``training.segmenter.data``)
and the decoder is the only thing that learns; the exported model chains both on 0..255 RGB.
Wide features at all three strides because rust is told by texture at the small scale and by
context (a painted hull vs a rusty one) at the large: a linear probe of rust per 16-px cell scored
0.839 patch AUC on stride-16 features alone and 0.869 with stride-32 beside them (issue 17).
"""

from __future__ import annotations

import keras
import numpy as np

from corrosion.imaging import preprocess
from corrosion.models.weights import WeightSource, build_backbone
from training.segmenter.config import SegmenterConfig

FEATURE_NAMES = ("s8", "s16", "s32")
VARIANCE_FLOOR = 1e-6  # of a tap's mean channel variance (``with_standardisation``)


def build_feature_extractor(config: SegmenterConfig, weights: WeightSource) -> keras.Model:
    """0..255 RGB (N, S, S, 3) -> {"s8", "s16", "s32"}: the frozen backbone's taps, in inference mode."""
    backbone = build_backbone(config.backbone, config.input_size, weights)
    backbone.trainable = False
    taps = keras.Model(backbone.input, [backbone.get_layer(n).output for n in config.feature_layers], name="taps")
    images = keras.Input((config.input_size, config.input_size, 3), name="images")
    outputs = taps(preprocess.normalisation_layer(config.backbone)(images), training=False)
    return keras.Model(images, dict(zip(FEATURE_NAMES, outputs, strict=True)), name="features")


def with_standardisation(features: keras.Model, sample: np.ndarray, batch_size: int = 32) -> keras.Model:
    """The extractor with each tap standardised per channel (mean 0, variance 1 on ``sample`` photos).

    Part of the exported graph. Taps differ by orders of magnitude (a backbone without ImageNet
    weights gives 1e-5 at stride 8 and 1e-12 at stride 32), which float16 caching would flush to
    zero and which would leave the decoder's first layers badly conditioned. A channel (nearly)
    constant on the sample, such as a ReLU6 that never fires on a demo's generated photos, gets its
    tap's mean variance times ``VARIANCE_FLOOR``: dividing by its own ~0 spread turned the first
    photo where it fires into inf, and the map into NaN.
    """
    found = {name: [] for name in FEATURE_NAMES}
    for start in range(0, len(sample), batch_size):
        out = features(sample[start : start + batch_size], training=False)
        for name in FEATURE_NAMES:
            found[name].append(np.asarray(out[name], np.float64))
    statistics = {}
    for name in FEATURE_NAMES:
        values = np.concatenate(found[name])
        mean, var = values.mean(axis=(0, 1, 2)), values.var(axis=(0, 1, 2))
        floor = max(float(var.mean()) * VARIANCE_FLOOR, 1e-30)
        statistics[name] = (mean, np.maximum(var, floor))
    return standardised(features, statistics)


def standardised(features: keras.Model, statistics: dict[str, tuple[np.ndarray, np.ndarray]]) -> keras.Model:
    """``features`` with each tap standardised by its (per-channel mean, variance) in ``statistics``."""
    images = keras.Input(features.input_shape[1:], name="images")
    taps = features(images)
    out = {
        name: keras.layers.Normalization(mean=mean, variance=var, name=f"standardise_{name}")(taps[name])
        for name, (mean, var) in statistics.items()
    }
    return keras.Model(images, out, name="standardised_features")


def tap_statistics(standardised_features: keras.Model) -> tuple[keras.Model, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """The inverse of ``standardised``: its raw extractor and each tap's (mean, variance)."""
    statistics = {}
    for name in FEATURE_NAMES:
        layer = standardised_features.get_layer(f"standardise_{name}")
        statistics[name] = (np.asarray(layer.mean).reshape(-1), np.asarray(layer.variance).reshape(-1))
    raw = next(layer for layer in standardised_features.layers if isinstance(layer, keras.Model))
    return raw, statistics


def build_decoder(config: SegmenterConfig, shapes: dict[str, tuple[int, ...]]) -> keras.Model:
    """{"s8", "s16", "s32"} features -> (N, S/8, S/8) rust logits."""
    ch = config.decoder_channels
    inputs = {name: keras.Input(shapes[name], name=name) for name in FEATURE_NAMES}
    dropped = {n: keras.layers.SpatialDropout2D(config.dropout, name=f"drop_{n}")(x) for n, x in inputs.items()}
    lateral = {n: keras.layers.Conv2D(ch, 1, name=f"lateral_{n}")(x) for n, x in dropped.items()}
    x = lateral["s32"]
    for finer in ("s16", "s8"):  # coarse context into finer levels
        x = keras.layers.UpSampling2D(2, interpolation="bilinear", name=f"up_to_{finer}")(x)
        x = keras.layers.Add(name=f"add_{finer}")([x, lateral[finer]])
        x = keras.layers.SeparableConv2D(ch, 3, padding="same", activation="relu", name=f"refine_{finer}")(x)
    x = keras.layers.SeparableConv2D(ch, 3, padding="same", activation="relu", name="head")(x)
    logits = keras.layers.Conv2D(1, 1, name="rust_logit")(x)
    return keras.Model(inputs, keras.layers.Reshape(logits.shape[1:3], name="logits")(logits), name="decoder")


def build_segmenter(features: keras.Model, decoder: keras.Model) -> keras.Model:
    """The exported network: 0..255 RGB -> (N, S/8, S/8) rust probability."""
    images = keras.Input(features.input_shape[1:], name="images")
    logits = decoder(features(images))
    return keras.Model(images, keras.layers.Activation("sigmoid", name="rust_probability")(logits), name="segmenter")
