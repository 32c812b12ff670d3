"""The classifier's LiteRT (TFLite) copy: how it is run, by the export check and the pipeline alike.

Why a second runtime: on CPU, LiteRT's XNNPACK kernels run the MobileNetV2 classifier about 1.7x
faster than the SavedModel's TensorFlow graph, with the same float32 weights and scores equal to
~1e-6, and the classifier is a third of the batch pipeline's CPU per photo. The file
(``serving.CLASSIFIER_LITE_FILE``) is written next to the SavedModel by ``training.export_lite``.

A LiteRT interpreter must not be called from two threads at once, while RunInference shares one
model object among all threads of a worker process; so each thread gets its own interpreter of the
same model bytes (a few MB each). ``invoke`` releases the GIL, so threads run in parallel.
"""

from __future__ import annotations

import threading

import numpy as np

from corrosion import io_utils, serving


def lite_path(model_dir: str) -> str:
    return io_utils.join(model_dir, serving.CLASSIFIER_LITE_FILE)


def has_lite(model_dir: str) -> bool:
    return io_utils.exists(lite_path(model_dir))


RUNTIMES = ("auto", "litert", "savedmodel")


def resolve_runtime(model_dir: str, requested: str) -> str:
    """``auto``: LiteRT where the classifier has its copy, else the SavedModel (older exports)."""
    if requested == "auto":
        return "litert" if has_lite(model_dir) else "savedmodel"
    if requested == "litert" and not has_lite(model_dir):
        raise FileNotFoundError(
            f"{lite_path(model_dir)} is missing (classifier_runtime: litert). Write it with "
            f"python -m training.export_lite {model_dir}, or set classifier_runtime: auto"
        )
    return requested


class LiteClassifier:
    """Float32 pixels (N, S, S, 3) RGB 0..255 -> rust probabilities (N,), one interpreter per thread."""

    def __init__(self, model_bytes: bytes, threads: int | None = 1, source: str = "<bytes>") -> None:
        self._bytes = model_bytes
        self._threads = threads
        self.source = source
        self._local = threading.local()
        runner = self._runner()  # fail here, at load, on a file that is not a model of the contract
        inputs, outputs = runner.get_input_details(), runner.get_output_details()
        if serving.PIXELS_INPUT not in inputs or serving.CLASSIFIER_OUTPUT not in outputs:
            raise ValueError(
                f"{source} takes {sorted(inputs)} and gives {sorted(outputs)}; a classifier's LiteRT file must take "
                f"'{serving.PIXELS_INPUT}' and give '{serving.CLASSIFIER_OUTPUT}'. Re-create it with "
                "python -m training.export_lite MODEL_DIR"
            )

    @classmethod
    def from_model_dir(cls, model_dir: str, threads: int | None = 1) -> LiteClassifier:
        path = lite_path(model_dir)
        return cls(io_utils.read_bytes(path), threads, source=path)

    def _runner(self):
        runner = getattr(self._local, "runner", None)
        if runner is None:
            from ai_edge_litert.interpreter import Interpreter

            interpreter = Interpreter(model_content=self._bytes, num_threads=self._threads or None)
            runner = interpreter.get_signature_runner()
            self._local.interpreter = interpreter  # the runner needs it alive
            self._local.runner = runner
        return runner

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        pixels = np.ascontiguousarray(pixels, dtype=np.float32)
        out = self._runner()(**{serving.PIXELS_INPUT: pixels})[serving.CLASSIFIER_OUTPUT]
        return np.asarray(out, np.float32).reshape(-1)
