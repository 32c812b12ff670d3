"""Typed settings of the dataset pipeline (``configs/dataset.yaml``)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from corrosion.core.config import config_path, load_config
from corrosion.core.labels import LabelConfig, load_labels
from corrosion.data.layout import TEST, TRAIN, VALIDATION

TF_MAX_PNG_SIDE = 1_000_000  # libpng's default user limit, which tf.io.decode_png keeps


@dataclass(frozen=True)
class ValidationConfig:
    max_pixels: int = 100_000_000
    max_file_bytes: int = 200_000_000  # larger image files are rejected (file_too_large) unread
    reencode_quality: int = 95
    size_ratio_tolerance: float = 0.01
    min_box_size: float = 1.0
    # Mask files (e.g. ballast-tanks): rust pieces closer than twice this fraction of the image's
    # long side are one region (one box); regions under region_min_area of the image get no box.
    region_merge_radius: float = 0.01
    region_min_area: float = 0.0005
    # A longer side is refused (extreme_aspect_ratio) before decoding: training resizes every photo,
    # and TensorFlow's PNG decoder refuses a side over 1,000,000 px (libpng's limit), so a 20,000,000 x 1
    # strip was rejected as "damaged image data" after a full decode.
    max_side: int = 100_000

    def __post_init__(self) -> None:
        if not 1 <= self.max_side <= TF_MAX_PNG_SIDE:
            raise ValueError(
                f"validation.max_side must be in [1, {TF_MAX_PNG_SIDE:,}] (TensorFlow's PNG decoder refuses "
                f"a longer side), got {self.max_side}"
            )


@dataclass(frozen=True)
class DedupConfig:
    hash_size: int = 8
    max_hamming: int = 10
    thumb_size: int = 16
    min_correlation: float = 0.90
    max_mean_abs_diff: float = 16.0
    reject_near_duplicate_conflicts: bool = True
    # Regexes on a file's stem whose group(1) names the photo it was derived from (Roboflow's
    # augmented copies are rotated/sheared, beyond any perceptual hash); same source + origin = one group.
    origin_patterns: tuple[str, ...] = (r"^(.+)_(?:jpg|jpeg|png|bmp|webp)\.rf\.[0-9a-f]{16,}$",)

    def __post_init__(self) -> None:
        import re

        for pattern in self.origin_patterns:
            try:
                if re.compile(pattern).groups < 1:
                    raise ValueError(f"dedup.origin_patterns {pattern!r} needs a capturing group naming the origin")
            except re.error as exc:
                raise ValueError(f"dedup.origin_patterns {pattern!r} is not a valid regex: {exc}") from exc
        if not 0 <= self.max_hamming < self.hash_size * self.hash_size:
            raise ValueError(f"dedup.max_hamming must be in [0, {self.hash_size**2}), got {self.max_hamming}")


@dataclass(frozen=True)
class SplitConfig:
    fractions: dict[str, float] = field(default_factory=lambda: {TRAIN: 0.8, VALIDATION: 0.1, TEST: 0.1})
    salt: str = "corrosion-split-v1"
    honour_source_splits: bool = False
    stratify: bool = False  # fractions held within every source x label kind x class (corrosion.data.splits)

    def __post_init__(self) -> None:
        if not self.fractions or any(v < 0 for v in self.fractions.values()):
            raise ValueError(f"split.fractions must be non-negative, got {self.fractions}")
        if not math.isclose(sum(self.fractions.values()), 1.0, abs_tol=1e-6):
            raise ValueError(
                f"split.fractions must sum to 1, got {self.fractions} (sum {sum(self.fractions.values())})"
            )


@dataclass(frozen=True)
class DatasetConfig:
    labels: str = "labels.yaml"
    missing_annotation_is_negative: bool = False
    shard_target_mb: float = 100.0
    progress_every: int = 200
    validation: ValidationConfig = field(default_factory=ValidationConfig)
    dedup: DedupConfig = field(default_factory=DedupConfig)
    split: SplitConfig = field(default_factory=SplitConfig)

    def __post_init__(self) -> None:
        if self.shard_target_mb <= 0:
            raise ValueError(f"shard_target_mb must be positive, got {self.shard_target_mb}")

    def load_labels(self) -> LabelConfig:
        path = self.labels if ("/" in self.labels or "://" in self.labels) else str(config_path(self.labels))
        return load_labels(path)


def load_dataset_config(path: str | None = None) -> DatasetConfig:
    return load_config(DatasetConfig, path or config_path("dataset.yaml"))
