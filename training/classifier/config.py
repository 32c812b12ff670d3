"""The classifier job's settings (``configs/classifier.yaml``): backbone, the two training phases,
augmentation, threshold choice and export, named as the detector names the same settings."""

from __future__ import annotations

from dataclasses import dataclass, field

from corrosion.core.config import config_path, load_config

DEFAULT_FILE = "classifier.yaml"


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
    weights: str | None = None  # imagenet | none | /path.h5; None = corrosion.models.weights resolution order
    dropout: float = 0.5
    l2: float = 1e-4  # on the head's kernel
    label_smoothing: float = 0.1  # softens the 0/1 targets: less over-confident scores on a small data set
    batch_size: int = 32
    seed: int = 42
    # phase 1: frozen backbone, head only
    head_epochs: int = 30
    head_learning_rate: float = 1e-3
    # On CPU both phases run on backbone activations computed once (at fine_tune_from) for the
    # training images plus ``feature_augmented_copies`` augmented views of each: the same model, trained
    # on a fixed set of augmented views instead of fresh ones, many times faster. False: end to end.
    cache_features: bool = True
    feature_augmented_copies: int = 4
    # phase 2: fine-tune the top of the backbone
    fine_tune_epochs: int = 20
    fine_tune_learning_rate: float = 2e-5
    fine_tune_from: str = "block_11_expand"  # first backbone layer fine-tuned (MobileNetV2: blocks 11-16 + Conv_1)
    early_stopping_patience: int = 4  # epochs without a better validation ROC-AUC
    # data
    cache_images: bool = True  # decoded, resized images kept in memory between epochs
    shuffle_buffer: int = 2048
    class_weights: bool = True  # weight classes inversely to their training frequency
    # Clean-steel crops (corrosion.data.clean_crops): one square per mask-annotated rust photo, cut
    # away from every region, as no_rust training images; validation's and test's crops are scored
    # apart (the false-alarm rate on clean parts of inspection photos), never mixed into their figures.
    clean_crops: bool = True
    clean_crop_sides: tuple[float, ...] = (0.5, 0.35)  # of the photo's short side, largest that fits
    clean_crop_margin: float = 0.02  # of the long side, kept from every rust pixel and box
    # evaluation
    target_recall: float = 0.95  # the threshold is chosen on validation to reach this recall
    # ... pooled and on every validation source with at least this many rust photos (0: pooled only)
    threshold_min_source_rust: int = 20
    min_precision: float = 0.90  # reported: best recall at this precision
    baseline: bool = True  # frozen-features + logistic-regression baseline on the same splits
    baseline_steps: int = 500  # full-batch steps; the logistic loss is convex, this converges
    baseline_l2: float = 1e-3
    augmentation: AugmentationConfig = field(default_factory=AugmentationConfig)
    # export: a float32 LiteRT copy for the pipeline's CPU workers (training.export_lite), written
    # only when its scores match the SavedModel's on lite_check_images synthetic photos
    export_lite: bool = True
    lite_max_abs_diff: float = 1e-4
    lite_check_images: int = 8

    def __post_init__(self) -> None:
        if self.input_size < 32:
            raise ValueError(f"input_size {self.input_size} is too small (keras.applications needs at least 32)")
        if not 0.0 < self.target_recall <= 1.0:
            raise ValueError(f"target_recall must be in (0, 1], got {self.target_recall}")
        if self.head_epochs < 1:
            raise ValueError("head_epochs must be at least 1: the new head starts random")
        if not all(0.0 < side <= 1.0 for side in self.clean_crop_sides) or not 0.0 <= self.clean_crop_margin < 0.5:
            raise ValueError("clean_crop_sides must be in (0, 1] and clean_crop_margin in [0, 0.5)")
        if self.fine_tune_epochs < 0 or self.feature_augmented_copies < 0:
            raise ValueError("fine_tune_epochs and feature_augmented_copies must be >= 0")


def load_classifier_config(path: str | None, overrides: dict | None = None) -> ClassifierConfig:
    return load_config(ClassifierConfig, path or config_path(DEFAULT_FILE), overrides)
