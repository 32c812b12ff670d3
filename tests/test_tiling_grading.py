"""Tile geometry, cross-tile merging, union area, ASTM D610 grades and result-row typing."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from corrosion.inference import grading, results, tiling


@pytest.mark.parametrize(
    "width,height,tile,overlap", [(4000, 3000, 1024, 192), (1025, 700, 512, 64), (300, 200, 512, 64)]
)
def test_tile_grid_covers_image_with_overlap_and_equal_shapes(width, height, tile, overlap):
    grid = tiling.tile_grid(width, height, tile, overlap)
    covered = np.zeros((height, width), bool)
    for t in grid:
        assert 0 <= t.x0 < t.x1 <= width and 0 <= t.y0 < t.y1 <= height
        covered[t.y0 : t.y1, t.x0 : t.x1] = True
    assert covered.all()
    assert len({(t.width, t.height) for t in grid}) == 1  # tiles stack into one batch
    xs = sorted({t.x0 for t in grid})
    for a, b in zip(xs, xs[1:], strict=False):
        assert grid[0].width - (b - a) >= overlap  # neighbours share at least `overlap` pixels


def test_tile_grid_counts_and_errors():
    assert len(tiling.tile_grid(300, 200, 512, 64)) == 1
    assert len(tiling.tile_grid(4000, 3000, 1024, 192)) == 5 * 4
    with pytest.raises(ValueError, match="overlap"):
        tiling.tile_grid(100, 100, 50, 50)
    with pytest.raises(ValueError, match="tile_size"):
        tiling.tile_grid(100, 100, 0, 0)


def test_quiet_tiles_reads_each_tiles_footprint_in_the_coarse_map_one_cell_wide():
    coarse = np.zeros((8, 8), np.float32)  # an 800 x 800 image: 100 px a cell
    coarse[1, 6] = 0.9  # one hot cell, x 600-700, y 100-200
    tiles = [tiling.Tile(0, 0, 400, 400), tiling.Tile(400, 0, 800, 400), tiling.Tile(0, 400, 400, 800),
             tiling.Tile(400, 400, 800, 800), tiling.Tile(0, 0, 500, 300), tiling.Tile(0, 0, 560, 300)]  # fmt: skip
    # the last two end 100 and 40 px short of the hot cell: upsampled, its value spreads from the
    # centre of the cell before it (x 550), so the one ending at 500 is quiet and the one at 560 is not
    assert tiling.quiet_tiles(coarse, tiles, 800, 800, 0.5) == [True, False, True, True, True, False]
    assert tiling.quiet_tiles(coarse, tiles, 800, 800, 0.95) == [True] * 6  # nothing reaches 0.95


def test_tile_boxes_map_to_image_pixels_for_non_square_tile():
    tile = tiling.Tile(100, 50, 300, 150)  # 200 x 100
    px = tiling.tile_boxes_to_image(np.array([[0.1, 0.25, 0.5, 0.75], [0.0, 0.9, 1.0, 1.2]]), tile, 280, 1000)
    np.testing.assert_allclose(px[0], [150, 60, 250, 100])
    np.testing.assert_allclose(px[1], [280, 50, 280, 150])  # clipped to the image's right edge


def test_merge_drops_duplicates_and_truncated_fragments_keeps_separate_patches():
    boxes = np.array(
        [
            [100, 100, 200, 200],  # patch A seen whole
            [102, 98, 201, 203],  # patch A again from the overlapping tile
            [150, 100, 200, 200],  # patch A cut by a tile edge: half of it, inside the whole view
            [400, 400, 450, 460],  # patch B
        ]
    )
    scores = np.array([0.9, 0.8, 0.95, 0.7])
    kept, kept_scores = tiling.merge_boxes(boxes, scores, iou_threshold=0.5, containment_threshold=0.8)
    # one box per patch; A's confident fragment grows to A's whole extent instead of replacing it
    assert kept.tolist() == [[100, 98, 201, 203], [400, 400, 450, 460]]
    np.testing.assert_allclose(kept_scores, [0.95, 0.7])
    kept, _ = tiling.merge_boxes(boxes[[0, 1, 3]], scores[[0, 1, 3]])
    assert kept.tolist() == [[100, 100, 200, 200], [400, 400, 450, 460]]
    assert len(tiling.merge_boxes(np.zeros((0, 4)), np.zeros(0))[0]) == 0


def test_union_area_is_exact():
    assert grading.union_area([[0, 0, 10, 10], [5, 0, 15, 10]]) == 150
    assert grading.union_area([[0, 0, 10, 10], [2, 2, 4, 4]]) == 100
    assert grading.union_area([[0, 0, 1, 1], [5, 5, 7, 8]]) == 7
    assert grading.union_area([]) == 0
    rng = np.random.default_rng(3)
    xy = rng.integers(0, 60, (12, 2))
    wh = rng.integers(1, 30, (12, 2))
    boxes = np.concatenate([xy, xy + wh], axis=1)
    raster = np.zeros((100, 100), bool)
    for x0, y0, x1, y1 in boxes:
        raster[y0:y1, x0:x1] = True
    assert grading.union_area(boxes) == raster.sum()


@pytest.mark.parametrize(
    "fraction,grade",
    [
        (0.0, 10),
        (0.0001, 10),
        (0.00011, 9),
        (0.0003, 9),
        (0.001, 8),
        (0.003, 7),
        (0.01, 6),
        (0.02, 5),
        (0.05, 4),
        (0.16, 3),
        (0.2, 2),
        (0.5, 1),
        (0.51, 0),
        (1.0, 0),
    ],
)
def test_astm_d610_grades(fraction, grade):
    assert grading.astm_d610_grade(fraction) == grade


def test_grade_rejects_impossible_fraction_and_area_fraction_clips():
    with pytest.raises(ValueError):
        grading.astm_d610_grade(1.5)
    assert grading.rust_area_fraction([[-50, -50, 50, 50], [0, 0, 10, 10]], 100, 100) == pytest.approx(0.25)


def test_result_rows_round_trip_through_csv_with_types(tmp_path):
    schema = results.load_schema()
    columns = results.result_columns(schema)
    row = {
        "image_uri": "gs://b/s/a,b.jpg",
        "image_sha256": "ab" * 32,
        "width": 4000,
        "height": 3000,
        "rust_probability": 0.25,
        "is_rust": False,
        "num_boxes": 1,
        "boxes": "[[1.0, 2.0, 3.0, 4.0, 0.9]]",
        "rust_area_fraction": 3.3e-07,
        "rust_grade": 10,
        "classifier_version": "c1",
        "detector_version": None,
        "survey_id": "s",
        "processed_at": "2026-11-24 12:00:00.000000 UTC",
        "capture_time": "2026-11-23 09:15:02.500000 UTC",
        "gps_latitude": 59.4420833,
        "gps_longitude": -10.75,
        "gps_altitude": -12.5,
        "camera_model": "DJI FC3411",
        "location": "POINT(-10.75 59.4420833)",
        "asset": "hull-7",
        "zone": "port-side",
    }
    assert results.validate_row(row, schema) == []
    path = tmp_path / "r.csv"
    path.write_text(results.csv_header(columns) + "\n" + results.csv_line(row, columns) + "\n")
    assert results.read_csv_rows([str(path)], schema) == [row]
    bad = dict(row, width="4000", is_rust=1, survey_id=None, extra=1)
    problems = results.validate_row(bad, schema)
    assert len(problems) == 4 and any("extra" in p for p in problems)
    for point in ("POINT(-190 10)", "POINT(10 91)", "POINT(nan 1)", "10 20", "POINT(1,2)"):
        assert results.validate_row(dict(row, location=point), schema) == [
            f"location={point!r} is not a valid GEOGRAPHY"
        ]
    # a shard written before the where-columns existed reads back with them as None
    old_columns = columns[: columns.index("processed_at") + 1]
    path.write_text(results.csv_header(old_columns) + "\n" + results.csv_line(row, old_columns) + "\n")
    new_columns = columns[len(old_columns) :]
    assert results.read_csv_rows([str(path)], schema) == [{**row, **dict.fromkeys(new_columns)}]
    assert len(results.beam_table_schema().fields) == len(columns)


def test_result_row_fields_are_the_bigquery_schema_field_by_field():
    """ResultRow is what rows are built and written from: it must be the schema file, column for column."""
    schema = results.load_schema()
    typed = results.row_schema()
    assert [f.name for f in typed] == [f.name for f in schema]  # names, in order
    for ours, theirs in zip(typed, schema, strict=True):
        assert (ours.name, ours.type, ours.mode) == (theirs.name, theirs.type, theirs.mode)
    assert results.ROW_COLUMNS == results.result_columns()


def test_result_row_serialises_as_the_dict_rows_did():
    row = results.ResultRow(
        image_uri="gs://b/s/a,b.jpg", image_sha256="ab" * 32, width=4000, height=3000, rust_probability=0.25,
        is_rust=False, num_boxes=1, boxes="[[1.0, 2.0, 3.0, 4.0, 0.9]]", rust_area_fraction=3.3e-07, rust_grade=10,
        classifier_version="c1", detector_version=None, survey_id="s", processed_at="2026-11-24 12:00:00.000000 UTC",
    )  # fmt: skip
    as_dict = row.to_bigquery()
    assert list(as_dict) == list(results.result_columns())
    assert results.validate_row(as_dict, results.load_schema()) == []
    assert row.to_csv_line() == results.csv_line(as_dict, results.result_columns())
    assert row.flagged and not dataclasses.replace(row, num_boxes=0).flagged
    assert dataclasses.replace(row, num_boxes=None, is_rust=True).flagged


@pytest.mark.parametrize(
    "width,height,expected",
    [
        (416, 416, (256, 256)),  # smaller than a tile: decoded at the model's scale, not a quarter of it
        (4000, 3000, (1000, 750)),  # 1024-px tiles to a 256-px model: decoded at 1/4 (JPEG DCT scaling)
        (200, 150, (200, 150)),  # already below the model's scale: never shrunk further
    ],
)
def test_photos_decode_at_the_scale_their_tiles_reach_the_model(width, height, expected):
    from corrosion.testing import synthetic
    from pipelines.inference.config import InferenceConfig
    from pipelines.inference.handlers import ImageRecord, decode_for_detector

    pixels = np.full((height, width, 3), 128, np.uint8)
    record = ImageRecord("p.jpg", "0" * 64, width, height, synthetic.encode_image(pixels))
    img = decode_for_detector(record, 256, InferenceConfig())
    # JPEG decodes at 1/1, 1/2, 1/4 or 1/8, never below the requested size
    assert img.size[0] >= expected[0] and img.size[1] >= expected[1]
    assert img.size[0] < 2 * expected[0] or img.size == (width, height)
