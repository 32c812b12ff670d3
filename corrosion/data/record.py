"""One image as the data set stores it: plain Python, so validation and tests need no TensorFlow.

``corrosion.data.schema`` turns it into a ``tf.train.Example`` and back.
"""

from __future__ import annotations

from dataclasses import dataclass

from corrosion.core.annotations import Box


@dataclass(frozen=True)
class Record:
    """One image as stored in the shards (boxes in pixels of the stored, oriented image)."""

    encoded: bytes
    format: str  # "jpeg" | "png"
    width: int
    height: int
    filename: str
    source_id: str
    sha256: str
    image_class: str
    image_label: int
    boxes: tuple[Box, ...] = ()
    box_labels: tuple[int, ...] = ()
    # Rust pixels of the stored image as a PNG (0 background, 1 rust; ``corrosion.data.regions``),
    # for sources that outline every rust pixel; None where only boxes or the image label are known.
    mask: bytes | None = None
