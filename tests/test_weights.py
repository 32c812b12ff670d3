import shutil

import numpy as np
import pytest
from keras.src.backend import config as keras_config

from corrosion.models import weights


def test_none_means_random_init(monkeypatch):
    monkeypatch.delenv(weights.ENV_VAR, raising=False)
    src = weights.resolve_weights("none")
    assert (src.kind, src.keras_arg) == ("none", None)
    model = weights.build_backbone("MobileNetV2", 96, src, alpha=0.35)
    assert model.output_shape == (None, 3, 3, 1280)


def test_environment_variable_overrides_config(monkeypatch):
    monkeypatch.setenv(weights.ENV_VAR, "none")
    assert weights.resolve_weights().kind == "none"
    monkeypatch.setenv(weights.ENV_VAR, "imagenet")
    assert weights.resolve_weights().kind == "imagenet"


def test_config_default_is_imagenet(monkeypatch):
    monkeypatch.delenv(weights.ENV_VAR, raising=False)
    assert weights.resolve_weights().kind == "imagenet"


def test_missing_file_names_the_file(tmp_path):
    missing = tmp_path / "nope.h5"
    with pytest.raises(weights.WeightsUnavailableError, match=str(missing)):
        weights.resolve_weights(str(missing))


def test_file_source_loads_those_weights(tmp_path):
    model = weights.build_backbone("MobileNetV2", 96, weights.resolve_weights("none"), alpha=0.35)
    path = tmp_path / "backbone.weights.h5"
    model.save_weights(path)
    again = weights.build_backbone("MobileNetV2", 96, weights.resolve_weights(str(path)), alpha=0.35)
    for a, b in zip(model.get_weights(), again.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_imagenet_unavailable_offline_says_which_file_and_how(tmp_path, monkeypatch):
    monkeypatch.setattr(keras_config, "_KERAS_DIR", str(tmp_path / "empty-keras"))  # Keras reads $KERAS_HOME at import
    with pytest.raises(weights.WeightsUnavailableError) as err:
        weights.build_backbone("MobileNetV2", 160, weights.resolve_weights("imagenet"))
    message = str(err.value)
    assert (
        str(tmp_path / "empty-keras" / "models" / "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_160_no_top.h5")
        in message
    )
    assert weights.ENV_VAR in message and "make weights" in message


def test_imagenet_from_prefilled_keras_cache(tmp_path, monkeypatch, shared_weights_file):
    cache = tmp_path / "keras" / "models"
    cache.mkdir(parents=True)
    shutil.copy(shared_weights_file, cache / shared_weights_file.name)
    monkeypatch.setattr(keras_config, "_KERAS_DIR", str(tmp_path / "keras"))
    model = weights.build_backbone("MobileNetV2", 224, weights.resolve_weights("imagenet"))
    from_file = weights.build_backbone("MobileNetV2", 224, weights.resolve_weights(str(shared_weights_file)))
    np.testing.assert_array_equal(model.get_weights()[0], from_file.get_weights()[0])
    assert np.abs(model.get_weights()[0]).sum() > 0
