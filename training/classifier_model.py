"""The rust classifier: a keras.applications backbone, in-graph augmentation and a small head.

The model takes RGB 0..255 at ``input_size`` (what ``corrosion.preprocess.decode_and_resize``
gives) and normalises inside the graph, so training, export and inference feed it the same tensor.
It is assembled from three parts that share weights:

- ``augment``: Keras preprocessing layers, active only in training;
- ``features``: normalisation + backbone (always called with ``training=False``, so batch norm stays
  in inference mode even while its top blocks are fine-tuned) + global average pooling;
- ``head``: dropout + one sigmoid unit, trainable alone on cached features in phase 1.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import keras
import numpy as np

from corrosion import preprocess
from corrosion.weights import WeightSource, build_backbone


@dataclass(frozen=True)
class AugmentationConfig:
    horizontal_flip: bool = True
    vertical_flip: bool = True  # plates, hulls and pipes have no fixed "up" in close-ups
    rotation: float = 0.08  # fraction of a full turn
    zoom: float = 0.15
    brightness: float = 0.15  # fraction of the value range
    contrast: float = 0.15
    hue: float = 0.02  # light: rust is defined by its hue, a large shift would change the label


@dataclass(frozen=True)
class ClassifierConfig:
    backbone: str = "MobileNetV2"  # any keras.applications model name
    backbone_kwargs: dict = field(default_factory=dict)  # e.g. {alpha: 0.35} for MobileNetV2
    input_size: int = 224
    weights: str | None = None  # imagenet | none | /path.h5; None = corrosion.weights resolution order
    dropout: float = 0.2
    l2: float = 1e-4  # on the head's kernel
    batch_size: int = 32
    seed: int = 42
    # phase 1: frozen backbone, head only
    head_epochs: int = 30
    head_learning_rate: float = 1e-3
    cache_features: bool = True  # phase 1 on backbone features computed once (many times faster on CPU)
    feature_augmented_copies: int = 2  # augmented views per training image added to the feature cache
    # phase 2: fine-tune the top of the backbone
    fine_tune_epochs: int = 8
    fine_tune_learning_rate: float = 1e-5
    fine_tune_layers: int = 30  # backbone layers, counted from the top, made trainable (batch norm excepted)
    early_stopping_patience: int = 4  # epochs without a better validation ROC-AUC
    # data
    cache_images: bool = True  # decoded, resized images kept in memory between epochs
    shuffle_buffer: int = 2048
    class_weights: bool = True  # weight classes inversely to their training frequency
    # evaluation
    target_recall: float = 0.95  # the threshold is chosen on validation to reach this recall
    min_precision: float = 0.90  # reported: best recall at this precision
    baseline: bool = True  # frozen-features + logistic-regression baseline on the same splits
    baseline_steps: int = 500  # full-batch steps; the logistic loss is convex, this converges
    baseline_l2: float = 1e-3
    augmentation: AugmentationConfig = field(default_factory=AugmentationConfig)

    def __post_init__(self) -> None:
        if self.input_size < 32:
            raise ValueError(f"input_size {self.input_size} is too small (keras.applications needs at least 32)")
        if not 0.0 < self.target_recall <= 1.0:
            raise ValueError(f"target_recall must be in (0, 1], got {self.target_recall}")
        if self.head_epochs < 1:
            raise ValueError("head_epochs must be at least 1: the new head starts random")
        if self.fine_tune_epochs < 0 or self.fine_tune_layers < 0:
            raise ValueError("fine_tune_epochs and fine_tune_layers must be >= 0")


@dataclass
class ClassifierParts:
    model: keras.Model  # images 0..255 -> rust probability (N, 1), with augmentation (for fit)
    inference: keras.Model  # the same weights without the augmentation layers (for predict and export)
    features: keras.Model  # images 0..255 -> pooled backbone features (N, C)
    head: keras.Model  # features -> rust probability (N, 1)
    augment: keras.Sequential
    backbone: keras.Model


def build_augmentation(cfg: AugmentationConfig, seed: int) -> keras.Sequential:
    """In-graph augmentation on 0..255 images; identity at inference."""
    layers: list[keras.layers.Layer] = []
    mode = {(True, True): "horizontal_and_vertical", (True, False): "horizontal", (False, True): "vertical"}
    flip = mode.get((cfg.horizontal_flip, cfg.vertical_flip))
    if flip:
        layers.append(keras.layers.RandomFlip(flip, seed=seed))
    if cfg.rotation:
        layers.append(keras.layers.RandomRotation(cfg.rotation, fill_mode="reflect", seed=seed + 1))
    if cfg.zoom:
        layers.append(keras.layers.RandomZoom((-cfg.zoom, cfg.zoom), fill_mode="reflect", seed=seed + 2))
    if cfg.brightness:
        layers.append(keras.layers.RandomBrightness(cfg.brightness, value_range=(0, 255), seed=seed + 3))
    if cfg.contrast:
        layers.append(keras.layers.RandomContrast(cfg.contrast, value_range=(0, 255), seed=seed + 4))
    if cfg.hue:
        layers.append(keras.layers.RandomHue(cfg.hue, value_range=(0, 255), seed=seed + 5))
    return keras.Sequential(layers, name="augment")


def build_classifier(cfg: ClassifierConfig, weights: WeightSource) -> ClassifierParts:
    size = cfg.input_size
    backbone = build_backbone(cfg.backbone, size, weights, **cfg.backbone_kwargs)
    backbone.trainable = False

    images = keras.Input((size, size, 3), name="images")
    x = preprocess.normalisation_layer(cfg.backbone)(images)
    x = backbone(x, training=False)  # batch norm in inference mode in both phases
    pooled = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    features = keras.Model(images, pooled, name="features")

    feature_in = keras.Input((pooled.shape[-1],), name="features_in")
    y = keras.layers.Dropout(cfg.dropout, seed=cfg.seed, name="head_dropout")(feature_in)
    y = keras.layers.Dense(1, activation="sigmoid", kernel_regularizer=keras.regularizers.L2(cfg.l2), name="rust")(y)
    head = keras.Model(feature_in, y, name="head")

    augment = build_augmentation(cfg.augmentation, cfg.seed)
    inputs = keras.Input((size, size, 3), name="images")
    outputs = head(features(augment(inputs)))
    model = keras.Model(inputs, outputs, name=f"rust_classifier_{cfg.backbone}")
    inference = keras.Model(images, head(pooled), name="rust_classifier")
    return ClassifierParts(model, inference, features, head, augment, backbone)


def unfreeze_top(backbone: keras.Model, n_layers: int) -> int:
    """Make the top ``n_layers`` layers trainable, batch norm excepted; returns how many weights train."""
    backbone.trainable = True
    cutoff = max(0, len(backbone.layers) - n_layers)
    for index, layer in enumerate(backbone.layers):
        layer.trainable = index >= cutoff and not isinstance(layer, keras.layers.BatchNormalization)
    return sum(int(np.prod(w.shape)) for w in backbone.trainable_weights)


def auc_metric() -> keras.metrics.AUC:
    """Validation ROC-AUC for checkpoint selection and early stopping (the report uses exact AUCs)."""
    return keras.metrics.AUC(curve="ROC", num_thresholds=1000, name="auc")
