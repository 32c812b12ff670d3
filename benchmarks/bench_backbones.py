"""Wall time per photo of the segmenter's frozen feature extractor: EfficientNet-Lite2 against MobileNetV2.

Both extractors (``training.segmenter.model.build_feature_extractor``: normalisation, backbone, the
three taps) at the same input size in one process, random weights (speed does not depend on them),
``--images`` generated 0..255 photos in batches of ``--batch`` as the feature cache runs them. The
two are timed in alternating rounds so that load from other processes falls on both; the figures are
each one's best round (ms per photo), the median of the rounds' paired ratios, and the convolutions'
multiply-adds per photo (counted from the layers: what the ratio would be on an idle machine if
time followed arithmetic). Writes ``bench_out/backbones.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np

log = logging.getLogger("benchmarks.bench_backbones")
REPO = Path(__file__).resolve().parent.parent
BACKBONES = {
    "MobileNetV2": ("block_6_expand_relu", "block_13_expand_relu", "out_relu"),
    "EfficientNetLite2": ("block7_expand_relu", "block15_expand_relu", "top_relu"),
}


def _extractor(backbone: str, size: int):
    import tensorflow as tf

    from corrosion.models.weights import resolve_weights
    from training.segmenter.config import SegmenterConfig
    from training.segmenter.model import build_feature_extractor

    config = SegmenterConfig(backbone=backbone, input_size=size, feature_layers=BACKBONES[backbone])
    model = build_feature_extractor(config, resolve_weights("none"))
    return tf.function(lambda x: model(x, training=False), jit_compile=False), model


def multiply_adds(model) -> int:
    """Multiply-adds of every convolution of ``model`` (nested models included), per photo."""
    import keras

    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            total += multiply_adds(layer)
        elif isinstance(layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D)):  # one kernel per output cell
            total += int(np.prod(layer.output.shape[1:3])) * int(np.prod(layer.kernel.shape))
    return total


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", default=str(REPO / "bench_out" / "backbones.json"))
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (args.images, args.size, args.size, 3)).astype(np.float32)
    runs = {name: _extractor(name, args.size) for name in BACKBONES}
    rounds = {name: [] for name in BACKBONES}
    for fn, _ in runs.values():
        fn(images[: args.batch])  # trace and warm up
    for _ in range(args.rounds):
        for name, (fn, _) in runs.items():
            start = time.perf_counter()
            for i in range(0, len(images), args.batch):
                np.asarray(fn(images[i : i + args.batch])["s32"])
            rounds[name].append((time.perf_counter() - start) / len(images) * 1000)
    lite2, mobilenet = np.array(rounds["EfficientNetLite2"]), np.array(rounds["MobileNetV2"])
    macs = {n: multiply_adds(m) for n, (_, m) in runs.items()}
    figures = {
        "input_size": args.size,
        "images": args.images,
        "ms_per_photo": {n: round(min(v), 2) for n, v in rounds.items()},
        "parameters": {n: int(m.count_params()) for n, (_, m) in runs.items()},
        "ratio_lite2_to_mobilenetv2": round(min(lite2) / min(mobilenet), 2),
        "median_paired_ratio": round(float(np.median(lite2 / mobilenet)), 2),
        "multiply_adds_millions": {n: round(v / 1e6) for n, v in macs.items()},
        "multiply_adds_ratio": round(macs["EfficientNetLite2"] / macs["MobileNetV2"], 2),
    }
    print(json.dumps(figures, indent=2))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(figures, indent=2) + "\n")
    return figures


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    main()
