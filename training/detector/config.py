"""The detector job's settings (``configs/detector.yaml``): model, anchor assignment, augmentation,
post-processing and the two training phases, named as the classifier names the same settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from corrosion.core.config import config_path, load_config
from training.detector.data import AugmentConfig
from training.detector.decode import PostprocessConfig
from training.detector.model import DetectorModelConfig
from training.detector.targets import AssignmentConfig

DEFAULT_FILE = "detector.yaml"


@dataclass(frozen=True)
class DetectorConfig:
    RENAMED: ClassVar[dict[str, str]] = {
        "frozen_epochs": "head_epochs",
        "learning_rate": "head_learning_rate",
        "finetune_epochs": "fine_tune_epochs",
        "finetune_learning_rate": "fine_tune_learning_rate",
    }

    model: DetectorModelConfig = field(default_factory=DetectorModelConfig)
    assignment: AssignmentConfig = field(default_factory=AssignmentConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    postprocess: PostprocessConfig = field(default_factory=PostprocessConfig)
    weights: str | None = None  # None: the project's resolution ($CORROSION_WEIGHTS, configs/weights.yaml)
    # An exported classifier (training.train_classifier) whose fine-tuned backbone the detector starts
    # from, on top of ``weights``; None: ``weights`` alone.
    init_from_classifier: str | None = None
    batch_size: int = 8
    max_boxes: int = 64  # per image, after which boxes are dropped (the data's maximum is logged)
    negatives_per_positive: float = 1.5  # no-rust images sampled per box image in each epoch
    unlocated_per_positive: float = 0.75  # rust images without boxes per box image (image head only)
    image_loss_weight: float = 1.0  # binary cross-entropy of the image head
    # phase 1: the head on the frozen backbone
    head_epochs: int = 4
    head_learning_rate: float = 2e-3
    # phase 2: the backbone from fine_tune_from on trains too
    fine_tune_epochs: int = 56
    fine_tune_learning_rate: float = 8e-4
    fine_tune_from: str | None = "block_6_expand"  # None = the whole backbone
    warmup_epochs: int = 1
    weight_decay: float = 1e-4
    # Polyak averaging of the weights (Keras optimizer EMA); validation and the exported model use the
    # average. None: off. With a few dozen box images the raw weights swing from epoch to epoch.
    ema_momentum: float | None = 0.99
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0
    box_loss_weight: float = 1.0
    # export: a float32 LiteRT copy of the network for the pipeline's CPU workers (training.export_lite),
    # written only when its raw outputs on lite_check_images synthetic photos match the Keras network's
    export_lite: bool = True
    lite_max_abs_diff: float = 1e-3  # on raw box deltas and logits
    lite_check_images: int = 8
    jit_compile: bool = False  # XLA: compiling MobileNetV2 + head costs a minute on CPU for little per-step gain
    eval_every: int = 2  # epochs between validation COCO evaluations (best epoch kept)
    score_threshold: float | None = None  # None: chosen on validation (max F1 at IoU 0.5)
    default_score_threshold: float = 0.3  # used when validation has no boxes to choose one
    seed: int = 42


def load_detector_config(path: str | None, overrides: dict | None = None) -> DetectorConfig:
    return load_config(DetectorConfig, path or config_path(DEFAULT_FILE), overrides)
