"""Class folders: ``rust/``, ``norust/``, ``CORROSION/`` ... the folder name is the image label."""

from __future__ import annotations

from corrosion.core import paths
from corrosion.core.annotations import LabelledImage
from corrosion.core.labels import LabelConfig


def class_from_path(image_path: str, root: str, labels: LabelConfig) -> str | None:
    """Project class of the nearest ancestor folder (below ``root``) whose name is a label alias."""
    parts = paths.relative(image_path, root).split("/")[:-1]
    for folder in reversed(parts):
        if labels.is_image_label(folder):
            return labels.image_class(folder)
    return None


def read_class_folder_image(
    image_path: str, root: str, labels: LabelConfig, source: str = "", source_split: str | None = None
) -> LabelledImage | None:
    """A LabelledImage with no box information, or None when no ancestor folder names a class."""
    image_class = class_from_path(image_path, root, labels)
    if image_class is None:
        return None
    return LabelledImage(image_path, image_class, boxes=None, source=source, source_split=source_split)
