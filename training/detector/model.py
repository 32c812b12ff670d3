"""The rust detector: MobileNetV2 multi-scale features, a light FPN and a shared SSD-lite head.

The network maps 0..255 RGB (N, S, S, 3) to per-anchor box deltas and rust logits; anchors are
laid out level by level, row by row, anchor by anchor, in the same order as the head's reshaped
outputs, so ``anchor_boxes`` and the model always agree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from corrosion.imaging import preprocess
from corrosion.models.weights import WeightSource, build_backbone

BOX_OUTPUT = "box"
CLS_OUTPUT = "cls"
IMAGE_OUTPUT = "image"  # (N, 1) logit: is there rust anywhere in this view


@dataclass(frozen=True)
class DetectorModelConfig:
    """Architecture and anchors; the training job's YAML holds one of these under ``model``."""

    backbone: str = "MobileNetV2"
    alpha: float = 1.0
    input_size: int = 256
    # MobileNetV2 activations at strides 8, 16 and 32; extra_levels adds strides 64, 128, ...
    feature_layers: tuple[str, ...] = ("block_6_expand_relu", "block_13_expand_relu", "out_relu")
    extra_levels: int = 1
    fpn_channels: int = 96
    head_depth: int = 2
    # Anchor side at each level as a fraction of the input side (one per level, smallest first).
    anchor_sizes: tuple[float, ...] = (0.1, 0.2, 0.4, 0.8)
    anchor_scales: tuple[float, ...] = (1.0, 1.4142)
    aspect_ratios: tuple[float, ...] = (0.5, 1.0, 2.0)  # height / width
    box_variance: tuple[float, ...] = (0.1, 0.1, 0.2, 0.2)
    prior_probability: float = 0.01
    norm_groups: int = 8  # GroupNormalization in the FPN and head: no batch statistics, no train/inference gap
    bn_momentum: float = 0.9  # batch norm of a from-scratch backbone (weights none): stats settle in tens of steps
    # An image-level rust logit from the pooled top features, trained on every image (rust photos
    # without boxes too); post-processing blends it into the box scores (see PostprocessConfig).
    image_head: bool = True
    image_head_dropout: float = 0.3

    def __post_init__(self) -> None:
        if self.input_size % 32 or self.input_size < 64:
            raise ValueError(f"input_size must be a multiple of 32 and at least 64, got {self.input_size}")
        if len(self.anchor_sizes) != self.num_levels:
            raise ValueError(
                f"anchor_sizes has {len(self.anchor_sizes)} entries but the model has {self.num_levels} levels "
                f"({len(self.feature_layers)} feature_layers + {self.extra_levels} extra_levels)"
            )
        if self.fpn_channels % self.norm_groups:
            raise ValueError(
                f"fpn_channels ({self.fpn_channels}) must be a multiple of norm_groups ({self.norm_groups})"
            )
        if len(self.box_variance) != 4:
            raise ValueError(f"box_variance needs 4 values, got {self.box_variance}")

    @property
    def num_levels(self) -> int:
        return len(self.feature_layers) + self.extra_levels

    @property
    def anchors_per_location(self) -> int:
        return len(self.anchor_scales) * len(self.aspect_ratios)


def level_shapes(config: DetectorModelConfig) -> list[int]:
    """Feature-map side per level, as the backbone's stride-2 'same' convolutions produce it."""
    return [math.ceil(config.input_size / 2**stride_log) for stride_log in range(3, 3 + config.num_levels)]


def anchor_boxes(config: DetectorModelConfig) -> np.ndarray:
    """All anchors, (A, 4) float32 normalised (ymin, xmin, ymax, xmax), in the head's output order."""
    out = []
    for side, size in zip(level_shapes(config), config.anchor_sizes, strict=True):
        centres = (np.arange(side, dtype=np.float32) + 0.5) / side
        cy, cx = np.meshgrid(centres, centres, indexing="ij")
        shapes = [
            (size * scale * math.sqrt(ratio), size * scale / math.sqrt(ratio))
            for scale in config.anchor_scales
            for ratio in config.aspect_ratios
        ]
        hw = np.array(shapes, np.float32)  # (a, 2) heights, widths
        cy, cx = cy.reshape(-1, 1), cx.reshape(-1, 1)
        level = np.stack(
            [cy - hw[:, 0] / 2, cx - hw[:, 1] / 2, cy + hw[:, 0] / 2, cx + hw[:, 1] / 2], axis=-1
        )  # (side*side, a, 4)
        out.append(level.reshape(-1, 4))
    return np.concatenate(out).astype(np.float32)


