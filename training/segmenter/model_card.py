"""The segmenter's ``model_card.md``: what it outputs, how it learnt, on what, how well, per source."""

from __future__ import annotations

import dataclasses

from corrosion.core.config import config_path
from training.common import report
from training.segmenter.config import DEFAULT_FILE, SegmenterConfig
from training.segmenter.metrics import POOLED

COLUMNS = (
    ("pixel F1", "pixel_f1"),
    ("pixel IoU", "pixel_iou"),
    ("pixel precision", "pixel_precision"),
    ("pixel recall", "pixel_recall"),
    ("rusted-% MAE (points)", "rusted_pct_mae"),
    ("D610 exact", "d610_exact"),
    ("D610 within 1", "d610_within_1"),
    ("box AP50 (source boxes)", "AP50"),
    ("box AP50 (mask regions)", "region_AP50"),
    ("region photos", "region_photos"),
)


def render(out: dict, config: SegmenterConfig, config_file: str | None) -> str:
    meta, t = out["model"], out["training"]
    lines = [
        f"# Model card: rust-region model `{meta['version']}`",
        "",
        f"Per-pixel rust probability (`{meta['extra']['output']}`, one value per 8 x 8 cell of the photo squashed to "
        f"{config.input_size} px, upsampled bilinearly); a pixel is rust at **{out['threshold']:.2f}** or above "
        f"({out['threshold_source']}). Boxes are the predicted regions (pieces closer than "
        f"{2 * config.region_merge_radius:g} of the side merged, regions under {config.min_region_area:g} of the photo "
        "dropped); the rusted percentage is the share of rust pixels, which ASTM D610 grades.",
        "",
        "## Model and training",
        f"- `{config.backbone}` (frozen; weights: {meta['weights']}) features at strides 8 / 16 / 32 "
        f"(`{'`, `'.join(config.feature_layers)}`), cached once in float16"
        f"{' with a mirrored copy of each training photo' if config.flip_views else ''}; a top-down decoder "
        f"({config.decoder_channels} channels, separable 3 x 3 refinement) to one logit per stride-8 cell.",
        f"- Loss: per-cell cross-entropy on the cell's rust share plus soft Dice (weight {config.dice_weight:g}). Region "
        "photos teach every cell; box-only photos teach the cells outside their boxes (clean) and ignore those inside; "
        "no_rust photos teach every cell clean; rust photos with neither are left out.",
        f"- AdamW at {config.head_learning_rate:g} (cosine), batches of {config.batch_size}, best epoch by validation "
        f"loss ({t['epochs']} epochs run); {t['seconds'] / 60:.1f} min in all, "
        f"{t['feature_cache_seconds'] / 60:.1f} of them computing features.",
        "",
        "## Data",
        _data_sentence(out, config),
        "",
        *report.table(
            ["split", "region photos", "box photos", "no_rust photos", "left out (rust, no pixels)"],
            [[s, c["regions"], c["boxes"], c["negative"], c["left_out"]] for s, c in out["data_counts"].items()],
        ),
        "",
        "## Metrics",
        f"The decoder on the cached features, whose maps differ from the exported model's by at most "
        f"{out['export_check']['feature_cache_max_abs_difference']:.1e} (export check).",
        "Scored at the model's input size; pixel figures over region photos and no_rust photos (rust painted on a "
        "clean photo is a false positive); rusted % and D610 over region photos; box AP50 (COCOeval) against the "
        "sources' boxes (one per polygon: many small ones in roboflow-corrosion-seg) on every photo with boxes or none.",
        "",
    ]
    for split, by_source in out["splits"].items():
        lines += [f"### {split}", ""]
        rows = [[name, *(figures.get(key) for _, key in COLUMNS)] for name, figures in _pooled_first(by_source)]
        lines += [*report.table(["source", *(label for label, _ in COLUMNS)], rows), ""]
    lines += [
        "## Limitations",
        "- One stride-8 cell is the finest detail: thin streaks and pitting narrower than ~1/32 of the photo blur.",
        "- The backbone is frozen (ImageNet); the photos' sources differ widely in look (contrast-boosted web photos, "
        "ship tanks, bridges): check a new survey type with `python -m training.evaluate` on a labelled sample.",
        "",
        *report.configuration_section(dataclasses.asdict(config), str(config_file or config_path(DEFAULT_FILE))),
        *report.versions_section(out["versions"]),
    ]
    return "\n".join(lines)


def _data_sentence(out: dict, config: SegmenterConfig) -> str:
    """The data set, and the training views beyond its photos and their mirrors."""
    parts = [f"Data set `{out['data']}`."]
    if config.flip_views:
        parts.append("Training counts are views: each photo and its mirror.")
    if config.augment_views:
        parts.append(f"Plus {config.augment_views} augmented view(s) of each (crop up to 1/{config.augment_zoom:g} "
                     "of the side, white balance, exposure, blur, noise, JPEG).")  # fmt: skip
    if config.weak_photos:
        parts.append(f"Plus the training split's rust photos without mask or boxes and their mirrors "
                     f"({out['data_counts']['train'].get('image', 0)} views), each taught that the mean logit of its "
                     f"top {config.weak_top_share:.0%} of cells says rust (weight {config.weak_weight:g}).")  # fmt: skip
    if config.source_balance:
        parts.append(f"Each photo's loss weighs its source's photo count to the power -{config.source_balance:g}.")
    return " ".join(parts)


def _pooled_first(by_source: dict) -> list[tuple[str, dict]]:
    return [(POOLED, by_source[POOLED])] + sorted((k, v) for k, v in by_source.items() if k != POOLED)
