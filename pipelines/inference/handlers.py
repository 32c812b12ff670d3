"""RunInference model handlers for the exported classifier and detector (``corrosion.models.serving``).

Both are keyed: elements are ``(ImageRecord, example)`` and predictions ``(ImageRecord,
PredictionResult)``, so each result stays attached to its image without a join. Each worker
process loads a model once (RunInference's per-process shared model, used by all threads) and
calls it on batches: the model's LiteRT copy where the runtime resolves to ``litert``
(``corrosion.models.lite_runtime``), else the SavedModel's ``serving_pixels`` signature.

- Classifier: examples are reduced-scale decodes already resized to the model input.
- Detector: examples are the encoded bytes; per image, one function per concern:
  ``decode_for_detector`` decodes at the tiles' model scale, ``detector_views`` cuts the views (tiles with overlap,
  plus the whole image), resized in ``tile_batch_size`` chunks; ``predict_views`` runs them in
  model calls of that size and keeps each view's rust boxes; ``merge_detections`` maps them to the
  original (EXIF-oriented) pixel grid and merges them across tiles. The decode stays inside the
  handler (not a ``with_preprocess_fn``), so only the image being detected is held decoded, and a
  file that fails this full decode becomes an error in the result, never an exception that
  would fail the whole batch.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
from apache_beam.ml.inference.base import ModelHandler, PredictionResult
from PIL import Image

from corrosion.core import staging
from corrosion.imaging import images
from corrosion.inference import tiling
from corrosion.models import lite_runtime, serving
from pipelines.inference.config import InferenceConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ImageRecord:
    """One readable image on its way through the pipeline."""

    uri: str
    sha256: str
    width: int  # after EXIF orientation
    height: int
    data: bytes = b""  # the encoded file, kept only while a later stage (detector, preview) needs it


@dataclass(frozen=True)
class Detections:
    boxes: tuple[tuple[float, float, float, float, float], ...] = ()  # pixel xmin, ymin, xmax, ymax, score
    views: int = 0  # model inputs used: tiles plus the whole-image pass
    error_reason: str | None = None
    error_message: str | None = None
    # a rust-region model (segmenter): the share of rust pixels, and (with --masks) the rust mask
    # as a PNG at the decoded scale (0 clean, 255 rust)
    rust_fraction: float | None = None
    mask: bytes | None = None


def limit_tf_threads(threads: int | None) -> None:
    """Cap the threads one TensorFlow op may use in this process (``tf_threads_per_call``).

    Only possible before the process runs its first TensorFlow op; later it is left as it is
    (logged), so calling it from every worker's setup is safe.
    """
    if not threads:
        return
    import tensorflow as tf

    if tf.config.threading.get_intra_op_parallelism_threads() == threads:
        return
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        log.info("TensorFlow calls in this process use %d thread(s) each", threads)
    except RuntimeError:
        log.info("TensorFlow already running in this process: keeping its thread setting")


class ModelChangedError(RuntimeError):
    """The model folder holds another model than the one this run's rows are labelled with."""


def load_unchanged(model_dir: str, expected: serving.ModelMetadata, load: Callable[[str], Any]) -> Any:
    """``load(local_dir)`` on this process's local copy of ``model_dir`` (``corrosion.core.staging``:
    a ``gs://`` model is copied through Beam's FileSystems), then a check that ``model_dir`` still
    holds, and the copy held, the model the run started with.

    The run reads metadata.json once, at launch, and labels every row with that version and
    threshold; workers load the model later (minutes later on Dataflow). A re-export into the same
    folder in between would score rows with the new model under the old version, which
    ``--skip_processed`` would then trust. Checked after the load (and after a failed one: an
    export in progress removes the LiteRT copy first), so a load that overlaps an export is caught.
    """
    loaded = None
    try:
        local = staging.local_folder(model_dir, refresh=True)
        loaded = serving.read_metadata(local).version
        model = load(local)
    finally:
        now = serving.read_metadata(model_dir).version
        for held in (now, loaded):
            if held is not None and held != expected.version:
                raise ModelChangedError(
                    f"{model_dir} changed during this run: it held {expected.kind} {expected.version} at launch and "
                    f"holds {held} now, so rows would be labelled with the wrong model. Run the job again; to retrain "
                    "while jobs run, export into a new folder and point the job at it"
                )
    return model


