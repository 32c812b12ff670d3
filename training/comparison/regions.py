"""Rust-region models compared: rusted-% error and box AP50 (deciding), rust-pixel F1, D610 within one.

Both models (segmenters or detectors, in any mix) score the same photos on one grid (the larger
of their input sizes), as ``training.evaluate`` scores them: a segmenter by its rust map and the
boxes made from its regions, a detector by the union of its boxes at its shipped threshold (the
rusted area batch inference reports) and its own boxes. Everything a figure needs is kept per
photo, so each bootstrap draw is a re-weighting, not a re-scoring; near-duplicate groups from the
data set's manifest are drawn whole.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from corrosion.core import io_utils
from corrosion.core.rejects import Reject
from corrosion.data import layout, manifest
from corrosion.inference.grading import astm_d610_grade
from corrosion.models import serving
from training.comparison.bootstrap import Figure
from training.detector.metrics import BoxMatches, ImageResult, ap50, box_matches
from training.segmenter import metrics
from training.segmenter.config import SegmenterConfig
from training.segmenter.data import NEGATIVE, REGIONS, SplitData

FIGURES = (
    Figure("rusted_pct_mae", "rusted-% MAE (points)", higher_is_better=False, deciding=True),
    Figure("AP50", "box AP50", deciding=True),
    Figure("pixel_f1", "rust-pixel F1"),
    Figure("d610_within_1", "D610 grade within one"),
)
REGION_KINDS = ("segmenter", "detector")


@dataclass(frozen=True)
class Photos:
    """The photos both models score, at one grid ``size``, and each photo's near-duplicate group."""

    data: SplitData
    size: int
    groups: np.ndarray
    rejects: list[Reject]


@dataclass(frozen=True)
class RegionScored:
    """One model's per-photo facts: enough to recompute every figure for any weighting of the photos."""

    version: str
    region: np.ndarray  # bool: photo with a true mask (area figures)
    pixels: np.ndarray  # bool: region or no_rust photo (pixel figures)
    error: np.ndarray  # |predicted - true| rusted share, region photos
    within_one: np.ndarray  # bool: D610 grades at most one apart, region photos
    counts: np.ndarray  # (N, 3) true-positive, false-positive, false-negative pixels
    matches: BoxMatches

    def figures(self, weights: np.ndarray) -> dict[str, float | None]:
        wr, wp = weights * self.region, weights * self.pixels
        tp, fp, fn = wp @ self.counts
        return {
            "rusted_pct_mae": float(wr @ self.error / wr.sum() * 100) if wr.sum() else None,
            "AP50": ap50(self.matches, weights),
            "pixel_f1": float(2 * tp / (2 * tp + fp + fn)) if tp + fn else None,
            "d610_within_1": float(wr @ self.within_one / wr.sum()) if wr.sum() else None,
        }


def grid_size(model_dirs: list[str]) -> int:
    return max(serving.read_metadata(d).input_size for d in model_dirs)


def load_photos(data_paths: list[str], split: str, size: int) -> Photos:
    """Every data path's ``split`` (a raw folder: all its photos) with pixel facts, pooled."""
    from training.segmenter.evaluate import as_split, split_records

    rejects: list[Reject] = []
    recs = [r for path in data_paths for part in split_records(path, (split,), rejects).values() for r in part]
    data = as_split(recs, SegmenterConfig(input_size=size))
    if not data.kinds:
        raise ValueError(f"no photo with rust masks, boxes or no_rust labels in {split} of {', '.join(data_paths)}")
    group_of = {}
    for path in data_paths:
        path_manifest = io_utils.join(path, layout.MANIFEST)
        if io_utils.exists(path_manifest):
            group_of |= {row.sha256: row.group for row in manifest.read(path_manifest) if row.group}
    keys = [group_of.get(k, f"photo:{i}") for i, k in enumerate(data.keys)]
    return Photos(data, size, np.unique(keys, return_inverse=True)[1], rejects)


def score(model_dir: str, photos: Photos) -> RegionScored:
    """The model's per-photo facts on ``photos`` (segmenter or detector, read from its metadata)."""
    meta = serving.read_metadata(model_dir)
    merge, min_area = meta.extra.get("region_merge_radius", 0.02), meta.extra.get("min_region_area", 0.002)
    encoded, size = photos.data.sample_encoded, photos.size
    if meta.kind == "segmenter":
        from training.segmenter.evaluate import rust_maps

        table, boxes = metrics.photo_table(
            rust_maps(model_dir, encoded), photos.data, size, meta.threshold, merge, min_area
        )
        results = [source for source, _ in boxes]
    elif meta.kind == "detector":
        from training.detector.evaluate import box_union_maps

        table, boxes = metrics.photo_table(
            box_union_maps(model_dir, size)(encoded), photos.data, size, 0.5, merge, min_area
        )
        results = own_boxes(model_dir, encoded, [source for source, _ in boxes], size)
    else:
        raise ValueError(f"{model_dir} holds a {meta.kind}; region models are {' or '.join(REGION_KINDS)}")
    region = (table.kind == REGIONS).to_numpy()
    true_share = (
        np.nan_to_num(table["true_share"].to_numpy(np.float64)) if "true_share" in table else np.zeros(len(table))
    )
    pred_share = table.pred_share.to_numpy(np.float64)
    grades = np.array(
        [abs(astm_d610_grade(t) - astm_d610_grade(p)) for t, p in zip(true_share, pred_share, strict=True)]
    )
    return RegionScored(
        meta.version,
        region,
        table.kind.isin([REGIONS, NEGATIVE]).to_numpy(),
        np.where(region, np.abs(pred_share - true_share), 0.0),
        region & (grades <= 1),
        table[["tp", "fp", "fn"]].to_numpy(np.float64),
        box_matches(results),
    )


def own_boxes(model_dir: str, encoded: list[bytes], truth: list[ImageResult], size: int) -> list[ImageResult]:
    """A detector's own boxes (every score, as COCO ranks them) on the ``size`` grid, beside the truth."""
    from training.detector.evaluate import Example, detect_examples, exported_detect

    detect, _ = exported_detect(model_dir)
    examples = [Example(t.name, e, size, size, t.true_boxes) for t, e in zip(truth, encoded, strict=True)]
    return detect_examples(detect, examples)