def _conv_gn(keras, x, channels: int, stride: int, groups: int, name: str):
    x = keras.layers.SeparableConv2D(channels, 3, strides=stride, padding="same", use_bias=False, name=f"{name}_conv")(
        x
    )
    x = keras.layers.GroupNormalization(groups, name=f"{name}_gn")(x)
    return keras.layers.ReLU(6.0, name=f"{name}_relu")(x)


def build_detector(config: DetectorModelConfig, weights: WeightSource):
    """Keras model: 0..255 RGB -> {"box": (N, A, 4) deltas, "cls": (N, A) logits[, "image": (N, 1) logit]};
    also returns the backbone."""
    import keras

    features = _feature_extractor(keras, config, weights)
    images = keras.Input((config.input_size, config.input_size, 3), name="images")
    c_levels = features(preprocess.normalisation_layer(config.backbone)(images))
    outputs = _anchor_heads(keras, _pyramid(keras, c_levels, config), config)
    if config.image_head:
        pooled = keras.layers.GlobalAveragePooling2D(name="image_pool")(c_levels[-1])
        pooled = keras.layers.Dropout(config.image_head_dropout, name="image_dropout")(pooled)
        outputs[IMAGE_OUTPUT] = keras.layers.Dense(1, name=IMAGE_OUTPUT)(pooled)
    return keras.Model(images, outputs, name="rust_detector"), features


def _feature_extractor(keras, config: DetectorModelConfig, weights: WeightSource):
    """The backbone cut at ``feature_layers`` (strides 8/16/32), batch norm set for how it trains."""
    backbone = build_backbone(config.backbone, config.input_size, weights, alpha=config.alpha)
    for layer in backbone.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            if weights.kind == "none":  # from scratch, batch norm must learn its statistics
                layer.momentum = config.bn_momentum
            else:  # batch statistics of a few images per step would wreck ImageNet's
                layer.trainable = False
    return keras.Model(
        backbone.input, [backbone.get_layer(name).output for name in config.feature_layers], name="backbone"
    )


def _pyramid(keras, c_levels, config: DetectorModelConfig) -> list:
    """FPN: lateral 1x1 convolutions merged top-down, then ``extra_levels`` stride-2 levels."""
    ch, groups = config.fpn_channels, config.norm_groups
    laterals = [keras.layers.Conv2D(ch, 1, padding="same", name=f"fpn_lateral{i}")(c) for i, c in enumerate(c_levels)]
    merged = [laterals[-1]]
    for i in range(len(laterals) - 2, -1, -1):  # top-down: coarse context into finer levels
        up = keras.layers.UpSampling2D(2, interpolation="nearest", name=f"fpn_up{i}")(merged[0])
        merged.insert(0, keras.layers.Add(name=f"fpn_add{i}")([laterals[i], up]))
    pyramid = [_conv_gn(keras, m, ch, 1, groups, f"fpn_out{i}") for i, m in enumerate(merged)]
    for j in range(config.extra_levels):
        pyramid.append(_conv_gn(keras, pyramid[-1], ch, 2, groups, f"fpn_extra{j}"))
    return pyramid


