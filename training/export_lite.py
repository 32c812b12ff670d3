"""Add the checked LiteRT copy to a model exported without one.

    python -m training.export_lite MODEL_DIR [--classifier_config FILE] [--detector_config FILE]

The training jobs write the copy on every export (``training.common.lite``); this rebuilds an older
model's network from its metadata, config and checkpoint and writes the copy only when it matches.
"""

from __future__ import annotations

import logging

from corrosion import cli
from corrosion.core import config
from corrosion.models import serving
from training.classifier.config import ClassifierConfig
from training.classifier.model import load_exported_classifier
from training.common import lite
from training.detector.config import load_detector_config
from training.detector.lite import add_detector_lite


def main(argv: list[str] | None = None) -> int:
    parser = cli.ArgumentParser(description="Add the LiteRT copy to an exported classifier or detector.")
    parser.add_argument("model_dir", help="exported model directory (training.train_classifier / train_detector)")
    parser.add_argument("--classifier_config", default=str(config.config_path("classifier.yaml")))
    parser.add_argument(
        "--detector_config",
        default=str(config.config_path("detector.yaml")),
        help="the config the detector was trained with (its architecture; only for detectors exported without serving_decode)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    meta = serving.read_metadata(args.model_dir)
    if meta.kind == "classifier":
        cfg = config.load_config(ClassifierConfig, args.classifier_config)
        parts = load_exported_classifier(args.model_dir)
        lite.export_classifier_lite(
            args.model_dir, parts.inference, meta.input_size, cfg.lite_max_abs_diff, cfg.lite_check_images
        )
        return 0
    dcfg = load_detector_config(args.detector_config)
    add_detector_lite(args.model_dir, args.detector_config, dcfg.lite_max_abs_diff, dcfg.lite_check_images)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