class _Loaded:
    """A loaded SavedModel and its pixels signature (the signature needs the object alive)."""

    def __init__(self, model_dir: str) -> None:
        import tensorflow as tf

        self.saved = tf.saved_model.load(model_dir)
        self.fn = self.saved.signatures[serving.PIXELS_SIGNATURE]


class _SavedClassifier(_Loaded):
    """The SavedModel's pixels signature with ``LiteClassifier``'s call: pixels -> probabilities."""

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        import tensorflow as tf

        out = self.fn(**{serving.PIXELS_INPUT: tf.constant(pixels)})[serving.CLASSIFIER_OUTPUT]
        return out.numpy().reshape(-1)


class _SavedDetector(_Loaded):
    """The SavedModel's pixels signature with ``LiteDetector``'s call: pixels -> detector outputs (numpy)."""

    def __call__(self, pixels: np.ndarray) -> dict[str, np.ndarray]:
        import tensorflow as tf

        return {k: v.numpy() for k, v in self.fn(**{serving.PIXELS_INPUT: tf.constant(pixels)}).items()}


class SavedSegmenter(_Loaded):
    """The SavedModel's pixels signature: pixels -> (N, S/8, S/8) rust probability maps."""

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        import tensorflow as tf

        return self.fn(**{serving.PIXELS_INPUT: tf.constant(pixels)})[serving.SEGMENTER_OUTPUT].numpy()


class ClassifierHandler(ModelHandler[tuple[ImageRecord, np.ndarray], tuple[ImageRecord, PredictionResult], Any]):
    """``runtime`` (resolved by ``lite_runtime.resolve_runtime``): ``litert`` runs classifier.tflite, else the SavedModel."""

    def __init__(
        self,
        model_dir: str,
        metadata: serving.ModelMetadata,
        batch_size: int,
        tf_threads: int | None = None,
        runtime: str = "savedmodel",
        lite_interpreters: int | None = None,
    ) -> None:
        super().__init__(min_batch_size=1, max_batch_size=batch_size)
        self._model_dir = model_dir
        self._metadata = metadata
        self._tf_threads = tf_threads
        self._runtime = runtime
        self._lite_interpreters = lite_interpreters

    def load_model(self) -> _SavedClassifier | lite_runtime.LiteClassifier:
        log.info("loading classifier %s (%s) from %s", self._metadata.version, self._runtime, self._model_dir)
        limit_tf_threads(self._tf_threads)  # TensorFlow still resizes the pixels
        if self._runtime == "litert":
            load = partial(
                lite_runtime.LiteClassifier.from_model_dir,
                threads=self._tf_threads,
                max_interpreters=self._lite_interpreters,
            )
        else:
            load = _SavedClassifier
        return load_unchanged(self._model_dir, self._metadata, load)

    def run_inference(
        self, batch: Sequence[tuple[ImageRecord, np.ndarray]], model, inference_args: dict | None = None
    ) -> Iterable[tuple[ImageRecord, PredictionResult]]:
        records = [r for r, _ in batch]
        probs = model(np.stack([p for _, p in batch]).astype(np.float32, copy=False))
        return [
            (r, PredictionResult(None, float(p), self._metadata.version)) for r, p in zip(records, probs, strict=True)
        ]

    def get_num_bytes(self, batch: Sequence[tuple[ImageRecord, np.ndarray]]) -> int:
        return sum(p.nbytes for _, p in batch)

    def get_metrics_namespace(self) -> str:
        return "corrosion_classifier"