def _anchor_heads(keras, pyramid: list, config: DetectorModelConfig) -> dict:
    """One SSD-lite head shared by all levels (RetinaNet): box deltas and rust logits per anchor.

    Group norm, not batch norm: a batch-norm layer called on every level would mix the levels'
    statistics, and with a few images per step its moving averages lag the batch statistics, so
    inference would see a different network.
    """
    ch, a = config.fpn_channels, config.anchors_per_location
    prior = -math.log((1 - config.prior_probability) / config.prior_probability)

    def tower_layers(kind: str):
        return [
            (
                keras.layers.SeparableConv2D(ch, 3, padding="same", use_bias=False, name=f"{kind}_tower{d}"),
                keras.layers.GroupNormalization(config.norm_groups, name=f"{kind}_tower{d}_gn"),
            )
            for d in range(config.head_depth)
        ]

    cls_tower, box_tower = tower_layers("cls"), tower_layers("box")
    cls_pred = keras.layers.SeparableConv2D(
        a, 3, padding="same", bias_initializer=keras.initializers.Constant(prior), name="cls_pred"
    )
    box_pred = keras.layers.SeparableConv2D(4 * a, 3, padding="same", name="box_pred")

    def tower(x, layers):
        for conv, norm in layers:
            x = keras.ops.relu6(norm(conv(x)))
        return x

    cls_out, box_out = [], []
    for i, (p, side) in enumerate(zip(pyramid, level_shapes(config), strict=True)):
        if p.shape[1] != side:
            raise ValueError(f"level {i} has side {p.shape[1]}, anchors expect {side}: check feature_layers")
        cls_out.append(keras.layers.Reshape((side * side * a,), name=f"cls_level{i}")(cls_pred(tower(p, cls_tower))))
        box_out.append(keras.layers.Reshape((side * side * a, 4), name=f"box_level{i}")(box_pred(tower(p, box_tower))))
    return {
        BOX_OUTPUT: keras.layers.Concatenate(axis=1, name=BOX_OUTPUT)(box_out),
        CLS_OUTPUT: keras.layers.Concatenate(axis=1, name=CLS_OUTPUT)(cls_out),
    }


def set_backbone_trainable(features, trainable_from: str | None, train_batch_norm: bool = False) -> int:
    """Freeze the backbone, or unfreeze it from layer ``trainable_from`` on; returns #trainable layers.

    Batch norm stays frozen (inference mode) unless ``train_batch_norm`` (a from-scratch backbone).
    """
    import keras

    names = [layer.name for layer in features.layers]
    if trainable_from is not None and trainable_from not in names:
        raise ValueError(f"fine_tune_from layer {trainable_from!r} is not in the backbone; e.g. {names[-20::4]}")
    start = names.index(trainable_from) if trainable_from is not None else len(names)
    features.trainable = True
    count = 0
    for i, layer in enumerate(features.layers):
        is_bn = isinstance(layer, keras.layers.BatchNormalization)
        layer.trainable = i >= start and (train_batch_norm or not is_bn)
        count += int(layer.trainable and bool(layer.weights))
    return count


def init_backbone_from_classifier(backbone, classifier_dir: str, config: DetectorModelConfig) -> int:
    """Copy an exported rust classifier's backbone weights into the detector's; returns the layers copied.

    The classifier learnt rust against copper, red paint and clean steel from every image-level
    label in the data set, the detector only from the photos with boxes. Layer by layer, by name:
    the input sizes may differ.
    """
    from training.classifier.model import load_exported_classifier

    parts = load_exported_classifier(classifier_dir)
    source = parts.backbone
    copied = 0
    for layer in backbone.layers:
        if not layer.weights:
            continue
        try:
            source_layer = source.get_layer(layer.name)
        except ValueError as exc:
            raise ValueError(
                f"init_from_classifier: the classifier in {classifier_dir} has a {source.name} backbone without layer "
                f"{layer.name!r}; the detector's is {config.backbone} (alpha {config.alpha}): train the classifier "
                "with the detector's backbone"
            ) from exc
        values = source_layer.get_weights()
        want = [tuple(w.shape) for w in layer.weights]
        if [v.shape for v in values] != want:
            raise ValueError(
                f"init_from_classifier: layer {layer.name!r} of the classifier in {classifier_dir} has weight shapes "
                f"{[v.shape for v in values]}, the detector's {want}: the backbones differ (detector {config.backbone} "
                f"alpha {config.alpha}); use a classifier trained with the same backbone and alpha"
            )
        layer.set_weights(values)
        copied += 1
    return copied
