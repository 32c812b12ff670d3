"""What goes into a shard must decode in TensorFlow, not only in Pillow: validation plus that check.

``corrosion.data.validate`` is plain Python (Pillow), so a raw folder can be checked without
TensorFlow; the dataset pipeline and raw-folder evaluation, which feed TensorFlow, come through here.
"""

from __future__ import annotations

import tensorflow as tf

from corrosion.core import io_utils
from corrosion.core.annotations import LabelledImage
from corrosion.core.labels import LabelConfig
from corrosion.data import validate as plain
from corrosion.data.dataset_config import DatasetConfig, ValidationConfig
from corrosion.data.record import Record
from corrosion.data.validate import ValidationError


def validate(
    labelled: LabelledImage,
    data: bytes,
    labels: LabelConfig,
    config: DatasetConfig | ValidationConfig | None = None,
    **kwargs,
) -> plain.Validated:
    """``validate.validate``, then TensorFlow decodes the bytes the record keeps as they are."""
    result = plain.validate(labelled, data, labels, config, **kwargs)
    if result.stored_as_is:
        check_decodes(data, labelled.image_path, result.record.width, result.record.height)
    return result


def record_from_file(
    labelled: LabelledImage, labels: LabelConfig, config: DatasetConfig | ValidationConfig | None = None
) -> Record:
    """The checked record of the image file itself, read at most up to ``max_file_bytes``; a file that
    cannot be read is a ValidationError too (``file_too_large``, ``read_error``)."""
    path = labelled.image_path
    try:
        data = io_utils.read_bytes(path, plain.validation_config(config).max_file_bytes)
    except OSError as exc:
        reason = io_utils.read_error_reason(exc)
        raise ValidationError(reason, path, f"{path}: cannot be read ({exc})") from exc
    return validate(labelled, data, labels, config).record


def check_decodes(data: bytes, path: str, width: int, height: int) -> None:
    """Bytes stored as they are must decode in TensorFlow, which training and the bytes serving
    signature use: a damaged JPEG that Pillow decodes (filling the damage) but TensorFlow refuses
    would stop every training run that reaches its shard."""
    try:
        shape = tf.io.decode_image(data, channels=3, expand_animations=False).shape
    except (tf.errors.InvalidArgumentError, ValueError) as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ValidationError(
            "corrupt_image", path, f"{path}: damaged image data: TensorFlow cannot decode it ({message})"
        ) from exc
    if tuple(shape[:2]) != (height, width):
        raise ValidationError(
            "corrupt_image", path, f"{path}: TensorFlow decodes it as {shape[1]}x{shape[0]}, Pillow as {width}x{height}"
        )
