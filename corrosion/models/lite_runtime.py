"""The exported models' LiteRT (TFLite) copies: how they are run, by the export checks and the pipeline alike.

Why a second runtime: on CPU, LiteRT's XNNPACK kernels run MobileNetV2 networks 1.5-1.7x faster
than the SavedModel's TensorFlow graph with the same float32 weights (classifier: 8.4 vs 14 ms
a 224 px image; detector: 310 vs 480 ms for the 21 views of a 12 MP photo, one thread each).
``training.export_lite`` writes the copies next to the SavedModel, checked against it.

- Classifier (``serving.CLASSIFIER_LITE_FILE``): the whole pixels signature.
- Detector (``serving.DETECTOR_LITE_FILE``): the network only (raw box deltas and logits); anchor
  decoding and NMS have no LiteRT kernel, so they stay in the SavedModel's ``serving_decode``
  signature, the very function its pixels signature ends with.
- Rust-region model (``SEGMENTER_LITE_FILE``, in the detector's place): the whole pixels signature,
  pixels -> stride-8 rust maps (MobileNetV2 + decoder at 256 px: 1.7x faster than the SavedModel
  on one thread, 0.26 vs 0.45 CPU-s for a 12 MP photo's 21 views; issue 29). Convert it from the
  Keras network (``from_keras_model``); the SavedModel's signature converts to a file that scores NaN.

A LiteRT interpreter must not be called from two threads at once, while RunInference shares one
model object among all threads of a worker process; so threads borrow interpreters of the same
model bytes from a pool (``LiteModel``). ``invoke`` releases the GIL, so threads run in parallel.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Sequence

import numpy as np

from corrosion.core import io_utils
from corrosion.models import serving

RUNTIMES = ("auto", "litert", "litert_int8", "savedmodel")  # litert_int8: the rust-region model's int8 copy
SEGMENTER_LITE_FILE = "segmenter.tflite"
SEGMENTER_INT8_FILE = "segmenter_int8.tflite"  # training.segmenter.quantised: only where it kept the figures
LITE_FILES = {
    "classifier": serving.CLASSIFIER_LITE_FILE,
    "detector": serving.DETECTOR_LITE_FILE,
    "segmenter": SEGMENTER_LITE_FILE,
    "segmenter_int8": SEGMENTER_INT8_FILE,
}


def lite_path(model_dir: str, kind: str = "classifier") -> str:
    return io_utils.join(model_dir, LITE_FILES[kind])


def has_lite(model_dir: str, kind: str = "classifier") -> bool:
    return io_utils.exists(lite_path(model_dir, kind))


def _is_segmenter(model_dir: str) -> bool:
    try:
        return serving.read_metadata(model_dir).kind == "segmenter"
    except (OSError, ValueError):
        return False


def resolve_runtime(model_dir: str, requested: str, kind: str = "classifier") -> str:
    """``auto``: LiteRT where the model has its copy (a rust-region model's int8 copy first), else the
    SavedModel (older exports).

    ``kind`` ``detector`` is the model in the detector's place: a rust-region model's copy is
    ``SEGMENTER_LITE_FILE``."""
    if kind == "detector" and _is_segmenter(model_dir):
        kind = "segmenter"
    if requested == "litert_int8":
        if kind != "segmenter":
            raise ValueError(f"litert_int8 is a rust-region model's runtime; {model_dir} is a {kind}")
        if not has_lite(model_dir, "segmenter_int8"):
            raise FileNotFoundError(
                f"{lite_path(model_dir, 'segmenter_int8')} is missing (detector_runtime: litert_int8). Training writes "
                "it with --set lite_int8=true, and only where it kept the float copy's validation figures; "
                "or set detector_runtime: auto"
            )
        return requested
    if requested == "auto":
        if kind == "segmenter" and has_lite(model_dir, "segmenter_int8"):  # only written where it kept the figures
            return "litert_int8"
        return "litert" if has_lite(model_dir, kind) else "savedmodel"
    if requested == "litert" and not has_lite(model_dir, kind):
        raise FileNotFoundError(
            f"{lite_path(model_dir, kind)} is missing ({kind}_runtime: litert). Write it with "
            f"python -m training.export_lite {model_dir}, or set {kind}_runtime: auto"
        )
    return requested


class LiteModel:
    """Named float32 inputs -> named outputs (numpy), from any number of threads.

    Interpreters are pooled: a calling thread borrows one, and at most ``max_interpreters``
    (default: the machine's cores) are ever made, since each keeps its own activation memory
    for the largest batch it has run (~0.1-0.5 GB at 32 views) and more of them than cores
    gains nothing. A thread finding all in use waits for one.
    """

    def __init__(
        self,
        model_bytes: bytes,
        threads: int | None,
        source: str,
        inputs: Sequence[str],
        outputs: Sequence[str],
        max_interpreters: int | None = None,
    ) -> None:
        self._bytes = model_bytes
        self._threads = threads
        self.source = source
        self._limit = max(1, max_interpreters or os.cpu_count() or 1)
        self._pool: queue.LifoQueue = queue.LifoQueue()
        self._made = 0
        self._lock = threading.Lock()
        runner = self._borrow()  # fail here, at load, on a file that is not a model of the contract
        have_in, have_out = runner[1].get_input_details(), runner[1].get_output_details()
        self._pool.put(runner)
        if not set(inputs) <= set(have_in) or not set(outputs) <= set(have_out):
            raise ValueError(
                f"{source} takes {sorted(have_in)} and gives {sorted(have_out)}; it must take {sorted(inputs)} and give "
                f"{sorted(outputs)}. Re-create it with python -m training.export_lite MODEL_DIR"
            )

    @property
    def interpreters(self) -> int:
        return self._made

    def _borrow(self):
        try:
            return self._pool.get_nowait()
        except queue.Empty:
            pass
        with self._lock:
            make = self._made < self._limit
            self._made += make
        if not make:
            return self._pool.get()
        from ai_edge_litert.interpreter import Interpreter

        interpreter = Interpreter(model_content=self._bytes, num_threads=self._threads or None)
        return interpreter, interpreter.get_signature_runner()  # the runner needs its interpreter alive

    def __call__(self, **inputs: np.ndarray) -> dict[str, np.ndarray]:
        arrays = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in inputs.items()}
        borrowed = self._borrow()
        try:
            return {k: np.array(v) for k, v in borrowed[1](**arrays).items()}  # copies, before another thread runs it
        finally:
            self._pool.put(borrowed)


class LiteClassifier:
    """Float32 pixels (N, S, S, 3) RGB 0..255 -> rust probabilities (N,)."""

    def __init__(
        self, model_bytes: bytes, threads: int | None = 1, source: str = "<bytes>", max_interpreters: int | None = None
    ) -> None:
        names = (serving.PIXELS_INPUT,), (serving.CLASSIFIER_OUTPUT,)
        self._model = LiteModel(model_bytes, threads, source, *names, max_interpreters=max_interpreters)

    @classmethod
    def from_model_dir(
        cls, model_dir: str, threads: int | None = 1, max_interpreters: int | None = None
    ) -> LiteClassifier:
        path = lite_path(model_dir)
        return cls(io_utils.read_bytes(path), threads, path, max_interpreters)

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        out = self._model(**{serving.PIXELS_INPUT: pixels})[serving.CLASSIFIER_OUTPUT]
        return out.astype(np.float32).reshape(-1)


class LiteDetector:
    """Float32 pixels (N, S, S, 3) -> the detector outputs (numpy): LiteRT network, then ``serving_decode``.

    ``decode`` is the SavedModel's decode signature (raw outputs by name -> detection tensors);
    TensorFlow functions may be called from several threads at once.
    """

    def __init__(self, network: LiteModel, decode) -> None:
        self._network = network
        self._decode = decode

    @classmethod
    def from_model_dir(
        cls, model_dir: str, threads: int | None = 1, saved=None, max_interpreters: int | None = None
    ) -> LiteDetector:
        """``saved``: the already loaded SavedModel of ``model_dir`` (loaded here when None)."""
        import tensorflow as tf

        saved = saved if saved is not None else tf.saved_model.load(model_dir)
        if serving.DECODE_SIGNATURE not in saved.signatures:
            raise ValueError(
                f"{model_dir} has {serving.DETECTOR_LITE_FILE} but no {serving.DECODE_SIGNATURE} signature; "
                f"re-create both with python -m training.export_lite {model_dir}"
            )
        decode = saved.signatures[serving.DECODE_SIGNATURE]
        path = lite_path(model_dir, "detector")
        raw = tuple(decode.structured_input_signature[1])
        network = LiteModel(io_utils.read_bytes(path), threads, path, (serving.PIXELS_INPUT,), raw, max_interpreters)
        return cls(network, decode)

    def __call__(self, pixels: np.ndarray) -> dict[str, np.ndarray]:
        import tensorflow as tf

        raw = self._network(**{serving.PIXELS_INPUT: pixels})
        out = self._decode(**{k: tf.constant(v) for k, v in raw.items()})
        return {k: v.numpy() for k, v in out.items()}


class LiteSegmenter:
    """Float32 pixels (N, S, S, 3) RGB 0..255 -> (N, S/8, S/8) rust probability maps, as ``SavedSegmenter``."""

    def __init__(
        self, model_bytes: bytes, threads: int | None = 1, source: str = "<bytes>", max_interpreters: int | None = None
    ) -> None:
        names = (serving.PIXELS_INPUT,), (serving.SEGMENTER_OUTPUT,)
        self._model = LiteModel(model_bytes, threads, source, *names, max_interpreters=max_interpreters)

    @classmethod
    def from_model_dir(
        cls, model_dir: str, threads: int | None = 1, max_interpreters: int | None = None, int8: bool = False
    ) -> LiteSegmenter:
        path = lite_path(model_dir, "segmenter_int8" if int8 else "segmenter")
        return cls(io_utils.read_bytes(path), threads, path, max_interpreters)

    @property
    def source(self) -> str:
        return self._model.source

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        return self._model(**{serving.PIXELS_INPUT: pixels})[serving.SEGMENTER_OUTPUT]
