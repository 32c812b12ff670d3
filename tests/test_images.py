import numpy as np
import pytest

from corrosion import images, synthetic


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
