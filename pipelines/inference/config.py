"""Typed settings of the batch inference pipeline (``configs/inference.yaml``) and the typed job.

``InferenceJob`` is the command line checked and resolved once (``batch_inference.parse_job``):
the graph builder and the transforms read it instead of an argparse namespace. It lives here, in
an importable module, because transforms carry it to workers (see ``pipelines.inference.transforms``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from corrosion.inference.assets import AssetResolver
from corrosion.models import serving
from corrosion.models.lite_runtime import RUNTIMES


@dataclass(frozen=True)
class TilingConfig:
    enabled: bool = True
    tile_size: int = 1024  # tile side in original pixels; each tile is resized to the detector's input
    overlap: int = 192  # pixels shared by neighbouring tiles: at least the largest spot that must be seen whole
    global_pass: bool = True  # also run the whole image once, for patches larger than a tile
    decode_at_tile_scale: bool = True  # JPEG DCT-scaled decode down to (not below) the tiles' model scale
    # Rust-region models only. None: every tile is scored. A fraction f: the whole-image pass runs
    # first, and a tile where its map stays below f x the model's threshold is not scored.
    skip_quiet_below: float | None = None

    def __post_init__(self) -> None:
        if self.skip_quiet_below is not None and not 0 < self.skip_quiet_below <= 1:
            raise ValueError(
                f"tiling.skip_quiet_below must be null or in (0, 1] (a fraction of the model's threshold), "
                f"got {self.skip_quiet_below}"
            )
        if self.skip_quiet_below is not None and not self.global_pass:
            raise ValueError("tiling.skip_quiet_below needs tiling.global_pass: true (its map decides which tiles run)")


@dataclass(frozen=True)
class MergeConfig:
    iou_threshold: float = 0.5
    containment_threshold: float = 0.8
    max_boxes: int = 100


@dataclass(frozen=True)
class OutputConfig:
    preview_max_side: int = 1600
    preview_quality: int = 85
    thumbnail_side: int = 192
    report_max_images: int = 500
    report_review_items: int = 20  # the report's review queue (corrosion.review.selection), most urgent first


@dataclass(frozen=True)
class BigQueryConfig:
    partition_field: str = "processed_at"
    clustering_fields: tuple[str, ...] = ("survey_id",)
    clear_before_load: bool = True  # delete this night's rows of this survey first, so re-runs never duplicate


@dataclass(frozen=True)
class InferenceConfig:
    classifier_batch_size: int = 32
    classifier_runtime: str = "auto"  # auto | litert | savedmodel (corrosion.models.lite_runtime)
    detector_runtime: str = "auto"
    lite_interpreters_per_process: int | None = None  # None: one per core (each holds its batch's activations)
    tf_threads_per_call: int | None = 1  # None: TensorFlow's default (every core for each call)
    detector_images_per_batch: int = 2
    tile_batch_size: int = 32
    detector_gate: float | None = None  # None: detector on every image; else only where rust_probability >= gate
    max_pixels: int = 100_000_000
    # Longer photos are error rows (extreme_aspect_ratio) on the detector / region-model path, whose
    # tiles grow with the long side (a 20,000,000 x 1 strip would be ~24,000 tiles); the classifier
    # path reduces each side on its own and is bounded without it.
    max_side: int = 100_000
    max_file_bytes: int = 200_000_000
    progress_every: int = 200
    # Where and what changed (issue 30): asset/zone from the path under the survey root
    # (corrosion.inference.assets; None: no pattern), and the margins a zone must worsen by
    # against the asset's last survey to be a change row (corrosion.review.survey_changes).
    asset_pattern: str | None = None
    changes_grade_margin: int = 1  # worst ASTM D610 grade lower by at least this many grades
    changes_area_margin_pct: float = 5.0  # worst or mean rusted % higher by at least this many points
    tiling: TilingConfig = field(default_factory=TilingConfig)
    merge: MergeConfig = field(default_factory=MergeConfig)
    outputs: OutputConfig = field(default_factory=OutputConfig)
    bigquery: BigQueryConfig = field(default_factory=BigQueryConfig)

    def __post_init__(self) -> None:
        for name in ("classifier_runtime", "detector_runtime"):
            if getattr(self, name) not in RUNTIMES:
                raise ValueError(f"{name} must be one of {RUNTIMES}, got {getattr(self, name)!r}")


@dataclass(frozen=True)
class RunInfo:
    """What every row of one run shares, fixed when the pipeline is built."""

    survey_id: str
    run_date: dt.date
    processed_at: str
    classifier: serving.ModelMetadata
    detector: serving.ModelMetadata | None
    partition_dir: str  # OUTPUT/date=YYYY-MM-DD
    file_stem: str  # survey id made safe for file names (batch_inference.survey_file_stem)
    staging_dir: str = ""  # this run's folder for CSV shards before they replace the night's (commit_outputs)
    classifier_runtime: str = "savedmodel"  # litert | savedmodel (lite_runtime.resolve_runtime)
    detector_runtime: str | None = None  # None: no detector


@dataclass(frozen=True)
class InferenceJob:
    """One run: where to read, which models, where to write, its settings and its shared row values."""

    config: InferenceConfig
    info: RunInfo
    classifier_dir: str
    output: str  # prefix; rows go to OUTPUT/date=YYYY-MM-DD/
    input: str | None = None  # glob
    input_list: str | None = None  # file of literal paths
    detector_dir: str | None = None
    bigquery_table: str | None = None
    skip_processed: str | None = None  # prefix of earlier outputs
    previews_dir: str | None = None  # --previews, else beside --report
    masks_dir: str | None = None  # --masks: each image's rust mask as a PNG (a rust-region model only)
    report: str | None = None
    no_wait: bool = False
    # asset/zone of each photo (--asset_pattern, --asset_map), resolved under the survey root
    assets: AssetResolver = field(default_factory=AssetResolver)
    previous: str | None = None  # --previous: glob of earlier result CSVs; None: earlier date= folders under output

    @property
    def own_outputs(self) -> tuple[str | None, ...]:
        """Folders this job writes into: never inputs, so tonight's report is not scored tomorrow."""
        return (self.output, self.previews_dir, self.report, self.masks_dir)
