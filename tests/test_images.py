import numpy as np
import pytest

from corrosion.imaging import images
from corrosion.testing import synthetic


def test_reduced_decode_keeps_at_least_target_size():
    pixels, _ = synthetic.render(np.random.default_rng(1), 1600, 1200, 1, "steel")
    data = synthetic.encode_image(pixels)
    full = images.decode(data)
    small = images.decode(data, reduce_to=(224, 224))
    assert full.size == (1600, 1200)
    assert small.size == (400, 300)  # 1/4 DCT scale: the smallest that stays >= 224 on both sides


def test_reduced_decode_respects_orientation():
    pixels, _ = synthetic.render(np.random.default_rng(1), 1600, 800, 0, "steel")
    data = synthetic.encode_image(pixels, orientation=6)
    img = images.decode(data, reduce_to=(300, 300))
    assert img.size[0] > img.size[1]  # landscape after orientation, as the photographer saw it
    assert min(img.size) >= 300


def test_probe_refuses_bomb_before_decoding():
    with pytest.raises(images.ImageError) as err:
        images.probe(synthetic.bomb_png(20000, 20000), "bomb.png", max_pixels=50_000_000)
    assert err.value.reason == "too_large" and "bomb.png" in str(err.value)


def _encoded(arr: np.ndarray, fmt: str) -> bytes:
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(arr).save(out, format=fmt)
    return out.getvalue()


def test_sixteen_bit_grey_keeps_its_top_byte_instead_of_saturating():
    arr = np.array([[256, 4096], [32768, 65535]], np.uint16)
    img = images.decode(_encoded(arr, "PNG"))
    assert np.asarray(img)[..., 0].tolist() == [[1, 16], [128, 255]]
    other = images.decode(_encoded(arr // 2 + 300, "PNG"))
    assert np.asarray(other)[..., 0].tolist() == [[1, 9], [65, 129]]  # a different photo stays different


def test_float_and_wide_integer_pixels_are_scaled_by_their_range():
    unit = np.array([[0.0, 0.5], [1.0, np.nan]], np.float32)
    assert np.asarray(images.decode(_encoded(unit, "TIFF")))[..., 0].tolist() == [[0, 128], [255, 0]]
    wide = np.array([[-1000, 0], [1000, 3000]], np.int32)  # no standard range: stretched min..max
    assert np.asarray(images.decode(_encoded(wide, "TIFF")))[..., 0].tolist() == [[0, 64], [128, 255]]
    assert images.probe(_encoded(wide, "TIFF")).high_depth


def test_non_jpeg_decodes_reduced_right_after_decoding():
    arr = np.zeros((1200, 1600, 3), np.uint8)
    img = images.decode(_encoded(arr, "PNG"), reduce_to=(224, 224))
    assert img.size == (320, 240)  # box-reduced by 5: the largest factor that stays >= 224


def test_images_wider_than_jpeg_allows_are_stored_as_png():
    from PIL import Image

    data, fmt = images.encode_for_record(Image.new("RGB", (70_000, 1), (9, 9, 9)))
    assert fmt == "png" and Image.open(__import__("io").BytesIO(data)).size == (70_000, 1)


def test_error_messages_hold_no_object_addresses():
    with pytest.raises(images.ImageError) as err:
        images.decode(b"not an image at all", "x.jpg")
    assert err.value.reason == "not_an_image" and "0x" not in str(err.value)
