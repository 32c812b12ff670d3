"""Leave one source out: the rust-region recipe scored on structure types it has never seen.

    python -m training.leave_one_source_out --data DATASET --output DIR [--config FILE] [--set KEY=VALUE ...]
        [--source ccsc-bridges --source ...] [--model_card MODEL_DIR]

One decoder per region source, trained on the others' cached features (``--set feature_cache=DIR``
shares them with ``training.train_segmenter``), scored on all of the held-out source's photos
(``training.segmenter.leave_one_out``). DIR/leave_one_source_out.json and .md hold every fold and the
mean and worst over sources; ``--model_card`` adds the table to a trained model's card. Run it once
per seed (``--set seed=N``) for the spread between seeds.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from corrosion import cli
from corrosion.core import config as config_io
from corrosion.core import io_utils
from training.common import report
from training.compare_region_models import with_section
from training.segmenter import leave_one_out
from training.segmenter.config import DEFAULT_FILE, SegmenterConfig
from training.segmenter.train import prepared_splits

log = logging.getLogger("training.leave_one_source_out")

RESULT_FILE = "leave_one_source_out.json"
SECTION = "## Leave one source out"


def markdown(result: dict) -> str:
    s, cfg = result["summary"], result["config"]
    rows = [
        [f["held_out"], *(f["held_out_figures"].get(k) for k in leave_one_out.FIGURES), f["epochs"]]
        for f in result["folds"]
    ]
    flipped = s.get("flip_test")
    return "\n".join(
        [
            f"{SECTION} (seed {cfg['seed']})",
            "",
            "Each source's photos scored by a decoder trained and thresholded without any photo of that source "
            "(`python -m training.leave_one_source_out`).",
            "",
            *report.table(
                [
                    "held out",
                    "pixel F1",
                    "pixel IoU",
                    "rusted-% MAE",
                    "rusted-% bias",
                    "D610 within 1",
                    "region photos",
                    "epochs",
                ],
                rows,
            ),  # fmt: skip
            "",
            f"Mean pixel F1 **{s['mean_pixel_f1']:.3f}**, worst {s['worst_pixel_f1']:.3f} "
            f"({s['worst_pixel_f1_source']}); mean rusted-% MAE **{s['mean_rusted_pct_mae']:.2f}** points, worst "
            f"{s['worst_rusted_pct_mae']:.2f} ({s['worst_rusted_pct_mae_source']}).",
            "",
            *(_flip_lines(result["folds"], flipped) if flipped else []),
            *[
                f"{f['held_out']}: pixel F1 {f['before_fine_tune']['held_out_figures']['pixel_f1']:.3f} before fine-tuning "
                f"the upper backbone ({f['fine_tune_epochs']} epochs), {f['held_out_figures']['pixel_f1']:.3f} after."
                for f in result["folds"]
                if "before_fine_tune" in f
            ],  # fmt: skip
        ]
    )


def _flip_lines(folds: list[dict], s: dict) -> list[str]:
    """The same decoders scored with flip test-time augmentation (paired with the table above)."""
    rows = [[f["held_out"], *(f["flip_test"]["held_out_figures"].get(k) for k in leave_one_out.FIGURES[:5])]
            for f in folds]  # fmt: skip
    return [
        "With flip test-time augmentation (`flip_test`: each photo and its mirror, maps averaged), same decoders:",
        "",
        *report.table(["held out", "pixel F1", "pixel IoU", "rusted-% MAE", "rusted-% bias", "D610 within 1"], rows),
        "",
        f"Mean pixel F1 **{s['mean_pixel_f1']:.3f}**, worst {s['worst_pixel_f1']:.3f} ({s['worst_pixel_f1_source']}); "
        f"mean rusted-% MAE **{s['mean_rusted_pct_mae']:.2f}** points.",
        "",
    ]


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    p = cli.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="data set directory written by pipelines.build_dataset")
    p.add_argument("--output", required=True, help="folder for leave_one_source_out.json / .md")
    p.add_argument("--source", action="append", default=[], help="hold out only these sources (repeatable)")
    p.add_argument("--model_card", help="a trained segmenter: the table goes into its model_card.md")
    config_io.add_arguments(p, DEFAULT_FILE, {"seed": ("seed", int, "random seed")})
    args = p.parse_args(argv)
    config = config_io.from_arguments(SegmenterConfig, args, DEFAULT_FILE, {"seed": ("seed", int, "")})
    features, splits, _ = prepared_splits(args.data.rstrip("/"), config)
    result = leave_one_out.run(splits, config, args.source or None, features) | {"data": args.data}
    text = markdown(result)
    io_utils.make_dirs(args.output)
    io_utils.write_text(io_utils.join(args.output, RESULT_FILE), json.dumps(result, indent=2, default=str) + "\n")
    io_utils.write_text(io_utils.join(args.output, "leave_one_source_out.md"), text)
    if args.model_card:
        card = io_utils.join(args.model_card, report.MODEL_CARD_FILE)
        io_utils.write_text(card, with_section(io_utils.read_text(card), text, SECTION))
        io_utils.write_text(
            io_utils.join(args.model_card, RESULT_FILE), json.dumps(result, indent=2, default=str) + "\n"
        )
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