class DetectorHandler(ModelHandler[tuple[Any, ImageRecord], tuple[Any, PredictionResult], Any]):
    """Elements are (any key, ImageRecord with its bytes); the key comes back with the Detections.

    The model in the detector's place is a box detector or a rust-region model (metadata kind
    ``segmenter``: boxes from its regions, the rusted share from its pixels, ``keep_masks`` to return
    each mask). ``runtime`` ``litert``: the network's LiteRT copy, then the SavedModel's decode signature."""

    def __init__(
        self,
        model_dir: str,
        metadata: serving.ModelMetadata,
        config: InferenceConfig,
        runtime: str = "savedmodel",
        keep_masks: bool = False,
    ) -> None:
        super().__init__(min_batch_size=1, max_batch_size=config.detector_images_per_batch)
        self._model_dir = model_dir
        self._metadata = metadata
        self._config = config
        self._runtime = runtime
        self._keep_masks = keep_masks

    def load_model(self) -> _SavedDetector | lite_runtime.LiteDetector | SavedSegmenter | lite_runtime.LiteSegmenter:
        limit_tf_threads(self._config.tf_threads_per_call)
        log.info("loading detector %s (%s) from %s", self._metadata.version, self._runtime, self._model_dir)
        c = self._config
        if self._metadata.kind == "segmenter" and self._runtime in ("litert", "litert_int8"):
            load = partial(
                lite_runtime.LiteSegmenter.from_model_dir,
                threads=c.tf_threads_per_call,
                max_interpreters=c.lite_interpreters_per_process,
                int8=self._runtime == "litert_int8",
            )
        elif self._metadata.kind == "segmenter":
            load = SavedSegmenter
        elif self._runtime == "litert":
            load = partial(
                lite_runtime.LiteDetector.from_model_dir,
                threads=c.tf_threads_per_call,
                max_interpreters=c.lite_interpreters_per_process,
            )
        else:
            load = _SavedDetector
        return load_unchanged(self._model_dir, self._metadata, load)

    def run_inference(
        self, batch: Sequence[tuple[Any, ImageRecord]], model, inference_args: dict | None = None
    ) -> Iterable[tuple[Any, PredictionResult]]:
        out = []
        for key, record in batch:
            try:
                if self._metadata.kind == "segmenter":
                    result = segment_image(model, record, self._metadata, self._config, self._keep_masks)
                else:
                    result = detect_image(model, record, self._metadata, self._config)
            except images.ImageError as exc:
                result = Detections(error_reason=exc.reason, error_message=str(exc))
            out.append((key, PredictionResult(None, result, self._metadata.version)))
        return out

    def get_num_bytes(self, batch: Sequence[tuple[Any, ImageRecord]]) -> int:
        return sum(len(r.data) for _, r in batch)

    def get_metrics_namespace(self) -> str:
        return "corrosion_detector"


def decode_for_detector(record: ImageRecord, input_size: int, config: InferenceConfig) -> Image.Image:
    """The full decode for detection: JPEG DCT-scaled down to (not below) the tiles' model scale.

    A photo smaller than one tile is its own tile: its scale is the photo's, not the tile size's
    (which would decode a 416-px photo at 104 px for a 256-px model, then blow it up again). A photo
    longer than ``max_side`` is refused from its header (``images.check_side``): its tiles would not be
    bounded by the pixel limit.
    """
    tcfg = config.tiling
    w, h = record.width, record.height
    factor = (min(tcfg.tile_size, max(w, h)) if tcfg.enabled else max(w, h)) / input_size
    reduce_to = None
    if tcfg.decode_at_tile_scale and factor > 1:
        reduce_to = (max(1, math.ceil(w / factor)), max(1, math.ceil(h / factor)))
    return images.decode(record.data, record.uri, config.max_pixels, reduce_to=reduce_to, max_side=config.max_side)


def detector_views(
    img: Image.Image, record: ImageRecord, input_size: int, config: InferenceConfig
) -> tuple[list[tiling.Tile], np.ndarray, float, float]:
    """Cut the decoded ``img`` into model inputs.

    Returns the views (tiles, then the whole image when ``global_pass``) in decoded-pixel
    coordinates, their pixels (V, S, S, 3) float32 resized with ``resize_pixels`` in
    ``tile_batch_size`` chunks (a float32 copy of every tile at once would be GBs), and the
    decoded -> original scale factors (x, y).
    """
    arr = np.asarray(img)
    grid, sx, sy = tile_views(img, record, config)
    views, chunks = list(grid), [tile_pixels(arr, grid, input_size, config.tile_batch_size)] if grid else []
    if not grid or (config.tiling.global_pass and len(grid) > 1):
        chunks.append(whole_view_pixels(img, input_size))
        views.append(tiling.Tile(0, 0, *img.size))
    return views, np.concatenate(chunks), sx, sy


