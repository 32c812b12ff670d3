"""The rust-region model on generated photos whose rust pixels are known: it learns, exports, and is
scored per source; and the pieces (cell targets, metrics) on hand-made inputs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from training.segmenter import metrics
from training.segmenter.config import SegmenterConfig, load_segmenter_config
from training.segmenter.data import BOXES, NEGATIVE, REGIONS, cell_targets

CONFIG = SegmenterConfig(input_size=64)


def test_cell_targets_say_what_each_kind_of_photo_knows():
    mask = np.zeros((64, 64), np.uint8)
    mask[0:8, 0:4] = 1  # half of the top-left cell
    share, weight, kind = cell_targets(mask, np.zeros((0, 4)), False, CONFIG)
    assert kind == REGIONS and share.shape == (8, 8) and share[0, 0] == 0.5 and share.sum() == 0.5 and weight.min() == 1
    share, weight, kind = cell_targets(None, np.array([[0.0, 0.0, 0.25, 0.5]]), False, CONFIG)
    assert kind == BOXES and share.sum() == 0 and weight[:2, :4].sum() == 0 and weight.sum() == 64 - 8
    share, weight, kind = cell_targets(None, np.zeros((0, 4)), True, CONFIG)
    assert kind == NEGATIVE and weight.sum() == 64
    assert cell_targets(None, np.zeros((0, 4)), False, CONFIG) is None  # rust, no pixel facts: left out


def test_pixel_counts_and_threshold_choice():
    truth = np.zeros((4, 4), np.uint8)
    truth[:2] = 1
    prob = np.array([[0.9] * 4, [0.4] * 4, [0.6] * 4, [0.1] * 4])
    tp, fp, fn = metrics.pixel_counts(prob, truth, (0.5,))[0]
    assert (tp, fp, fn) == (4, 4, 4)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from corrosion.testing import region_files as rf
    from corrosion.testing import synthetic
    from pipelines import build_dataset
    from training.segmenter import train as train_segmenter

    root = tmp_path_factory.mktemp("regions")
    rng = np.random.default_rng(0)
    for source, n in (("tanks", 30), ("bridges", 30)):
        (root / source / "images").mkdir(parents=True)
        (root / source / "masks").mkdir()
        for i in range(n):
            photo = rf.region_photo(
                rng, 96, 96, int(rng.integers(1, 3)), background=str(rng.choice(synthetic.BACKGROUNDS))
            )
            (root / source / "images" / f"{i}.png").write_bytes(photo.png())
            (root / source / "masks" / f"{i}.png").write_bytes(rf.mask_png(photo.mask))
    (root / "clean" / "norust").mkdir(parents=True)
    for i in range(10):
        pixels = synthetic.render_background(rng, 96, 96, str(rng.choice(synthetic.HARD_NEGATIVES)))
        (root / "clean" / "norust" / f"{i}.png").write_bytes(
            synthetic.encode_image(np.clip(pixels, 0, 255).astype(np.uint8), "PNG")
        )
    data = tmp_path_factory.mktemp("ds")
    inputs = [a for name in ("tanks", "bridges", "clean") for a in ("--input", str(root / name))]
    build_dataset.run([*inputs, "--output_dir", str(data)])  # three inputs: three sources
    config = load_segmenter_config(None, {"input_size": 64, "weights": "none", "head_epochs": 40, "batch_size": 16,
                                          "early_stopping_patience": 40, "decoder_channels": 32})  # fmt: skip
    model_dir = tmp_path_factory.mktemp("model")
    return train_segmenter.train(str(data), str(model_dir), config), model_dir


def test_a_short_run_finds_rust_pixels_a_constant_guess_cannot(trained):
    out, model_dir = trained
    test = out["splits"]["test"]["pooled"]
    # an "everything is rust" guess scores IoU = the rust share of these photos (about 0.1-0.2)
    assert test["pixel_iou"] > 0.5 and test["pixel_f1"] > 0.65
    assert test["rusted_pct_mae"] < 10
    assert set(out["splits"]["test"]) == {"pooled", "tanks", "bridges", "clean"}
    assert out["data_counts"]["train"]["regions"] > 0 and out["data_counts"]["train"]["negative"] > 0
    assert out["export_check"]["max_abs_difference"] < 1e-3
    saved = json.loads((model_dir / "metrics.json").read_text())
    assert saved["threshold"] == out["threshold"] and "| pooled |" in (model_dir / "model_card.md").read_text()
    meta = json.loads((model_dir / "metadata.json").read_text())
    assert meta["kind"] == "segmenter" and meta["threshold"] == out["threshold"]
