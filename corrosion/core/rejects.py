"""Reject rows and the annotation error type shared by the readers, discovery and the pipeline.

Every input that does not become (part of) a record ends up as a ``Reject`` whose ``reason`` is
a short stable code (tests and stats count by it) and whose ``detail`` tells a person what to do.
"""

from __future__ import annotations

import json
import reprlib
from dataclasses import asdict, dataclass
from typing import Any

# Stages, in the order an input meets them.
DISCOVER = "discover"
ANNOTATION = "annotation"
IMAGE = "image"
BOX = "box"
DUPLICATES = "duplicates"


@dataclass(frozen=True)
class Reject:
    path: str
    stage: str
    reason: str
    detail: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


_SHORT = reprlib.Repr()
_SHORT.maxstring, _SHORT.maxother, _SHORT.maxlist, _SHORT.maxdict, _SHORT.maxlevel = 80, 80, 8, 8, 3


def short_repr(value: Any) -> str:
    """``repr`` bounded in length and depth: a message quoting a hostile value stays one short line
    (a YAML alias bomb expands to gigabytes when printed whole)."""
    return _SHORT.repr(value)


class AnnotationError(ValueError):
    """An annotation file (or one of its entries) that cannot be used; ``reason`` is a stable code."""

    def __init__(self, reason: str, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.reason = reason
        self.path = path
        self.message = message

    def to_reject(self, stage: str = ANNOTATION) -> Reject:
        return Reject(self.path, stage, self.reason, str(self))


def box_class_or_reject(labels, source_name: str, annotation_path: str) -> str:
    """The project box class for a source label; AnnotationError ``unknown_label`` naming the label."""
    from corrosion.core.labels import UnknownLabelError

    try:
        return labels.box_class(source_name)
    except UnknownLabelError as exc:
        raise AnnotationError("unknown_label", annotation_path, str(exc)) from exc
