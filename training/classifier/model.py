"""The rust classifier: a keras.applications backbone, in-graph augmentation and a small head.

The model takes RGB 0..255 at ``input_size`` (what ``corrosion.imaging.preprocess.decode_and_resize``
gives) and normalises inside the graph, so training, export and inference feed it the same tensor.
It is assembled from three parts that share weights:

- ``augment``: Keras preprocessing layers, active only in training;
- ``features``: normalisation + backbone (always called with ``training=False``, so batch norm stays
  in inference mode even while its top blocks are fine-tuned) + global average pooling;
- ``head``: dropout + one sigmoid unit, trainable alone on cached features in phase 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np

from corrosion.imaging import preprocess
from corrosion.models.weights import WeightSource, build_backbone
from training.classifier.config import AugmentationConfig, ClassifierConfig


@dataclass
class ClassifierParts:
    """Views of one set of weights; every model here shares its layers with the others."""

    model: keras.Model  # images 0..255 -> rust probability (N, 1), with augmentation (end-to-end fit)
    inference: keras.Model  # the same without the augmentation layers (predict and export)
    features: keras.Model  # images 0..255 -> pooled backbone features (N, C)
    head: keras.Model  # pooled features -> rust probability
    bottom: keras.Model  # images 0..255 -> backbone activations where fine-tuning starts (always frozen)
    top: keras.Model  # those activations -> rust probability (the fine-tuned blocks + head)
    top_features: keras.Model  # those activations -> pooled features
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


def split_backbone(backbone: keras.Model, first_top_layer: str) -> tuple[keras.Model, keras.Model]:
    """(bottom, top) sub-models sharing ``backbone``'s layers, cut at the input of ``first_top_layer``.

    The cut must be a tensor that everything above depends on alone (a block boundary: in
    MobileNetV2 the input of ``block_N_expand`` for a stride-2 block N, or of ``block_N_add``'s
    branch start otherwise); Keras refuses any other cut.
    """
    try:
        layer = backbone.get_layer(first_top_layer)
    except ValueError as exc:
        names = [layer.name for layer in backbone.layers]
        raise ValueError(
            f"fine_tune_from: {backbone.name} has no layer {first_top_layer!r}; its last layers are {names[-40:]}"
        ) from exc
    cut = layer.input
    if isinstance(cut, (list, tuple)):
        raise ValueError(
            f"fine_tune_from: layer {first_top_layer!r} has several inputs; name the first layer of a block instead"
        )
    try:
        bottom = keras.Model(backbone.input, cut, name="backbone_bottom")
        top = keras.Model(cut, backbone.output, name="backbone_top")
    except Exception as exc:  # Keras: the graph above the cut needs tensors from below it
        raise ValueError(
            f"fine_tune_from: the backbone cannot be cut at {first_top_layer!r} ({exc}); name the first layer of a block "
            "whose input is the only tensor the layers above it use"
        ) from exc
    return bottom, top


def build_classifier(cfg: ClassifierConfig, weights: WeightSource) -> ClassifierParts:
    size = cfg.input_size
    backbone = build_backbone(cfg.backbone, size, weights, **cfg.backbone_kwargs)
    backbone.trainable = False
    backbone_bottom, backbone_top = split_backbone(backbone, cfg.fine_tune_from)
    normalise = preprocess.normalisation_layer(cfg.backbone)
    pool = keras.layers.GlobalAveragePooling2D(name="pool")

    # batch norm in inference mode everywhere (training=False), in both phases
    images = keras.Input((size, size, 3), name="images")
    pooled = pool(backbone(normalise(images), training=False))
    features = keras.Model(images, pooled, name="features")
    bottom = keras.Model(images, backbone_bottom(normalise(images), training=False), name="bottom")

    feature_in = keras.Input((pooled.shape[-1],), name="features_in")
    y = keras.layers.Dropout(cfg.dropout, seed=cfg.seed, name="head_dropout")(feature_in)
    y = keras.layers.Dense(1, activation="sigmoid", kernel_regularizer=keras.regularizers.L2(cfg.l2), name="rust")(y)
    head = keras.Model(feature_in, y, name="head")

    activations = keras.Input(tuple(backbone_bottom.output.shape[1:]), name="activations")
    top_pooled = pool(backbone_top(activations, training=False))
    top_features = keras.Model(activations, top_pooled, name="top_features")
    top = keras.Model(activations, head(top_pooled), name="top")

    augment = build_augmentation(cfg.augmentation, cfg.seed)
    augmented_in = keras.Input((size, size, 3), name="images")
    model = keras.Model(augmented_in, head(features(augment(augmented_in))), name=f"rust_classifier_{cfg.backbone}")
    inference = keras.Model(images, head(pooled), name="rust_classifier")
    return ClassifierParts(model, inference, features, head, bottom, top, top_features, augment, backbone)


def unfreeze_from(backbone: keras.Model, first_layer: str) -> int:
    """Make ``first_layer`` and every layer after it trainable, batch norm excepted; returns the weight count."""
    backbone.trainable = True
    names = [layer.name for layer in backbone.layers]
    cutoff = names.index(first_layer)
    for index, layer in enumerate(backbone.layers):
        layer.trainable = index >= cutoff and not isinstance(layer, keras.layers.BatchNormalization)
    return sum(int(np.prod(w.shape)) for w in backbone.trainable_weights)


def auc_metric() -> keras.metrics.AUC:
    """Validation ROC-AUC for checkpoint selection and early stopping (the report uses exact AUCs)."""
    return keras.metrics.AUC(curve="ROC", num_thresholds=1000, name="auc")


def load_exported_classifier(model_dir: str) -> ClassifierParts:
    """An exported classifier (``training.train_classifier``) rebuilt as Keras parts with its trained weights.

    The SavedModel keeps only a serving graph, but its checkpoint holds the variables of
    ``parts.inference``; rebuilding that model from metadata.json and reading the checkpoint gives
    back a Keras backbone that another model (the detector) can start from.
    """
    from corrosion.models import serving
    from training.common.export import restore_exported_weights

    meta = serving.read_metadata(model_dir)
    if meta.kind != "classifier":
        raise ValueError(
            f"{model_dir} holds a {meta.kind} (metadata.json), not a classifier from training.train_classifier"
        )
    cfg = ClassifierConfig(
        backbone=meta.backbone, input_size=meta.input_size, backbone_kwargs=dict(meta.extra.get("backbone_kwargs", {}))
    )
    parts = build_classifier(cfg, WeightSource("none", None, f"classifier {meta.version}"))
    restore_exported_weights(
        parts.inference,
        model_dir,
        f"classifier {meta.version} must come from training.train_classifier of this project "
        "(a MobileNetV2-style classifier whose metadata names its backbone)",
    )
    return parts
