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
