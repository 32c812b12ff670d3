"""Augmented training views that model how a new survey's photos differ from the training sources:
another camera's white balance and exposure, wet or dark surfaces, soft focus, heavy JPEG, and
the scale of rust (a 1024 px tile of a 12 MP photo shows rust larger than a whole-structure shot).

Each view is made once from the full-resolution photo and its mask (a random crop of 1 / zoom of
the side, then the photometric changes), and its frozen features are cached like the originals'
(``training.segmenter.data``): the decoder sees them every epoch beside the photo and its mirror.
The mask and boxes follow the crop, so every view's targets are exact.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter


@dataclass(frozen=True)
class View:
    """One augmented photo at the model's input: pixels (S, S, 3) uint8, 0/1 mask (S, S) or None,
    boxes normalised (ymin, xmin, ymax, xmax) inside the crop."""

    pixels: np.ndarray
    mask: np.ndarray | None
    boxes: np.ndarray


def crop_window(height: int, width: int, zoom: float, rng: np.random.Generator) -> tuple[int, int, int, int]:
    """(top, left, bottom, right) of a random crop covering 1 / zoom of each side."""
    h, w = max(1, round(height / zoom)), max(1, round(width / zoom))
    top = int(rng.integers(0, height - h + 1))
    left = int(rng.integers(0, width - w + 1))
    return top, left, top + h, left + w


def crop_boxes(boxes: np.ndarray, window: tuple[int, int, int, int], height: int, width: int) -> np.ndarray:
    """Normalised boxes of the photo -> normalised boxes of the crop (clipped; boxes left outside dropped)."""
    top, left, bottom, right = window
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    y0 = (b[:, 0] * height - top) / (bottom - top)
    x0 = (b[:, 1] * width - left) / (right - left)
    y1 = (b[:, 2] * height - top) / (bottom - top)
    x1 = (b[:, 3] * width - left) / (right - left)
    out = np.clip(np.stack([y0, x0, y1, x1], axis=-1), 0.0, 1.0)
    return out[(out[:, 2] > out[:, 0]) & (out[:, 3] > out[:, 1])].astype(np.float32)


def photometric(pixels: np.ndarray, rng: np.random.Generator, strength: float = 1.0) -> np.ndarray:
    """Another camera and another day: white balance, exposure (dark / wet), gamma, saturation,
    then sometimes blur, sensor noise and a low JPEG quality. uint8 in, uint8 out."""
    x = pixels.astype(np.float32) / 255.0
    x = x * (1.0 + strength * rng.uniform(-0.15, 0.15, size=3)).astype(np.float32)  # white balance
    x = x * np.float32(2.0 ** (strength * rng.uniform(-1.0, 0.5)))  # exposure: one stop darker to half a stop brighter
    x = np.clip(x, 0.0, 1.0) ** np.float32(np.exp(strength * rng.uniform(-0.3, 0.3)))  # gamma
    grey = x.mean(axis=-1, keepdims=True)
    x = grey + (x - grey) * np.float32(1.0 + strength * rng.uniform(-0.4, 0.4))  # saturation
    if rng.random() < 0.3:
        x = x + rng.normal(0.0, strength * rng.uniform(0.005, 0.025), size=x.shape).astype(np.float32)
    img = Image.fromarray((np.clip(x, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8))
    if rng.random() < 0.3:
        img = img.filter(ImageFilter.GaussianBlur(radius=float(strength * rng.uniform(0.5, 1.5))))
    if rng.random() < 0.5:
        buffer = io.BytesIO()
        img.save(buffer, format="JPEG", quality=int(rng.integers(25, 90)))
        img = Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
    return np.asarray(img, np.uint8)


def augmented_view(
    photo: np.ndarray,
    mask: np.ndarray | None,
    boxes: np.ndarray,
    size: int,
    rng: np.random.Generator,
    max_zoom: float = 2.0,
    strength: float = 1.0,
) -> View:
    """One view of a full-resolution photo (H, W, 3) with its full-resolution 0/1 mask (or None)."""
    height, width = photo.shape[:2]
    zoom = float(np.exp(rng.uniform(0.0, np.log(max(max_zoom, 1.0)))))
    window = crop_window(height, width, zoom, rng)
    top, left, bottom, right = window
    crop = Image.fromarray(photo[top:bottom, left:right]).resize((size, size), Image.Resampling.BILINEAR)
    pixels = photometric(np.asarray(crop, np.uint8), rng, strength)
    view_mask = None
    if mask is not None:
        cut = Image.fromarray(mask[top:bottom, left:right].astype(np.uint8))
        view_mask = np.asarray(cut.resize((size, size), Image.Resampling.NEAREST), np.uint8)
    return View(pixels, view_mask, crop_boxes(boxes, window, height, width))
