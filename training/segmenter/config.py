"""The segmenter job's settings (``configs/segmenter.yaml``), named as the other jobs name them."""

from __future__ import annotations

from dataclasses import dataclass

from corrosion.core.config import config_path, load_config

DEFAULT_FILE = "segmenter.yaml"


@dataclass(frozen=True)
class SegmenterConfig:
    backbone: str = "EfficientNetLite2"  # MobileNetV2 until 2026-12-07 (configs/segmenter_mobilenetv2.yaml)
    input_size: int = 256  # multiple of 32; the mask comes out at stride 8
    weights: str | None = None  # None: the project's resolution ($CORROSION_WEIGHTS, configs/weights.yaml)
    # frozen backbone taps at strides 8 / 16 / 32, merged top-down by the decoder
    feature_layers: tuple[str, ...] = ("block7_expand_relu", "block15_expand_relu", "top_relu")
    decoder_channels: int = 64
    dropout: float = 0.3  # spatial dropout on the cached features (0.1 overfits within a few epochs)
    batch_size: int = 32
    head_epochs: int = 40
    head_learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    early_stopping_patience: int = 8  # epochs without a better validation pixel F1
    dice_weight: float = 1.0  # soft Dice beside the per-pixel cross-entropy: rust is often a small share
    # What each kind of labelled photo teaches (weights of its pixels in the loss):
    negatives_weight: float = 1.0  # no_rust photos: every pixel is clean steel
    box_outside_weight: float = 1.0  # box-only rust photos: outside every box is clean; inside, unknown (ignored)
    # Each photo's loss weight: its source's photo count to the power -source_balance (0: every
    # photo alike; 1: every source the same total weight; training.segmenter.fitting.source_weights)
    source_balance: float = 0.0
    # Rust photos with only an image-level label (class folders; training.segmenter.data.load_weak),
    # taught that the mean logit of their top weak_top_share cells says rust, at weak_weight
    weak_photos: bool = False
    weak_weight: float = 0.5
    weak_top_share: float = 0.05
    flip_views: bool = True  # cache a mirrored copy of each training photo too
    # Flip test-time augmentation (training.segmenter.flip_test): each photo scored with its mirror,
    # the two maps averaged. Its validation and test features are cached mirrored too; the export
    # carries it, so the night's segmenter runs twice per tile.
    flip_test: bool = False
    # Augmented views of each training photo (training.segmenter.augment: a random crop of up to
    # 1 / augment_zoom of the side, white balance, exposure, gamma, saturation, blur, noise, JPEG),
    # made once and cached beside the photo and its mirror; 0: none.
    augment_views: int = 0
    augment_zoom: float = 2.0
    augment_strength: float = 1.0
    # Fine-tuning the upper backbone (training.segmenter.fine_tune): the output of this backbone
    # layer is cached and every layer after it trains with the decoder (batch-norm statistics stay
    # ImageNet's) for fine_tune_epochs at fine_tune_learning_rate, after the decoder has trained on
    # the frozen features. None: the backbone stays frozen. A layer every later one depends on alone:
    # a block's "_add" output or "block_N_project_BN" of a block without a shortcut.
    fine_tune_from: str | None = None
    fine_tune_epochs: int = 10
    fine_tune_learning_rate: float = 1e-4
    score_threshold: float | None = None  # None: chosen on validation (max pixel F1)
    min_region_area: float = 0.002  # of the image: smaller predicted regions get no box
    region_merge_radius: float = 0.02  # of the long side: predicted pieces this close are one region
    # export: a float32 LiteRT copy for the night's CPU workers (training.common.lite), written only
    # when its maps match the SavedModel's on synthetic and test photos (~1.75x the night's rate)
    export_lite: bool = True
    lite_max_abs_diff: float = 1e-4
    lite_check_images: int = 8
    # an int8 copy too (training.segmenter.quantised: ranges fitted on this many training photos),
    # written only when its validation figures stay within these of the float32 copy's
    lite_int8: bool = True
    lite_int8_calibration_photos: int = 128
    lite_int8_max_f1_drop: float = 0.005
    lite_int8_max_mae_rise: float = 0.1
    # the int8 copy is made muting channels quieter than each of these many int8 steps of their tap;
    # the one within the tolerance that keeps the figures best is written (training.segmenter.quantised)
    lite_int8_mute_steps: tuple[float, ...] = (1.0, 3.0, 8.0)
    seed: int = 42
    # A local folder for the frozen features of each split, reused by later runs on the same data
    # set, backbone and taps (seeds, decoder settings); None: computed in memory every run.
    feature_cache: str | None = None

    def __post_init__(self) -> None:
        if self.input_size % 32:
            raise ValueError(f"input_size must be a multiple of 32, got {self.input_size}")
        if len(self.feature_layers) != 3:
            raise ValueError("feature_layers names three backbone layers, at strides 8, 16 and 32")
        if self.fine_tune_from and self.augment_views:
            raise ValueError(
                "fine_tune_from and augment_views cannot be combined: augmented views have no cut features"
            )
        if self.fine_tune_from and self.weak_photos:
            raise ValueError(
                "fine_tune_from and weak_photos cannot be combined: image-level photos have no cut features"
            )

    @property
    def mask_size(self) -> int:
        return self.input_size // 8


def load_segmenter_config(path: str | None, overrides: dict | None = None) -> SegmenterConfig:
    return load_config(SegmenterConfig, path or config_path(DEFAULT_FILE), overrides)
