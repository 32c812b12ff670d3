"""validate / to_record: decoding, orientation, size mismatches, box clipping and dropping, rejects."""

from __future__ import annotations

import io

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from corrosion.core.annotations import Box, LabelledImage
from corrosion.core.labels import load_labels
from corrosion.data import decodable
from corrosion.data.dataset_config import ValidationConfig
from corrosion.data.validate import ValidationError, to_record, validate
from corrosion.testing import synthetic

LABELS = load_labels()


def _image(width=160, height=120, orientation=1, seed=0, fmt="JPEG"):
    rng = np.random.default_rng(seed)
    pixels, boxes = synthetic.render(rng, width, height, 2, "steel")
    return synthetic.encode_image(pixels, fmt, orientation), boxes, pixels


def _labelled(boxes, size=None, image_class="rust", path="/r/a.jpg"):
    return LabelledImage(path, image_class, boxes, annotation_path="/r/a.xml", source="r", declared_size=size)


@pytest.mark.parametrize("orientation", [1, 3, 6, 8])
def test_orientation_applied_to_pixels_and_boxes(orientation):
    data, boxes, pixels = _image(orientation=orientation)
    raw_w, raw_h = (120, 160) if orientation in (6, 8) else (160, 120)
    raw = synthetic.raw_boxes(boxes, orientation, 160, 120)
    result = validate(_labelled(raw, (raw_w, raw_h)), data, LABELS)
    rec = result.record
    assert (rec.width, rec.height) == (160, 120)
    for got, want in zip(rec.boxes, boxes, strict=True):
        assert np.allclose([got.xmin, got.ymin, got.xmax, got.ymax], [want.xmin, want.ymin, want.xmax, want.ymax])
    decoded = tf.io.decode_image(rec.encoded, channels=3).numpy()  # TF ignores EXIF: the bytes must be upright
    assert decoded.shape == (120, 160, 3)
    assert np.abs(decoded.astype(int) - pixels.astype(int)).mean() < 6
    if orientation == 1:
        assert rec.encoded == data and result.fixes == ()
    else:
        assert rec.encoded != data and result.fixes == ("orientation_applied", "reencoded")


def test_record_fields():
    data, boxes, _ = _image()
    rec = to_record(_labelled(boxes, (160, 120)), data, LABELS)
    assert (rec.format, rec.filename, rec.image_class, rec.image_label) == ("jpeg", "a.jpg", "rust", 1)
    assert rec.box_labels == (1, 1) and len(rec.sha256) == 64


def test_real_size_wins_rescaled_boxes():
    data, boxes, _ = _image()
    half = tuple(Box(b.xmin / 2, b.ymin / 2, b.xmax / 2, b.ymax / 2) for b in boxes)
    result = validate(_labelled(half, (80, 60)), data, LABELS)
    assert result.fixes == ("size_mismatch_fixed", "size_mismatch_boxes_rescaled")
    for got, want in zip(result.record.boxes, boxes, strict=True):
        assert np.allclose([got.xmin, got.xmax], [want.xmin, want.xmax])
    assert (result.record.width, result.record.height) == (160, 120)


def test_size_mismatch_other_aspect_keeps_pixel_boxes():
    data, boxes, _ = _image()
    result = validate(_labelled(boxes, (500, 200)), data, LABELS)
    assert result.fixes == ("size_mismatch_fixed",)
    assert result.record.boxes == boxes


def test_boxes_clipped_counted_and_bad_boxes_dropped():
    data, _, _ = _image()
    boxes = (
        Box(120, 60, 200, 150),  # reaches past the edge: clipped
        Box(100, 20, 40, 80),  # inverted: dropped
        Box(10, 10, 10, 50),  # zero width: dropped
        Box(170, 10, 190, 50),  # entirely outside: dropped
        Box(5, 5, 20, 20),
    )
    result = validate(_labelled(boxes, (160, 120)), data, LABELS)
    assert result.record.boxes == (Box(120, 60, 160, 120), Box(5, 5, 20, 20))
    assert result.fixes.count("box_clipped") == 2  # the edge box and the outside one
    assert [d.reason for d in result.dropped_boxes] == ["inverted_box", "zero_area_box", "zero_area_box"]
    assert all(d.path == "/r/a.xml" and d.stage == "box" for d in result.dropped_boxes)
    assert "outside the image" in result.dropped_boxes[2].detail


