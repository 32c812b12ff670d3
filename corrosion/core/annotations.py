"""Plain data types for labelled images, shared by readers, generator, records and evaluation."""

from __future__ import annotations

from dataclasses import dataclass, field, replace


@dataclass(frozen=True)
class Box:
    """An axis-aligned box in pixel coordinates of the (orientation-corrected) image."""

    xmin: float
    ymin: float
    xmax: float
    ymax: float
    label: str = "rust"
    difficult: bool = False
    truncated: bool = False
    # The region the box was drawn round, when the source outlines it: polygons (flat x1, y1, x2,
    # y2, ... in the same pixels) or COCO RLE (height, width, compressed counts) of the raw image.
    polygons: tuple[tuple[float, ...], ...] = ()
    rle: tuple[int, int, bytes] | None = None
    state: str = ""  # condition state the source gave (CCSC: fair / poor / severe), "" when none

    @property
    def width(self) -> float:
        return self.xmax - self.xmin

    @property
    def height(self) -> float:
        return self.ymax - self.ymin

    @property
    def area(self) -> float:
        return max(0.0, self.width) * max(0.0, self.height)

    def is_valid(self) -> bool:
        return self.xmax > self.xmin and self.ymax > self.ymin

    def clipped(self, width: int, height: int) -> Box:
        return replace(
            self,
            xmin=min(max(self.xmin, 0.0), width),
            ymin=min(max(self.ymin, 0.0), height),
            xmax=min(max(self.xmax, 0.0), width),
            ymax=min(max(self.ymax, 0.0), height),
        )

    def normalised(self, width: int, height: int) -> tuple[float, float, float, float]:
        """(ymin, xmin, ymax, xmax) in [0, 1], the TF Object Detection API's order."""
        return (self.ymin / height, self.xmin / width, self.ymax / height, self.xmax / width)


@dataclass(frozen=True)
class LabelledImage:
    """One image file and what a source says about it.

    ``image_class`` is the project class (``rust``/``no_rust``) or None when only boxes say it;
    ``boxes`` is None for sources that carry no box information (class folders), and an empty
    tuple for a detection source that says "no rust here". ``regions`` says the source outlines
    every rust pixel (polygons, RLE or ``mask_path``, a mask file of the raw image's size), so the
    record gets a rust mask; box-only sources say where rust is, not which pixels.
    """

    image_path: str
    image_class: str | None
    boxes: tuple[Box, ...] | None = None
    annotation_path: str | None = None
    source: str = ""
    source_split: str | None = None
    declared_size: tuple[int, int] | None = None  # (width, height) the annotation claims
    notes: tuple[str, ...] = field(default_factory=tuple)
    regions: bool = False
    mask_path: str | None = None

    @property
    def has_boxes(self) -> bool:
        return bool(self.boxes)
