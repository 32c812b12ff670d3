"""Clean-steel crops: the square found keeps its margin from every rust pixel and box."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from corrosion.data import clean_crops


def test_the_square_sits_on_the_clean_side_farthest_from_rust():
    mask = np.zeros((100, 200), np.uint8)
    mask[:, :100] = 1  # the left half rusted
    # side 0.5 of the short side = 50 px; margin 2 % of 200 = 4 px; farthest from rust: the right edge
    assert clean_crops.clean_window(mask > 0, (0.5,), 0.02) == (150, 0, 200, 50)


def test_boxes_count_as_rust_and_a_full_photo_has_no_clean_square():
    busy = clean_crops.occupied(np.zeros((100, 100), np.uint8), [(0, 0, 100, 60.5)])
    assert busy[:61].all() and not busy[61:].any()
    assert clean_crops.clean_window(busy, (0.5,), 0.0) is None  # 39 clean rows: no 50-px square
    assert clean_crops.clean_window(busy, (0.5, 0.3), 0.0) == (0, 70, 30, 100)  # the smaller side fits
    assert clean_crops.clean_window(np.ones((50, 50), bool), (0.1,), 0.0) is None


def test_a_12_mp_photo_is_searched_on_a_coarse_grid_without_missing_a_speck():
    busy = np.zeros((3000, 4000), bool)
    busy[1500, 2000] = True  # one rust pixel in the middle
    x0, y0, x1, y1 = clean_crops.clean_window(busy, (0.5,), 0.02)
    assert x1 - x0 == y1 - y0 >= 1480  # half the short side, to the coarse grid's 16-px cells
    assert x1 <= 4000 and y1 <= 3000
    assert not (x0 - 80 <= 2000 < x1 + 80 and y0 - 80 <= 1500 < y1 + 80)  # 2 % of 4000 px kept clear


@settings(max_examples=60, deadline=None)
@given(
    height=st.integers(8, 300),
    width=st.integers(8, 300),
    spots=st.lists(st.tuples(st.floats(0, 1), st.floats(0, 1), st.floats(0, 0.5)), max_size=6),
    margin=st.sampled_from([0.0, 0.02, 0.1]),
)
def test_no_square_found_touches_rust_or_its_margin(height, width, spots, margin):
    mask = np.zeros((height, width), np.uint8)
    for fy, fx, size in spots:
        y, x = int(fy * (height - 1)), int(fx * (width - 1))
        mask[y : y + 1 + int(size * height), x : x + 1 + int(size * width)] = 1
    window = clean_crops.clean_window(mask > 0, (0.5, 0.3), margin)
    if window is None:
        return
    x0, y0, x1, y1 = window
    assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height and x1 - x0 == y1 - y0
    grow = round(margin * max(height, width))
    assert not mask[max(0, y0 - grow) : y1 + grow, max(0, x0 - grow) : x1 + grow].any()
