"""Region readers (LabelMe, YOLO-seg, mask PNGs, COCO) and rust masks in the records, on generated
files whose rust pixels are exactly known; plus the real region-labelled sets when present."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

from corrosion.core import io_utils
from corrosion.core.labels import load_labels
from corrosion.data import discovery, regions, schema, validate
from corrosion.testing import region_files as rf

LABELS = load_labels()
W, H = 120, 90


def _photo(seed: int = 0, n: int = 2) -> rf.RegionPhoto:
    return rf.region_photo(np.random.default_rng(seed), W, H, n)


def _bounds(polygon) -> tuple[float, float, float, float]:
    xs, ys = polygon[0::2], polygon[1::2]
    return min(xs), min(ys), max(xs), max(ys)


def _records(root) -> tuple[dict[str, object], list]:
    """Every scanned image validated: {file name: Record}, and all rejects (scan and validation)."""
    scanned = discovery.scan(str(root), LABELS)
    out, rejects = {}, list(scanned.rejects)
    for labelled in scanned.images:
        try:
            v = validate.validate(labelled, io_utils.read_bytes(labelled.image_path), LABELS)
            out[labelled.image_path.rsplit("/", 1)[-1]] = v.record
        except validate.ValidationError as exc:
            rejects.append(exc.to_reject())
    return out, rejects


def _mask(record) -> np.ndarray:
    assert record.mask is not None
    return regions.decode(record.mask)


# ---------------------------------------------------------------- LabelMe


def test_labelme_polygons_give_exact_boxes_mask_and_condition_states(tmp_path):
    photo = _photo()
    (tmp_path / "images").mkdir()
    (tmp_path / "labelme").mkdir()
    (tmp_path / "images" / "a.jpg").write_bytes(photo.png())  # PNG bytes, .jpg name: decoded by content
    doc = json.loads(rf.labelme_json("../images/a.jpg", W, H, photo.polygons, label="3_Poor_Steel_Corrosion"))
    doc["imageData"] = "bm90IGFuIGltYWdl"  # an embedded copy is ignored: the named file is the image
    (tmp_path / "labelme" / "a.json").write_text(json.dumps(doc))
    records, rejects = _records(tmp_path)
    assert rejects == []
    rec = records["a.jpg"]
    assert rec.image_class == "rust"
    assert [(b.xmin, b.ymin, b.xmax, b.ymax) for b in rec.boxes] == [_bounds(p) for p in photo.polygons]
    assert {b.state for b in rec.boxes} == {"poor"} and {b.label for b in rec.boxes} == {"rust"}
    assert np.array_equal(_mask(rec), photo.mask)


def test_labelme_polygon_outside_the_image_and_self_intersecting_polygon(tmp_path):
    photo = _photo(n=0)
    outside = (100.0, 60.0, 140.0, 60.0, 140.0, 110.0, 100.0, 110.0)  # reaches past 120 x 90
    bowtie = (10.0, 10.0, 40.0, 40.0, 40.0, 10.0, 10.0, 40.0)  # crosses itself at (25, 25)
    (tmp_path / "a.png").write_bytes(photo.png())
    (tmp_path / "a.json").write_text(rf.labelme_json("a.png", W, H, [outside, bowtie]))
    records, rejects = _records(tmp_path)
    rec = records["a.png"]
    assert [(b.xmin, b.ymin, b.xmax, b.ymax) for b in rec.boxes] == [(100, 60, 120, 90), (10, 10, 40, 40)]
    mask = _mask(rec)
    assert mask[60:90, 100:120].all() and mask.sum() == 20 * 30 + regions.rasterise([bowtie], W, H).sum()
    assert mask[25, 12] == 1 and mask[12, 25] == 0  # bowtie: the two side triangles, not the top and bottom


def test_labelme_problems_are_rejects_naming_the_file(tmp_path):
    photo = _photo()
    (tmp_path / "b.png").write_bytes(photo.png())
    (tmp_path / "gone.json").write_text(rf.labelme_json("missing.png", W, H, photo.polygons))
    circle = {"label": "rust", "points": [[5, 5], [9, 9]], "shape_type": "circle"}
    (tmp_path / "b.json").write_text(rf.labelme_json("b.png", W, H, [], extra_shapes=[circle]))
    (tmp_path / "junk.json").write_text('{"hello": 1}')
    _, rejects = _records(tmp_path)
    by_path = {r.path.rsplit("/", 1)[-1]: r.reason for r in rejects}
    assert by_path == {
        "gone.json": "missing_image",
        "b.json": "unsupported_shape",
        "b.png": "unsupported_shape",
        "junk.json": "unrecognised_json",
    }


def test_labelme_without_shapes_is_a_negative_with_an_empty_mask(tmp_path):
    (tmp_path / "c.png").write_bytes(_photo(n=0).png())
    (tmp_path / "c.json").write_text(rf.labelme_json("c.png", W, H, []))
    records, _ = _records(tmp_path)
    assert records["c.png"].image_class == "no_rust" and _mask(records["c.png"]).sum() == 0


# ---------------------------------------------------------------- YOLO-seg


def _yolo_tree(tmp_path, label_text: str, photo: rf.RegionPhoto):
    (tmp_path / "images").mkdir(exist_ok=True)
    (tmp_path / "labels").mkdir(exist_ok=True)
    (tmp_path / "data.yaml").write_text("names: [Corrosion]\n")
    (tmp_path / "images" / "p.png").write_bytes(photo.png())
    (tmp_path / "labels" / "p.txt").write_text(label_text)


def test_yolo_seg_polygons_give_boxes_and_mask(tmp_path):
    photo = _photo(3)
    _yolo_tree(tmp_path, rf.yolo_seg_txt(photo.polygons, W, H), photo)
    records, rejects = _records(tmp_path)
    assert rejects == []
    rec = records["p.png"]
    for box, polygon in zip(rec.boxes, photo.polygons, strict=True):
        assert np.allclose((box.xmin, box.ymin, box.xmax, box.ymax), _bounds(polygon), atol=1e-3)
    mask = _mask(rec)
    assert np.mean(mask != photo.mask) < 0.005  # the same outline, through 6-decimal normalised points


def test_yolo_box_and_polygon_lines_mix_and_then_no_mask_is_claimed(tmp_path):
    photo = _photo(4, n=1)
    _yolo_tree(tmp_path, "0 0.5 0.5 0.2 0.2\n" + rf.yolo_seg_txt(photo.polygons, W, H), photo)
    records, _ = _records(tmp_path)
    rec = records["p.png"]
    assert len(rec.boxes) == 2 and rec.mask is None  # a box line says where, not which pixels


@pytest.mark.parametrize("line", ["0 0.1 0.1 0.2 0.2 0.3\n", "0 0.1 0.1 0.2 0.2 0.3 0.3 0.4\n"])
def test_yolo_lines_neither_box_nor_polygon_are_refused(line):
    from corrosion.core.rejects import AnnotationError
    from corrosion.data.readers import yolo

    with pytest.raises(AnnotationError) as err:
        yolo.parse_labels(line, "x.txt", ("rust",))
    assert err.value.reason == "malformed_yolo"


# ---------------------------------------------------------------- mask files


def _mask_tree(tmp_path, photos: dict[str, tuple[rf.RegionPhoto, bytes]]):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    for stem, (photo, mask_bytes) in photos.items():
        (tmp_path / "images" / f"{stem}.jpg").write_bytes(photo.jpeg())
        if mask_bytes is not None:
            (tmp_path / "masks" / f"{stem}.png").write_bytes(mask_bytes)


def test_mask_files_give_the_mask_and_boxes_of_merged_regions(tmp_path):
    base = _photo(n=0)
    mask = np.zeros((H, W), np.uint8)
    mask[10:20, 10:20] = 1  # one region ...
    mask[10:20, 21:25] = 1  # ... with a speck 1 px away: merged
    mask[60:80, 80:110] = 1  # a region far away
    mask[50, 5] = 1  # a lone pixel: in the mask, too small for a box
    palette = rf.RegionPhoto(base.pixels, (), mask)
    _mask_tree(tmp_path, {"grey": (palette, rf.mask_png(mask)), "pal": (palette, rf.mask_png(mask, 2, palette=True))})
    records, rejects = _records(tmp_path)
    assert rejects == []
    for name in ("grey.jpg", "pal.jpg"):
        rec = records[name]
        assert np.array_equal(_mask(rec), mask)
        assert sorted((b.xmin, b.ymin, b.xmax, b.ymax) for b in rec.boxes) == [(10, 10, 25, 20), (80, 60, 110, 80)]
        assert rec.image_class == "rust"


def test_mask_problems(tmp_path):
    photo = _photo()
    empty = np.zeros((H, W), np.uint8)
    small = np.zeros((H // 2, W // 2), np.uint8)
    _mask_tree(tmp_path, {"empty": (photo, rf.mask_png(empty)), "small": (photo, rf.mask_png(small))})
    (tmp_path / "masks" / "orphan.png").write_bytes(rf.mask_png(empty))
    (tmp_path / "images" / "garbled.jpg").write_bytes(photo.jpeg())
    (tmp_path / "masks" / "garbled.png").write_bytes(b"\x89PNG not really")
    records, rejects = _records(tmp_path)
    assert records["empty.jpg"].image_class == "no_rust" and _mask(records["empty.jpg"]).sum() == 0
    reasons = {r.path.rsplit("/", 1)[-1]: r.reason for r in rejects}
    assert reasons == {"small.jpg": "mask_size_mismatch", "orphan.png": "missing_image", "garbled.jpg": "corrupt_mask"}
    assert "60x45" in next(r.detail for r in rejects if r.reason == "mask_size_mismatch")


def test_an_annotation_beside_a_mask_gives_boxes_and_states_and_the_mask_gives_pixels(tmp_path):
    photo = _photo(5)
    _mask_tree(tmp_path, {"a": (photo, rf.mask_png(photo.mask, 1, palette=True))})
    (tmp_path / "labelme").mkdir()
    doc = rf.labelme_json("../images/a.jpg", W, H, photo.polygons, label="2_Fair_Steel_Corrosion")
    (tmp_path / "labelme" / "a.json").write_text(doc)
    records, rejects = _records(tmp_path)
    assert rejects == []
    rec = records["a.jpg"]
    assert len(rec.boxes) == len(photo.polygons) and {b.state for b in rec.boxes} == {"fair"}
    assert np.array_equal(_mask(rec), photo.mask)


# ---------------------------------------------------------------- COCO


@pytest.mark.parametrize("rle", [False, True])
def test_coco_polygons_and_rle(tmp_path, rle):
    photos = {"x.png": _photo(6), "y.png": _photo(7, n=0)}
    (tmp_path / "images").mkdir()
    (tmp_path / "annotations").mkdir()
    for name, photo in photos.items():
        (tmp_path / "images" / name).write_bytes(photo.png())
    entries = [(name, W, H, photo.polygons) for name, photo in photos.items()] + [("lost.png", W, H, ())]
    (tmp_path / "annotations" / "instances_default.json").write_text(rf.coco_json(entries, "Corrosion", rle=rle))
    records, rejects = _records(tmp_path)
    assert [r.reason for r in rejects] == ["missing_image"] and "lost.png" in rejects[0].detail
    assert np.array_equal(_mask(records["x.png"]), photos["x.png"].mask)
    assert len(records["x.png"].boxes) == len(photos["x.png"].polygons)
    assert records["y.png"].image_class == "no_rust" and records["y.png"].mask is None


def test_coco_bbox_only_annotations_claim_no_mask_and_unknown_categories_are_refused(tmp_path):
    (tmp_path / "a.png").write_bytes(_photo(n=0).png())
    (tmp_path / "b.png").write_bytes(_photo(n=0).png())
    doc = {
        "images": [{"id": 1, "file_name": "a.png", "width": W, "height": H}, {"id": 2, "file_name": "b.png"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [5, 5, 20, 10]},
            {"id": 2, "image_id": 2, "category_id": 9, "bbox": [5, 5, 20, 10]},
        ],
        "categories": [{"id": 1, "name": "rust"}],
    }
    (tmp_path / "coco.json").write_text(json.dumps(doc))
    records, rejects = _records(tmp_path)
    assert records["a.png"].mask is None and [(b.xmin, b.xmax) for b in records["a.png"].boxes] == [(5, 25)]
    # as for VOC: a row for the annotation file (naming the entry) and one for the image it fails to label
    assert sorted((r.path.rsplit("/", 1)[-1], r.reason) for r in rejects) == [
        ("b.png", "unknown_label"),
        ("coco.json", "unknown_label"),
    ]
    assert "annotation 2: category_id 9" in next(r.detail for r in rejects if r.path.endswith("coco.json"))


# ---------------------------------------------------------------- records


def test_mask_and_states_round_trip_through_tf_example(tmp_path):
    import tensorflow as tf

    photo = _photo(8)
    (tmp_path / "a.png").write_bytes(photo.png())
    (tmp_path / "a.json").write_text(rf.labelme_json("a.png", W, H, photo.polygons, label="4_Severe_Steel_Corrosion"))
    records, _ = _records(tmp_path)
    rec = records["a.png"]
    back = schema.from_example(schema.serialize(rec))
    assert back.mask == rec.mask and [b.state for b in back.boxes] == ["severe"] * len(photo.polygons)
    parsed = schema.parse_tf(tf.constant(schema.serialize(rec)))
    assert np.array_equal(tf.io.decode_png(parsed["mask"], channels=1).numpy()[..., 0], photo.mask)
    plain = schema.parse_tf(tf.constant(schema.serialize(rec.__class__(**{**rec.__dict__, "mask": None}))))
    assert parsed["mask"].numpy() != b"" and plain["mask"].numpy() == b""


def test_records_without_regions_are_unchanged_by_the_mask_keys():
    from support.datasets import synthetic_records

    rec = synthetic_records(1, 0)[0]
    assert rec.mask is None
    keys = set(schema.to_example(rec).features.feature)
    assert not keys & {schema.MASK, schema.MASK_FORMAT, schema.STATE}


# ---------------------------------------------------------------- the real sets


@pytest.mark.parametrize(
    "folder, images, with_masks",
    [("ccsc-bridges", 395, 395), ("ballast-tanks", 268, 268), ("hamkasu-seg", 69, 67), ("towers", 53, 5)],
)
def test_scan_real_region_sets(shared_data, folder, images, with_masks):
    scanned = discovery.scan(str(shared_data / folder), LABELS)
    assert len(scanned.images) == images and scanned.rejects == []
    assert sum(1 for i in scanned.images if i.regions) == with_masks
    if folder == "ccsc-bridges":
        states = Counter(b.state for i in scanned.images for b in i.boxes)
        assert states == {"fair": 2450, "poor": 1145, "severe": 130}


# ---------------------------------------------------------------- the pipeline


def test_build_dataset_writes_masks_for_every_region_format_and_stratifies_them(tmp_path):
    import tensorflow as tf

    from corrosion.data import layout
    from pipelines import build_dataset

    root = tmp_path / "in"
    photos = {f"m{i}": _photo(20 + i) for i in range(10)}
    (root / "masks_src" / "images").mkdir(parents=True)
    (root / "masks_src" / "masks").mkdir()
    for stem, photo in photos.items():
        (root / "masks_src" / "images" / f"{stem}.jpg").write_bytes(photo.jpeg())
        (root / "masks_src" / "masks" / f"{stem}.png").write_bytes(rf.mask_png(photo.mask))
    lm = root / "labelme_src"
    lm.mkdir()
    for i in range(10):
        photo = _photo(40 + i)
        (lm / f"l{i}.png").write_bytes(photo.png())
        (lm / f"l{i}.json").write_text(
            rf.labelme_json(f"l{i}.png", W, H, photo.polygons, label="2_Fair_Steel_Corrosion")
        )
    out = tmp_path / "ds"
    stats = build_dataset.run(["--input", str(root), "--output_dir", str(out)])
    masks, states = {}, Counter()  # (labelme / mask photo, state)
    for split in layout.SPLITS:
        for raw in tf.data.TFRecordDataset(sorted(str(p) for p in out.glob(f"{split}-*.tfrecord"))):
            rec = schema.from_example(raw.numpy())
            masks[rec.filename] = (split, regions.decode(rec.mask))
            states.update((rec.filename[0], b.state) for b in rec.boxes)
    assert len(masks) == 20 and set(states) == {("l", "fair"), ("m", "")}
    for stem, photo in photos.items():
        assert np.array_equal(masks[f"{stem}.jpg"][1], photo.mask)
    strata = stats["records_by_stratum"]
    for stratum in ("in/regions/rust",):
        # 20 region photos of one stratum: 16 / 2 / 2 exactly, not by chance
        assert {s: strata[s][stratum] for s in layout.SPLITS} == {"train": 16, "validation": 2, "test": 2}
