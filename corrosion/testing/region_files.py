"""Region-annotated photos with exactly known rust pixels, in every region format the readers take.

Rust is painted inside random polygons, so each photo's true mask is the polygons' raster
(``corrosion.data.regions.rasterise``, the readers' own). Writers give the files labelling tools
export: LabelMe JSON, YOLO-seg lines, mask PNGs (grey 0/255 or palette indices) and COCO JSON
(polygons or RLE).
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass

import numpy as np
from PIL import Image

from corrosion.data import regions
from corrosion.testing import synthetic

Polygon = tuple[float, ...]  # flat x1, y1, x2, y2, ... in pixels


@dataclass(frozen=True)
class RegionPhoto:
    pixels: np.ndarray  # (H, W, 3) uint8
    polygons: tuple[Polygon, ...]
    mask: np.ndarray  # (H, W) 0/1, the polygons' raster

    @property
    def size(self) -> tuple[int, int]:
        return self.pixels.shape[1], self.pixels.shape[0]

    def jpeg(self) -> bytes:
        return synthetic.encode_image(self.pixels, "JPEG", quality=95)

    def png(self) -> bytes:
        return synthetic.encode_image(self.pixels, "PNG")


def random_polygon(rng: np.random.Generator, width: int, height: int, scale: float = 0.25) -> Polygon:
    """A star-shaped polygon (8-12 points) of about ``scale`` of the short side, inside the image."""
    r = scale * min(width, height) / 2
    cx, cy = rng.uniform(r + 1, width - r - 1), rng.uniform(r + 1, height - r - 1)
    n = int(rng.integers(8, 13))
    angles = np.sort(rng.uniform(0, 2 * np.pi, n))
    radii = r * rng.uniform(0.55, 1.0, n)
    return tuple(
        float(round(v, 1))
        for a, rr in zip(angles, radii, strict=True)
        for v in (cx + rr * np.cos(a), cy + rr * np.sin(a))
    )


def region_photo(
    rng: np.random.Generator, width: int, height: int, n_regions: int, background: str = "steel"
) -> RegionPhoto:
    """A photo whose rust pixels are exactly its polygons' raster."""
    pixels = synthetic.render_background(rng, width, height, background)
    polygons = tuple(random_polygon(rng, width, height, rng.uniform(0.15, 0.4)) for _ in range(n_regions))
    mask = regions.rasterise(polygons, width, height)
    paint(rng, pixels, mask)
    return RegionPhoto(np.clip(pixels, 0, 255).astype(np.uint8), polygons, mask)


def paint(rng: np.random.Generator, pixels: np.ndarray, mask: np.ndarray) -> None:
    """Rust texture on the mask's pixels, in place."""
    height, width = mask.shape
    tone = rng.random((height, width, 1)).astype(np.float32)
    colour = synthetic._RUST_DARK + (synthetic._RUST_LIGHT - synthetic._RUST_DARK) * tone
    pixels[mask > 0] = colour[mask > 0]


def labelme_json(image_path: str, width: int, height: int, polygons, label: str = "rust", extra_shapes=()) -> str:
    """LabelMe 5 JSON: one polygon shape per region, imageData null, imagePath relative to the JSON."""
    shapes = [
        {"label": label, "points": [[p[i], p[i + 1]] for i in range(0, len(p), 2)], "group_id": None,
         "shape_type": "polygon", "flags": {}}
        for p in polygons
    ] + list(extra_shapes)  # fmt: skip
    doc = {"version": "5.2.1", "flags": {}, "shapes": shapes, "imagePath": image_path, "imageData": None,
           "imageHeight": height, "imageWidth": width}  # fmt: skip
    return json.dumps(doc, indent=2)


def yolo_seg_txt(polygons, width: int, height: int, class_id: int = 0) -> str:
    """YOLOv8-seg lines: class, then every point normalised to the image."""
    lines = []
    for p in polygons:
        coords = " ".join(f"{v / (width if i % 2 == 0 else height):.6f}" for i, v in enumerate(p))
        lines.append(f"{class_id} {coords}")
    return "\n".join(lines) + ("\n" if lines else "")


def mask_png(mask: np.ndarray, value: int = 255, palette: bool = False) -> bytes:
    """A mask file: grey 0 / ``value``, or a palette PNG whose index ``value`` marks rust (CCSC style)."""
    img = Image.fromarray((mask > 0).astype(np.uint8) * value)
    if palette:
        img = img.convert("P")
        img.putpalette([0, 0, 0, 128, 0, 0, 0, 128, 0, 128, 128, 0] + [0, 0, 0] * 252)
    out = io.BytesIO()
    img.save(out, format="PNG")
    return out.getvalue()


def coco_json(entries, category: str = "rust", rle: bool = False) -> str:
    """COCO instances: ``entries`` are (file_name, width, height, polygons); each polygon one
    annotation, as a polygon segmentation or (``rle``) its compressed RLE."""
    from pycocotools import mask as mask_utils

    images, annotations = [], []
    for image_id, (file_name, width, height, polygons) in enumerate(entries, start=1):
        images.append({"id": image_id, "file_name": file_name, "width": width, "height": height})
        for p in polygons:
            xs, ys = p[0::2], p[1::2]
            ann = {"id": len(annotations) + 1, "image_id": image_id, "category_id": 1, "iscrowd": 0,
                   "bbox": [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)]}  # fmt: skip
            if rle:
                m = np.asfortranarray(regions.rasterise([p], width, height))
                encoded = mask_utils.encode(m)
                ann["segmentation"] = {"size": encoded["size"], "counts": encoded["counts"].decode("ascii")}
            else:
                ann["segmentation"] = [list(p)]
            annotations.append(ann)
    return json.dumps({"images": images, "annotations": annotations, "categories": [{"id": 1, "name": category}]})