@pytest.mark.parametrize(
    "kind, reason",
    [("truncated", "corrupt_image"), ("empty", "empty_file"), ("not_image", "not_an_image"), ("huge", "too_large")],
)
def test_bad_images_rejected(tmp_path, kind, reason):
    bad = synthetic.write_bad_file(tmp_path, kind, "bad")
    data = (tmp_path / bad.path).read_bytes()
    with pytest.raises(ValidationError) as err:
        to_record(_labelled(None, path=str(tmp_path / bad.path)), data, LABELS)
    assert err.value.reason == reason and str(tmp_path / bad.path) in str(err.value)
    assert err.value.to_reject().reason == reason


def test_max_pixels_from_config():
    data, boxes, _ = _image()
    with pytest.raises(ValidationError) as err:
        to_record(_labelled(boxes), data, LABELS, ValidationConfig(max_pixels=1000))
    assert err.value.reason == "too_large"


def test_label_problems():
    data, boxes, _ = _image()
    with pytest.raises(ValidationError) as err:
        to_record(LabelledImage("/r/a.jpg", None, None), data, LABELS)
    assert err.value.reason == "unlabelled"
    with pytest.raises(ValidationError) as err:
        to_record(_labelled(boxes, image_class="no_rust"), data, LABELS)
    assert err.value.reason == "label_conflict"
    with pytest.raises(ValidationError) as err:
        to_record(_labelled((Box(1, 1, 9, 9, "scratch"),)), data, LABELS)
    assert err.value.reason == "unknown_label" and "'scratch'" in str(err.value)


def test_class_folder_image_has_no_boxes():
    data, _, _ = _image()
    rec = to_record(LabelledImage("/r/norust/a.jpg", "no_rust", None), data, LABELS)
    assert rec.boxes == () and rec.image_label == 0


def test_formats_png_kept_others_reencoded():
    _, _, pixels = _image()
    png = synthetic.encode_image(pixels, "PNG")
    rec = to_record(LabelledImage("/r/a.png", "no_rust", None), png, LABELS)
    assert rec.format == "png" and rec.encoded == png
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="BMP")
    result = validate(LabelledImage("/r/a.bmp", "no_rust", None), out.getvalue(), LABELS)
    assert result.record.format == "jpeg" and result.fixes == ("reencoded",)
    assert tf.io.decode_jpeg(result.record.encoded).shape == (120, 160, 3)


def test_cmyk_jpeg_is_reencoded_as_rgb():
    _, _, pixels = _image()
    out = io.BytesIO()
    Image.fromarray(pixels).convert("CMYK").save(out, format="JPEG", quality=95)
    result = validate(LabelledImage("/r/a.jpg", "no_rust", None), out.getvalue(), LABELS)
    assert result.fixes == ("reencoded",)
    assert Image.open(io.BytesIO(result.record.encoded)).mode == "RGB"


def test_boxes_drawn_on_the_rotated_image_are_not_rotated_again():
    """A <size> equal to the oriented (not the stored) size says the annotator saw the upright image."""
    data, boxes, _ = _image(orientation=6)
    result = validate(_labelled(boxes, (160, 120)), data, LABELS)  # stored 120x160, shown 160x120
    assert result.record.boxes == boxes
    assert "size_mismatch_fixed" not in result.fixes


def test_a_damaged_jpeg_that_pillow_decodes_but_tensorflow_refuses_is_rejected():
    """Stored bytes must decode where training reads them: such a record would stop every training run."""
    from corrosion.imaging import images as image_io

    pixels, _ = synthetic.render(np.random.default_rng(0), 320, 240, 1, "steel")
    good = synthetic.encode_image(pixels)
    rng = np.random.default_rng(1)
    for _ in range(2000):
        damaged = bytearray(good)
        for _ in range(rng.integers(1, 20)):
            damaged[rng.integers(len(good) // 3, len(good) - 2)] = rng.integers(0, 256)
        try:
            image_io.decode(bytes(damaged))
            tf.io.decode_jpeg(bytes(damaged))
        except image_io.ImageError:
            continue
        except tf.errors.InvalidArgumentError:
            break
    else:
        pytest.skip("no damaged JPEG found that Pillow decodes and TensorFlow refuses with these library versions")
    assert validate(LabelledImage("d.jpg", "rust"), bytes(damaged), LABELS).stored_as_is  # Pillow alone accepts it
    with pytest.raises(ValidationError) as err:
        decodable.validate(LabelledImage("d.jpg", "rust"), bytes(damaged), LABELS)
    assert err.value.reason == "corrupt_image" and "TensorFlow cannot decode" in str(err.value)
