"""Test helper: TFRecord data sets written straight from synthetic images via corrosion.data.schema.

Lets training and inference tests run without the Beam dataset pipeline.
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import numpy as np
import tensorflow as tf

from corrosion.core.labels import load_labels
from corrosion.data import regions, schema
from corrosion.data.record import Record
from corrosion.testing import synthetic


def box_mask(boxes, width: int, height: int) -> bytes:
    """The class-mask PNG of a photo whose rust is exactly its boxes (filled)."""
    mask = np.zeros((height, width), np.uint8)
    for b in boxes:
        mask[int(b.ymin) : int(np.ceil(b.ymax)), int(b.xmin) : int(np.ceil(b.xmax))] = 1
    return regions.encode(mask)


def synthetic_records(
    n_rust: int,
    n_clean: int,
    size=(160, 120),
    seed: int = 0,
    masks: bool = False,
    sources: tuple[str, ...] = (),
    **kwargs,
) -> list[Record]:
    """Records of generated photos; ``masks``: rust photos carry their boxes as a class mask;
    ``sources``: the photos come from these source folders in turn (``source_id`` = folder/name)."""
    labels = load_labels()
    records = []
    for i, (pixels, truth) in enumerate(synthetic.generate_images(n_rust, n_clean, size, seed, **kwargs)):
        data = synthetic.encode_image(pixels)
        records.append(
            Record(
                encoded=data,
                format="jpeg",
                width=truth.width,
                height=truth.height,
                filename=truth.path,
                source_id=f"{sources[i % len(sources)]}/{truth.path}" if sources else truth.path,
                sha256=hashlib.sha256(data).hexdigest(),
                image_class=truth.image_class,
                image_label=labels.image_label_id(truth.image_class),
                boxes=truth.boxes,
                box_labels=tuple(labels.box_label_id("rust") for _ in truth.boxes),
                mask=box_mask(truth.boxes, truth.width, truth.height) if masks and truth.boxes else None,
            )
        )
    return records


def write_dataset(
    out_dir: str | Path,
    per_split: dict[str, tuple[int, int]] | None = None,
    size=(160, 120),
    seed: int = 0,
    unlocated: dict[str, int] | None = None,
    **kwargs,
) -> Path:
    """Write ``{split}-00000-of-00001.tfrecord`` for each split with (n_rust, n_clean) images,
    plus ``unlocated[split]`` rust images whose boxes are dropped (as class-folder sources give)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    per_split = per_split or {"train": (16, 16), "validation": (6, 6), "test": (6, 6)}
    for offset, (split, (n_rust, n_clean)) in enumerate(per_split.items()):
        with tf.io.TFRecordWriter(str(out_dir / f"{split}-00000-of-00001.tfrecord")) as writer:
            for record in synthetic_records(n_rust, n_clean, size, seed + 1000 * offset, **kwargs):
                writer.write(schema.serialize(record))
            extra = (unlocated or {}).get(split, 0)
            for record in synthetic_records(extra, 0, size, seed + 1000 * offset + 500, **kwargs):
                writer.write(schema.serialize(dataclasses.replace(record, boxes=(), box_labels=())))
    (out_dir / "label_map.pbtxt").write_text(load_labels().label_map_pbtxt())
    return out_dir
