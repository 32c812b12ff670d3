"""The labelling tools' documented file shapes, as strict pydantic models, to hold the review queue's
pre-annotations to them (a key misspelled or a wrong type fails; documented optional keys may be absent).

- Label Studio tasks with predictions: https://labelstud.io/guide/predictions and
  https://labelstud.io/guide/task_format (``rectanglelabels`` values in percent of the photo).
- LabelMe 5 files: the keys ``labelme/_label_file.py`` writes and reads (``shapes`` of
  ``rectangle``: two corner points; ``polygon``: three or more points).
- COCO instances (CVAT's "COCO 1.0" import): https://cocodataset.org/#format-data; ``score`` is the
  results format's field, kept on pre-annotations so the reviewer sees the model's confidence.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class RectangleValue(Strict):
    x: float = Field(ge=0, le=100)
    y: float = Field(ge=0, le=100)
    width: float = Field(ge=0, le=100)
    height: float = Field(ge=0, le=100)
    rotation: float = 0
    rectanglelabels: list[str] = Field(min_length=1)


class RectangleResult(Strict):
    id: str
    from_name: str
    to_name: str
    type: Literal["rectanglelabels"]
    original_width: int
    original_height: int
    image_rotation: float = 0
    value: RectangleValue
    score: float | None = None


class Prediction(Strict):
    model_version: str
    score: float | None = None
    result: list[RectangleResult]


class LabelStudioTask(Strict):
    data: dict[str, str]
    predictions: list[Prediction] = []


class LabelMeShape(Strict):
    label: str
    points: list[list[float]]
    group_id: int | None
    description: str | None = None
    shape_type: Literal["rectangle", "polygon"]
    flags: dict[str, bool]

    @model_validator(mode="after")
    def _points(self) -> LabelMeShape:
        need = 2 if self.shape_type == "rectangle" else 3
        if len(self.points) < need or any(len(p) != 2 for p in self.points):
            raise ValueError(f"a {self.shape_type} needs {need}+ points of two coordinates")
        return self


class LabelMeFile(Strict):
    version: str
    flags: dict[str, bool]
    shapes: list[LabelMeShape]
    imagePath: str  # noqa: N815 (LabelMe's key)
    imageData: str | None  # noqa: N815
    imageHeight: int  # noqa: N815
    imageWidth: int  # noqa: N815


class CocoImage(Strict):
    id: int
    file_name: str
    width: int
    height: int


class CocoAnnotation(Strict):
    id: int
    image_id: int
    category_id: int
    bbox: list[float] = Field(min_length=4, max_length=4)
    area: float
    iscrowd: Literal[0, 1]
    segmentation: list[list[float]] | dict
    score: float | None = None


class CocoCategory(Strict):
    id: int
    name: str
    supercategory: str | None = None


class CocoFile(Strict):
    images: list[CocoImage]
    annotations: list[CocoAnnotation]
    categories: list[CocoCategory]
