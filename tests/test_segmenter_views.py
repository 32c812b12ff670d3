"""The pieces behind the rust-region model's generalisation work, on hand-made arrays: augmented
views whose targets follow the crop, and subsets of cached features read without copying."""

from __future__ import annotations

import numpy as np

from training.segmenter import augment
from training.segmenter.data import SplitData
from training.segmenter.subsets import RowView, concat, select, where_source


def test_crop_boxes_map_photo_boxes_into_the_crop_and_drop_those_outside():
    boxes = np.array([[0.0, 0.0, 0.5, 0.5], [0.6, 0.6, 0.9, 0.9], [0.25, 0.25, 0.75, 0.75]])
    # a 100 x 200 photo, crop rows 0..50, columns 0..100: the top-left quarter
    out = augment.crop_boxes(boxes, (0, 0, 50, 100), 100, 200)
    assert np.allclose(out, [[0.0, 0.0, 1.0, 1.0], [0.5, 0.5, 1.0, 1.0]])


def test_an_augmented_view_crops_photo_and_mask_alike_and_is_repeatable():
    photo = np.zeros((120, 160, 3), np.uint8)
    photo[:, :80] = (180, 90, 40)  # the left half rust-coloured
    mask = np.zeros((120, 160), np.uint8)
    mask[:, :80] = 1
    a = augment.augmented_view(photo, mask, np.zeros((0, 4)), 32, np.random.default_rng(3), max_zoom=2.0)
    b = augment.augmented_view(photo, mask, np.zeros((0, 4)), 32, np.random.default_rng(3), max_zoom=2.0)
    assert a.pixels.shape == (32, 32, 3) and a.pixels.dtype == np.uint8 and a.mask.shape == (32, 32)
    assert np.array_equal(a.pixels, b.pixels) and np.array_equal(a.mask, b.mask)
    # the mask still marks the rust-coloured columns: masked pixels are redder than the others
    red = a.pixels[..., 0].astype(int) - a.pixels[..., 2].astype(int)
    if a.mask.any() and (~a.mask.astype(bool)).any():
        assert red[a.mask == 1].mean() > red[a.mask == 0].mean() + 50
    columns = a.mask.any(axis=0)
    assert np.all(np.diff(columns.astype(int)) <= 0)  # rust only at the left, as in the photo


def test_photometric_changes_keep_size_and_differ_between_draws():
    pixels = np.random.default_rng(0).integers(0, 255, (48, 48, 3), dtype=np.uint8)
    a = augment.photometric(pixels, np.random.default_rng(1))
    b = augment.photometric(pixels, np.random.default_rng(2))
    assert a.shape == pixels.shape and a.dtype == np.uint8 and not np.array_equal(a, b)
    assert np.array_equal(augment.photometric(pixels, np.random.default_rng(0), strength=0.0)[..., 0].shape, (48, 48))


def _split(n: int, source: str, offset: int) -> SplitData:
    features = {"s8": np.arange(offset, offset + n, dtype=np.float16).reshape(n, 1)}
    return SplitData(features, np.zeros((n, 2, 2)), np.ones((n, 2, 2)), ["regions"] * n, [source] * n,
                     [f"{source}{i}" for i in range(n)], [None] * n, [np.zeros((0, 4))] * n)  # fmt: skip


def test_row_views_gather_the_rows_asked_for_across_parts():
    view = RowView([np.arange(5), np.arange(10, 13)], np.array([4, 5, 7, 0]))
    assert view.shape == (4,) and view[np.array([0, 1, 2, 3])].tolist() == [4, 10, 12, 0]
    both = concat([_split(3, "a", 0), _split(2, "b", 100)])
    assert len(both) == 5 and both.sources == ["a"] * 3 + ["b"] * 2
    rows = where_source(both, lambda s: s == "b")
    part = select(both, rows)
    assert part.names == ["b0", "b1"] and part.features["s8"][np.array([0, 1])].ravel().tolist() == [100, 101]
    assert where_source(both, lambda s: s == "a", originals=2).tolist() == [0, 1]


def test_region_sources_count_photos_not_their_mirrors_and_skip_small_sources():
    from training.segmenter.leave_one_out import region_sources

    train = concat([_split(3, "a", 0), _split(2, "b", 10)])
    train.originals = 3  # the first three rows are photos, the rest their mirrors: not counted
    val = _split(2, "b", 20)
    assert region_sources({"train": train, "validation": val}, minimum=2) == ["a", "b"]  # a: 3, b: 0 + 2, largest first
    assert region_sources({"train": train, "validation": val}, minimum=3) == ["a"]


def _mirrored_split(maps: np.ndarray) -> SplitData:
    """Photos a, b, c then their mirrors, as a flipped cache lays them out (features: the maps)."""
    names = ["a", "b", "c"]
    n = len(names)
    return SplitData({"s8": maps}, np.zeros((2 * n, 2, 2)), np.ones((2 * n, 2, 2)), ["regions"] * 2 * n,
                     ["x", "y", "x"] * 2, names * 2, [None] * 2 * n, [np.zeros((0, 4))] * 2 * n, originals=n)  # fmt: skip


def test_flip_test_averages_each_photo_with_its_mirror_flipped_back():
    from training.segmenter import flip_test

    photo = np.array([[[0.0, 1.0], [0.2, 0.6]]])
    mirror_map = np.array([[[0.4, 0.0], [0.6, 0.2]]])  # the mirror's map: 0.4 lands on the right again
    assert np.allclose(flip_test.averaged(np.concatenate([photo, mirror_map]), 1), [[[0.0, 0.7], [0.2, 0.6]]])

    maps = np.arange(6 * 4, dtype=np.float32).reshape(6, 2, 2)
    data = _mirrored_split(maps)
    assert flip_test.has_mirrors(data) and not flip_test.has_mirrors(select(data, np.arange(3)))
    view = flip_test.with_mirrors(data, where_source(data, lambda s: s == "x", originals=3))
    assert view.names == ["a", "c", "a", "c"] and view.originals == 2
    assert flip_test.photos_only(view).names == ["a", "c"]
    probs = flip_test.predict_photos(lambda _, d, __: np.asarray(d.features["s8"][:]), None, view, 2, True)
    assert np.allclose(probs, 0.5 * (maps[[0, 2]] + maps[[3, 5]][:, :, ::-1]))
    assert np.allclose(flip_test.predict_photos(lambda _, d, __: np.asarray(d.features["s8"][:]), None, view, 2, False),
                       maps[[0, 2]])  # fmt: skip


def test_a_flip_averaged_network_maps_a_mirrored_photo_to_the_mirrored_map():
    import keras

    from training.segmenter import flip_test

    keras.utils.set_random_seed(0)
    images = keras.Input((16, 16, 3))
    maps = keras.layers.Reshape((8, 8))(keras.layers.Conv2D(1, 3, strides=2, padding="same")(images))
    network = flip_test.flip_averaged(keras.Model(images, maps))
    photo = np.random.default_rng(0).uniform(0, 255, (2, 16, 16, 3)).astype(np.float32)
    plain = keras.Model(images, maps)(photo).numpy()
    assert not np.allclose(plain[:, :, ::-1], keras.Model(images, maps)(photo[:, :, ::-1]).numpy(), atol=1e-3)
    assert np.allclose(network(photo[:, :, ::-1]).numpy(), network(photo).numpy()[:, :, ::-1], atol=1e-5)