def tile_views(
    img: Image.Image, record: ImageRecord, config: InferenceConfig
) -> tuple[list[tiling.Tile], float, float]:
    """The tiles of the decoded ``img`` (none when tiling is off) and the decoded -> original scale (x, y)."""
    tcfg = config.tiling
    dw, dh = img.size
    sx, sy = record.width / dw, record.height / dh
    if not tcfg.enabled:
        return [], sx, sy
    tile = max(1, round(tcfg.tile_size / sx))
    overlap = min(tile - 1, round(tcfg.overlap / sx))
    return tiling.tile_grid(dw, dh, tile, overlap), sx, sy


def tile_pixels(arr: np.ndarray, tiles: Sequence[tiling.Tile], input_size: int, step: int) -> np.ndarray:
    """The tiles' pixels resized to the model input, ``step`` tiles at a time (float32 of all at once is GBs)."""
    from corrosion.imaging import preprocess

    stacked = np.stack([arr[t.y0 : t.y1, t.x0 : t.x1] for t in tiles])
    step = max(1, step)
    return np.concatenate(
        [preprocess.resize_pixels(stacked[i : i + step], input_size).numpy() for i in range(0, len(tiles), step)]
    )


def whole_view_pixels(img: Image.Image, input_size: int) -> np.ndarray:
    """The whole image as one model input (1, S, S, 3)."""
    from corrosion.imaging import preprocess

    # Box-filter down to about twice the input first, so the TF resize works on a small array.
    k = max(1, min(img.size) // (2 * input_size))
    small = np.asarray(img.reduce(k) if k > 1 else img)
    return preprocess.resize_pixels(small[None], input_size).numpy()


def detect_image(model, record: ImageRecord, metadata: serving.ModelMetadata, config: InferenceConfig) -> Detections:
    """Tile, detect, map to original pixels, merge. ``model``: pixels -> detector outputs (numpy)."""
    img = decode_for_detector(record, metadata.input_size, config)
    views, pixels, sx, sy = detector_views(img, record, metadata.input_size, config)
    del img  # the tiles' pixels are copies: only they stay in memory while the model runs
    found = list(predict_views(model, views, pixels, metadata.threshold, config.tile_batch_size))
    return merge_detections(found, record, views, (sx, sy), config)


def segment_image(
    model, record: ImageRecord, metadata: serving.ModelMetadata, config: InferenceConfig, keep_mask: bool = False
) -> Detections:
    """Tile, map rust per view, stitch the maps over the decoded image, threshold: the rusted share of
    the photo's pixels and one box per rust region (in original pixels, scored by its mean probability)."""
    from corrosion.data import regions

    prob, n_views, sx, sy = stitched_rust_map(model, record, metadata, config)
    extra = metadata.extra
    found = regions.scored_regions(
        prob, metadata.threshold, extra.get("region_merge_radius", 0.02), extra.get("min_region_area", 0.002)
    )
    boxes = [
        (round(x0 * sx, 1), round(y0 * sy, 1), round(x1 * sx, 1), round(y1 * sy, 1), round(score, 6))
        for x0, y0, x1, y1, score in found
    ]
    boxes.sort(key=lambda b: -b[4])
    rust = prob >= metadata.threshold
    mask = regions.encode(rust.astype(np.uint8) * 255) if keep_mask else None
    return Detections(tuple(boxes), n_views, rust_fraction=float(rust.mean()), mask=mask)


def stitched_rust_map(
    model, record: ImageRecord, metadata: serving.ModelMetadata, config: InferenceConfig
) -> tuple[np.ndarray, int, float, float]:
    """The photo's rust probability at its decoded resolution (views' maps stitched, averaged
    where they overlap), the number of views scored, and the decoded -> original scale (x, y)."""
    img = decode_for_detector(record, metadata.input_size, config)
    if config.tiling.skip_quiet_below is not None:
        grid, sx, sy = tile_views(img, record, config)
        if len(grid) > 1:
            return (*quiet_tiles_skipped(model, img, grid, metadata, config), sx, sy)
    views, pixels, sx, sy = detector_views(img, record, metadata.input_size, config)
    dw, dh = img.size
    del img
    return tiling.stitch_maps(view_maps(model, pixels, config.tile_batch_size), views, dw, dh), len(views), sx, sy


def view_maps(model, pixels: np.ndarray, step: int) -> np.ndarray:
    """The segmenter over ``pixels`` in calls of ``step`` views: (V, M, M) maps."""
    step = max(1, step)
    return np.concatenate([model(pixels[i : i + step]) for i in range(0, len(pixels), step)])


def quiet_tiles_skipped(
    model, img: Image.Image, grid: list[tiling.Tile], metadata: serving.ModelMetadata, config: InferenceConfig
) -> tuple[np.ndarray, int]:
    """``stitched_rust_map`` with ``tiling.skip_quiet_below``: the whole-image pass first, then only the
    tiles of ``grid`` where its map reaches that fraction of the threshold. A skipped tile's pixels keep the
    whole-image map (and any scored neighbour's overlap), so rust the whole image shows is never lost;
    what can be lost is a spot too small to show at that scale, the price of the setting (docs/scale.md).
    Returns the stitched map and the number of views scored."""
    views = [tiling.Tile(0, 0, *img.size)]
    maps = [model(whole_view_pixels(img, metadata.input_size))]
    below = config.tiling.skip_quiet_below * metadata.threshold
    busy = [t for t, q in zip(grid, tiling.quiet_tiles(maps[0][0], grid, *img.size, below), strict=True) if not q]
    if busy:
        step = config.tile_batch_size
        maps.append(view_maps(model, tile_pixels(np.asarray(img), busy, metadata.input_size, step), step))
        views += busy
    return tiling.stitch_maps(np.concatenate(maps), views, *img.size), len(views)


def predict_views(
    model, views: Sequence[tiling.Tile], pixels: np.ndarray, threshold: float, step: int
) -> Iterable[tuple[np.ndarray, np.ndarray, tiling.Tile]]:
    """The model over ``pixels`` in calls of ``step`` views: each view's kept rust boxes (normalised
    to the view) and scores. Boxes below ``threshold`` or of another class are dropped here."""
    step = max(1, step)
    for start in range(0, len(views), step):
        out = model(pixels[start : start + step])
        boxes, scores, classes = out["detection_boxes"], out["detection_scores"], out["detection_classes"]
        counts = out["num_detections"].astype(int).reshape(-1)
        for i, view in enumerate(views[start : start + step]):
            n = counts[i]
            keep = (scores[i, :n] >= threshold) & (np.round(classes[i, :n]) == 1)
            if keep.any():
                yield boxes[i, :n][keep], scores[i, :n][keep], view


def merge_detections(
    found: Sequence[tuple[np.ndarray, np.ndarray, tiling.Tile]],
    record: ImageRecord,
    views: Sequence[tiling.Tile],
    scale: tuple[float, float],
    config: InferenceConfig,
) -> Detections:
    """Per-view boxes -> original (EXIF-oriented) pixels, merged across tiles, clipped and rounded."""
    if not found:
        return Detections(views=len(views))
    dw, dh = max(v.x1 for v in views), max(v.y1 for v in views)  # the decoded image's size
    all_boxes = []
    for boxes, _, view in found:
        px = tiling.tile_boxes_to_image(boxes, view, dw, dh)
        px[:, [0, 2]] *= scale[0]
        px[:, [1, 3]] *= scale[1]
        all_boxes.append(px)
    merged, merged_scores = tiling.merge_boxes(
        np.concatenate(all_boxes),
        np.concatenate([scores for _, scores, _ in found]),
        config.merge.iou_threshold,
        config.merge.containment_threshold,
        config.merge.max_boxes,
    )
    w, h = record.width, record.height
    boxes_out = tuple(
        (
            round(float(min(max(b[0], 0), w)), 1),
            round(float(min(max(b[1], 0), h)), 1),
            round(float(min(max(b[2], 0), w)), 1),
            round(float(min(max(b[3], 0), h)), 1),
            round(float(s), 6),
        )
        for b, s in zip(merged, merged_scores, strict=True)
    )
    return Detections(boxes=boxes_out, views=len(views))


def classifier_pixels(record_data: bytes, name: str, input_size: int, max_pixels: int) -> np.ndarray:
    """Reduced-scale decode (JPEG DCT scaling to no less than the input) -> (S, S, 3) float32."""
    from corrosion.imaging import preprocess

    img = images.decode(record_data, name, max_pixels, reduce_to=(input_size, input_size))
    return preprocess.resize_one(input_size)(np.asarray(img)).numpy()
