"""The contract between training's exported models and the inference pipeline.

Every exported model directory holds a SavedModel and ``metadata.json``. Signatures:
- ``serving_default``: ``image_bytes`` (string, [N]) encoded JPEG/PNG -> outputs below;
  decoding and resizing inside the graph via ``corrosion.imaging.preprocess``.
- ``serving_pixels``: ``images`` (float32, [N, S, S, 3], RGB 0..255, already resized with
  ``corrosion.imaging.preprocess.resize_pixels``) -> the same outputs; the inference pipeline uses this
  after its fast reduced-scale Pillow decode and, for the detector, per tile.
Classifier outputs: ``rust_probability`` [N]. Detector outputs (TF Object Detection API names):
``detection_boxes`` [N, K, 4] normalised (ymin, xmin, ymax, xmax), ``detection_scores`` [N, K],
``detection_classes`` [N, K] (1 = rust), ``num_detections`` [N].
Detectors also have ``serving_decode``: the network's raw outputs by name (``box`` deltas, ``cls``
logits, ``image`` logit) -> the detector outputs; the pixels signature is the network then this
(``python -m training.export_lite`` adds it to a detector exported before it existed).
Float32 LiteRT copies (``training.export_lite``, checked against the SavedModel when written), run
by the pipeline where present (``*_runtime`` in configs/inference.yaml; ``corrosion.models.lite_runtime``):
``classifier.tflite`` is the classifier's pixels signature, ``detector.tflite`` the detector's network.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field

from corrosion.core import io_utils

METADATA_FILE = "metadata.json"
BYTES_SIGNATURE = "serving_default"
PIXELS_SIGNATURE = "serving_pixels"
BYTES_INPUT = "image_bytes"
PIXELS_INPUT = "images"
CLASSIFIER_OUTPUT = "rust_probability"
DECODE_SIGNATURE = "serving_decode"
CLASSIFIER_LITE_FILE = "classifier.tflite"
DETECTOR_LITE_FILE = "detector.tflite"
DETECTOR_OUTPUTS = ("detection_boxes", "detection_scores", "detection_classes", "num_detections")
# segmenter: rust probability per stride-8 cell of the squashed input, (N, S/8, S/8); a pixel is rust
# at or above metadata.threshold once the map is upsampled (bilinear) to the photo
SEGMENTER_OUTPUT = "rust_map"


@dataclass(frozen=True)
class ModelMetadata:
    kind: str  # "classifier" | "detector" | "segmenter"
    version: str  # e.g. "classifier-20261124T1200-3f2a1c"
    input_size: int
    threshold: float  # classifier: on rust_probability; detector: box score; segmenter: pixel rust probability
    class_names: tuple[str, ...]
    backbone: str
    weights: str  # where the backbone weights came from
    extra: dict = field(default_factory=dict)


def write_metadata(model_dir: str, metadata: ModelMetadata) -> None:
    data = dataclasses.asdict(metadata)
    data["class_names"] = list(metadata.class_names)
    io_utils.write_text(io_utils.join(model_dir, METADATA_FILE), json.dumps(data, indent=2) + "\n")


def read_metadata(model_dir: str) -> ModelMetadata:
    path = io_utils.join(model_dir, METADATA_FILE)
    if not io_utils.exists(path):
        raise FileNotFoundError(
            f"{path} is missing: {model_dir} is not a model exported by training.train_classifier or train_detector"
        )
    data = json.loads(io_utils.read_text(path))
    data["class_names"] = tuple(data["class_names"])
    return ModelMetadata(**data)
