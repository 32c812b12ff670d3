"""The ``tf.train.Example`` schema: TF Object Detection API keys plus an image-level class.

Region-annotated images add DeepLab's semantic mask keys (``image/segmentation/class/*``: one PNG
the size of the image, 0 background, 1 rust; why one class mask and not the OD API's per-object
``image/object/mask`` is in ``corrosion.data.regions``) and, where the source grades them, each
box's condition state (``image/object/state``). Records without them are byte-identical to before.

Writer (dataset pipeline), readers (training, evaluation) and tests all use this module, so the
keys are spelled in exactly one place.
"""

from __future__ import annotations

import tensorflow as tf

from corrosion.core.annotations import Box
from corrosion.data.record import Record

ENCODED = "image/encoded"
FORMAT = "image/format"
HEIGHT = "image/height"
WIDTH = "image/width"
FILENAME = "image/filename"
SOURCE_ID = "image/source_id"
SHA256 = "image/key/sha256"
XMIN = "image/object/bbox/xmin"
XMAX = "image/object/bbox/xmax"
YMIN = "image/object/bbox/ymin"
YMAX = "image/object/bbox/ymax"
BOX_TEXT = "image/object/class/text"
BOX_LABEL = "image/object/class/label"
DIFFICULT = "image/object/difficult"
TRUNCATED = "image/object/truncated"
CLASS_LABEL = "image/class/label"
CLASS_TEXT = "image/class/text"
MASK = "image/segmentation/class/encoded"
MASK_FORMAT = "image/segmentation/class/format"
STATE = "image/object/state"


def _bytes(values: list[bytes]) -> tf.train.Feature:
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=values))


def _floats(values: list[float]) -> tf.train.Feature:
    return tf.train.Feature(float_list=tf.train.FloatList(value=values))


def _ints(values: list[int]) -> tf.train.Feature:
    return tf.train.Feature(int64_list=tf.train.Int64List(value=values))


def to_example(record: Record) -> tf.train.Example:
    w, h = record.width, record.height
    b = record.boxes
    feature = {
        ENCODED: _bytes([record.encoded]),
        FORMAT: _bytes([record.format.encode()]),
        HEIGHT: _ints([h]),
        WIDTH: _ints([w]),
        FILENAME: _bytes([record.filename.encode()]),
        SOURCE_ID: _bytes([record.source_id.encode()]),
        SHA256: _bytes([record.sha256.encode()]),
        XMIN: _floats([x.xmin / w for x in b]),
        XMAX: _floats([x.xmax / w for x in b]),
        YMIN: _floats([x.ymin / h for x in b]),
        YMAX: _floats([x.ymax / h for x in b]),
        BOX_TEXT: _bytes([x.label.encode() for x in b]),
        BOX_LABEL: _ints(list(record.box_labels)),
        DIFFICULT: _ints([int(x.difficult) for x in b]),
        TRUNCATED: _ints([int(x.truncated) for x in b]),
        CLASS_LABEL: _ints([record.image_label]),
        CLASS_TEXT: _bytes([record.image_class.encode()]),
    }
    if record.mask is not None:
        feature[MASK] = _bytes([record.mask])
        feature[MASK_FORMAT] = _bytes([b"png"])
    if any(x.state for x in b):
        feature[STATE] = _bytes([x.state.encode() for x in b])
    return tf.train.Example(features=tf.train.Features(feature=feature))


def serialize(record: Record) -> bytes:
    return to_example(record).SerializeToString()


def from_example(serialized: bytes) -> Record:
    """Python-side parse (tests, evaluation); boxes come back in pixels."""
    ex = tf.train.Example.FromString(serialized)
    f = ex.features.feature

    def one_bytes(key: str) -> bytes:
        return f[key].bytes_list.value[0]

    w = f[WIDTH].int64_list.value[0]
    h = f[HEIGHT].int64_list.value[0]
    xs0, xs1 = f[XMIN].float_list.value, f[XMAX].float_list.value
    ys0, ys1 = f[YMIN].float_list.value, f[YMAX].float_list.value
    texts = f[BOX_TEXT].bytes_list.value
    diff, trunc = f[DIFFICULT].int64_list.value, f[TRUNCATED].int64_list.value
    states = [v.decode() for v in f[STATE].bytes_list.value] if STATE in f else [""] * len(xs0)
    boxes = tuple(
        Box(
            xs0[i] * w,
            ys0[i] * h,
            xs1[i] * w,
            ys1[i] * h,
            texts[i].decode(),
            bool(diff[i]),
            bool(trunc[i]),
            state=states[i],
        )
        for i in range(len(xs0))
    )
    return Record(
        encoded=one_bytes(ENCODED),
        format=one_bytes(FORMAT).decode(),
        width=w,
        height=h,
        filename=one_bytes(FILENAME).decode(),
        source_id=one_bytes(SOURCE_ID).decode(),
        sha256=one_bytes(SHA256).decode(),
        image_class=one_bytes(CLASS_TEXT).decode(),
        image_label=f[CLASS_LABEL].int64_list.value[0],
        boxes=boxes,
        box_labels=tuple(f[BOX_LABEL].int64_list.value),
        mask=one_bytes(MASK) if MASK in f else None,
    )


FEATURE_SPEC = {
    ENCODED: tf.io.FixedLenFeature([], tf.string),
    FORMAT: tf.io.FixedLenFeature([], tf.string, default_value="jpeg"),
    HEIGHT: tf.io.FixedLenFeature([], tf.int64),
    WIDTH: tf.io.FixedLenFeature([], tf.int64),
    FILENAME: tf.io.FixedLenFeature([], tf.string, default_value=""),
    SOURCE_ID: tf.io.FixedLenFeature([], tf.string, default_value=""),
    SHA256: tf.io.FixedLenFeature([], tf.string, default_value=""),
    XMIN: tf.io.VarLenFeature(tf.float32),
    XMAX: tf.io.VarLenFeature(tf.float32),
    YMIN: tf.io.VarLenFeature(tf.float32),
    YMAX: tf.io.VarLenFeature(tf.float32),
    BOX_LABEL: tf.io.VarLenFeature(tf.int64),
    CLASS_LABEL: tf.io.FixedLenFeature([], tf.int64),
    MASK: tf.io.FixedLenFeature([], tf.string, default_value=""),
}


def parse_tf(serialized: tf.Tensor) -> dict[str, tf.Tensor]:
    """Graph-side parse for tf.data: dense tensors, boxes as (N, 4) normalised (ymin, xmin, ymax, xmax)."""
    f = tf.io.parse_single_example(serialized, FEATURE_SPEC)
    dense = {k: tf.sparse.to_dense(f[k]) for k in (YMIN, XMIN, YMAX, XMAX, BOX_LABEL)}
    boxes = tf.stack([dense[YMIN], dense[XMIN], dense[YMAX], dense[XMAX]], axis=-1)
    return {
        "encoded": f[ENCODED],
        "height": f[HEIGHT],
        "width": f[WIDTH],
        "filename": f[FILENAME],
        "source_id": f[SOURCE_ID],
        "sha256": f[SHA256],
        "label": f[CLASS_LABEL],
        "boxes": tf.reshape(boxes, [-1, 4]),
        "box_labels": dense[BOX_LABEL],
        "mask": f[MASK],  # PNG bytes, "" for an image without a rust mask
    }
