"""The rust-region model's LiteRT copy (issue 29): picked where it exists, giving the SavedModel's maps;
and the SAHI-style loop the night is benchmarked against covers the photo as the night's views do."""

from __future__ import annotations

import numpy as np
import pytest

from corrosion.core import config
from corrosion.inference import tiling
from corrosion.models import lite_runtime, serving
from pipelines.inference import handlers
from pipelines.inference.config import InferenceConfig

SIZE = 32


def tiny_segmenter(model_dir: str, lite: bool = True) -> str:
    """A seeded random Keras network of the segmenter's contract: (N, 32, 32, 3) -> (N, 4, 4) maps."""
    import keras

    from benchmarks.bench_inference import write_segmenter_lite
    from training.common.export import export_model

    keras.utils.set_random_seed(0)
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Rescaling(1 / 255.0)(inputs)
    x = keras.layers.Conv2D(1, 8, strides=8, activation="sigmoid")(x)
    network = keras.Model(inputs, keras.layers.Reshape((SIZE // 8, SIZE // 8))(x))
    extra = {"output": serving.SEGMENTER_OUTPUT, "stride": 8}
    meta = serving.ModelMetadata("segmenter", "tiny-segmenter", SIZE, 0.5, ("rust",), "tiny", "none", extra=extra)
    export_model(model_dir, lambda images: {serving.SEGMENTER_OUTPUT: network(images, training=False)}, network, meta)
    if lite:
        write_segmenter_lite(model_dir, network, SIZE)
    return model_dir


@pytest.fixture(scope="module")
def segmenters(tmp_path_factory) -> tuple[str, str]:
    import shutil

    root = tmp_path_factory.mktemp("seg")
    with_copy = tiny_segmenter(str(root / "lite"), True)
    bare = shutil.copytree(with_copy, root / "bare")
    (bare / lite_runtime.SEGMENTER_LITE_FILE).unlink()  # the same model, as exported before LiteRT copies
    return with_copy, str(bare)


def test_the_copy_is_picked_where_it_exists_and_gives_the_savedmodels_maps(segmenters):
    with_copy, bare = segmenters
    assert lite_runtime.resolve_runtime(with_copy, "auto", "detector") == "litert"
    assert lite_runtime.resolve_runtime(bare, "auto", "detector") == "savedmodel"  # every segmenter shipped today
    with pytest.raises(FileNotFoundError):
        lite_runtime.resolve_runtime(bare, "litert", "detector")
    cfg = config.load_config(InferenceConfig, config.config_path("inference.yaml"))
    meta = serving.read_metadata(with_copy)
    model = handlers.DetectorHandler(with_copy, meta, cfg, runtime="litert").load_model()
    assert isinstance(model, lite_runtime.LiteSegmenter)
    pixels = np.random.default_rng(1).uniform(0, 255, (5, SIZE, SIZE, 3)).astype(np.float32)
    np.testing.assert_allclose(model(pixels), handlers.SavedSegmenter(with_copy)(pixels), atol=1e-5)


def test_sahi_loop_covers_the_photo_with_the_nights_grid_plus_the_whole_image(tmp_path):
    from PIL import Image

    from benchmarks.bench_night import sahi_rust_map

    path = tmp_path / "p.jpg"
    Image.new("RGB", (300, 200), (120, 60, 30)).save(path)
    calls = []

    def model(pixels: np.ndarray) -> np.ndarray:
        calls.append(pixels.shape)
        return np.full((len(pixels), 4, 4), 0.7, np.float32)

    prob, views = sahi_rust_map(path, model, 32, 128, 24)
    assert views == len(tiling.tile_grid(300, 200, 128, 24)) + 1 == len(calls)
    assert all(shape == (1, 32, 32, 3) for shape in calls)  # one tile a call, as a SAHI loop predicts
    assert prob.shape == (200, 300)
    np.testing.assert_allclose(prob, 0.7, atol=1e-6)
