"""Hostile region annotation files (COCO, LabelMe, RLE): every bad input a reject row with its reason
and the file's name, never a crash, never silently lost (``corrosion.testing.hostile_regions``).

The corpus runs through ``training.evaluate``'s raw-folder reading in process and through one small
``build_dataset``; the units below pin the rules themselves (safe JSON numbers, RLE counts, the
claim order, one image's slice of a COCO file). ``HOSTILE_SEED`` picks another corpus.
"""

from __future__ import annotations

import io
import json
import os
import pickle
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from corrosion.core import paths, safe_json
from corrosion.core.labels import load_labels
from corrosion.core.rejects import AnnotationError
from corrosion.data import discovery, regions
from corrosion.data.readers import coco
from corrosion.testing import hostile_regions as hr
from corrosion.testing import region_files as rf

LABELS = load_labels()
SEED = int(os.environ.get("HOSTILE_SEED", "20261203"))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> hr.Corpus:
    return hr.generate_corpus(tmp_path_factory.mktemp("regions") / "root", SEED)


def _shown(corpus: hr.Corpus, case: hr.Case) -> str:
    return paths.display(paths.normalise(f"{corpus.root}/{case.path}"))


def _check_outcomes(corpus: hr.Corpus, kept: set[str], rows: list[dict]) -> None:
    """Each case as expected: kept images kept and rowless, used files rowless, every other path
    exactly its ``rows`` rows of its reason; nothing else has a row; each row names its file."""
    by_path: dict[str, Counter] = {}
    for r in rows:
        by_path.setdefault(r["path"], Counter())[r["reason"]] += 1
        assert r["path"] in r["detail"] and len(r["detail"]) < 600, r
    for case in corpus.cases:
        name, got = _shown(corpus, case), by_path.pop(_shown(corpus, case), Counter())
        if case.dataset == hr.KEPT:
            assert name in kept and not got, (case.kind, got)
        elif case.dataset == hr.USED:
            assert not got, (case.kind, got)
        else:
            assert name not in kept and got == {case.dataset: case.rows}, (case.kind, case.dataset, got)
    assert by_path == {}  # no row for a path the corpus does not know


def test_evaluate_raw_folder_gives_every_region_case_its_outcome(corpus):
    from training.common import raw_folder

    rejects, kept = [], {}
    for labelled, record in raw_folder.raw_records(str(corpus.root), LABELS, rejects):
        kept[paths.display(labelled.image_path)] = (labelled, record)
    _check_outcomes(corpus, set(kept), [{"path": r.path, "reason": r.reason, "detail": r.detail} for r in rejects])
    assert len(kept) == sum(c.dataset == hr.KEPT for c in corpus.cases if c.path.endswith(".png"))
    # the image claimed by two LabelMe files takes its own (labelme/<stem>.json), whose outline is its rust
    own = next(c for c in corpus.cases if c.kind == "labelme_claimed_own_json")
    labelled, record = kept[_shown(corpus, next(c for c in corpus.cases if c.kind == "labelme_claimed"))]
    assert labelled.annotation_path == paths.normalise(f"{corpus.root}/{own.path}")
    polygons = [
        tuple(v for point in shape["points"] for v in point)
        for shape in json.loads((corpus.root / own.path).read_text())["shapes"]
    ]
    assert np.array_equal(regions.decode(record.mask), regions.rasterise(polygons, hr.W, hr.H))
    for kind in ("coco_rle_compressed", "coco_rle_uncompressed"):  # both RLE forms decode to the photo's mask
        _, record = kept[_shown(corpus, next(c for c in corpus.cases if c.kind == kind))]
        assert record.mask is not None and regions.decode(record.mask).sum() > 0


def test_build_dataset_gives_every_region_case_its_outcome(corpus, tmp_path):
    import csv

    from pipelines import build_dataset

    out = tmp_path / "ds"
    stats = build_dataset.run(["--input", str(corpus.root), "--output_dir", str(out)])
    rows = [json.loads(line) for line in (out / "rejects.jsonl").read_text().splitlines()]
    with open(out / "manifest.csv", newline="", encoding="utf-8") as handle:
        manifest = list(csv.DictReader(handle))
    kept = {m["path"] for m in manifest if m["status"] == "kept"}
    _check_outcomes(corpus, kept, rows)
    images = [c for c in corpus.cases if c.path.endswith(".png")]
    assert sorted(m["path"] for m in manifest) == sorted(_shown(corpus, c) for c in images)  # none lost
    assert stats["records_total"] == sum(c.dataset == hr.KEPT for c in images)


# ---------------------------------------------------------------- safe JSON numbers


@pytest.mark.parametrize(
    "literal",
    ["1" + "0" * 400, "-" + "9" * 309, "7" * 4_301, "1" * 100_000, "1e999", "-1e400", "NaN", "Infinity", "-Infinity"],
)
def test_a_number_no_float_holds_refuses_the_whole_document(literal):
    with pytest.raises(safe_json.JsonError) as refused:
        safe_json.loads(f'{{"unused": [1, {{"deep": {literal}}}], "x": 2}}'.encode())
    assert len(str(refused.value)) < 120  # a 100,000-digit literal is not quoted whole


def test_numbers_within_float_range_read_as_json_reads_them():
    text = '{"a": [0, -3, 1.5, 1e308, -2.5e-300, 1e-400], "b": %s, "c": true, "d": "1e999"}' % ("9" * 308)
    doc = safe_json.loads(b"\xef\xbb\xbf" + text.encode())
    assert doc == json.loads(text) and type(doc["b"]) is int and doc["a"][5] == 0.0
    assert [safe_json.number(v) for v in (True, 10**400, float("nan"), "1", 3, 2.5)] == [None, None, None, None, 3, 2.5]


def test_huge_numbers_in_documents_built_in_memory_are_refused_by_the_readers():
    from corrosion.data.readers import labelme

    shape = {"label": "rust", "points": [[1, 2], [10**400, 3], [5, 9]], "shape_type": "polygon"}
    with pytest.raises(AnnotationError, match="not a finite number"):
        labelme.parse_labelme({"shapes": [shape], "imagePath": "a.png"}, "a.json")
    found = coco.parse_coco(_doc([_ann(bbox=[1, 1, 10**400, 3])]), "c.json")
    with pytest.raises(AnnotationError, match="finite numbers"):
        coco.to_boxes(found, found.annotations[1], LABELS)


# ---------------------------------------------------------------- COCO entries


def _doc(annotations, images=None, categories=None) -> dict:
    return {
        "images": images or [{"id": 1, "file_name": "a.png", "width": 8, "height": 6}],
        "annotations": annotations,
        "categories": categories or [{"id": 1, "name": "rust"}],
    }


def _ann(**extra) -> dict:
    return {"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 4, 3], **extra}


def _boxes(doc: dict, size=(8, 6)):
    found = coco.parse_coco(doc, "c.json")
    return coco.to_boxes(found, found.annotations.get(1, ()), LABELS, size)


@pytest.mark.parametrize(
    "segmentation, reason",
    [
        ([[1, 1, 5, 1, 5, 5, 3]], "malformed_coco"),  # odd: not x, y pairs
        ([[1, 1, 5, 5]], "degenerate_polygon"),
        ([[1, 1, 5, 1, True, 5]], "malformed_coco"),
        ({"size": [6, 8], "counts": [10, 5]}, "malformed_coco"),  # short of 48 pixels
        ({"size": [6, 8], "counts": [40, 9]}, "malformed_coco"),  # past them
        ({"size": [6, 8], "counts": [40, -1, 9]}, "malformed_coco"),
        ({"size": [6, 8], "counts": "zz"}, "malformed_coco"),  # outside the alphabet
        ({"size": [6, 8], "counts": "0o"}, "malformed_coco"),  # a count that never ends
        ({"size": [6, 8], "counts": "04"}, "malformed_coco"),  # 0 then 4: short
        ({"size": [6, 8], "counts": ""}, "malformed_coco"),
        ({"size": [True, 8], "counts": [48]}, "malformed_coco"),
        ({"size": [30_000, 30_000], "counts": [899_999_993, 7]}, "mask_size_mismatch"),
        ({"size": [8, 6], "counts": [48]}, "mask_size_mismatch"),  # width and height swapped
    ],
)
def test_bad_regions_are_refused_with_their_reason(segmentation, reason):
    with pytest.raises(AnnotationError) as refused:
        _boxes(_doc([_ann(segmentation=segmentation)]))
    assert refused.value.reason == reason and "c.json annotation 1" in str(refused.value)


def test_rle_counts_round_trip_through_pycocotools_in_both_forms():
    from pycocotools import mask as mask_utils

    rng = np.random.default_rng(3)
    for h, w, p in ((6, 8, 0.5), (1, 1, 1.0), (5, 7, 0.0), (40, 60, 0.97), (3, 300, 0.1)):
        mask = (rng.random((h, w)) < p).astype(np.uint8)
        compressed = mask_utils.encode(np.asfortranarray(mask))["counts"]
        runs = coco.rle_runs(compressed, h * w)
        assert runs.sum() == h * w and (runs >= 0).all()
        flat = np.repeat(np.arange(len(runs)) % 2, runs).astype(np.uint8)
        assert np.array_equal(flat.reshape((w, h)).T, mask)  # column-major runs, background first
        doc = _doc([_ann(segmentation={"size": [h, w], "counts": runs.tolist()})], [{"id": 1, "file_name": "a.png"}])
        (box,) = _boxes(doc, size=None)
        assert box.rle[2] == compressed and np.array_equal(regions.decode_rle(box.rle, (w, h)), mask)


def test_decode_rle_refuses_what_pycocotools_would_decode_wrongly():
    with pytest.raises(regions.MaskError) as wrong_size:
        regions.decode_rle((6, 8, b"0`0"), (16, 12))  # never stretched to its image
    assert wrong_size.value.reason == "mask_size_mismatch"
    with pytest.raises(regions.MaskError) as short:
        regions.decode_rle((6, 8, b":5"), (8, 6))  # 10 + 5 of 48 pixels: the rest would be unset memory
    assert short.value.reason == "corrupt_mask"


def test_coco_ids_are_never_resolved_silently():
    images = [{"id": 1, "file_name": "a.png"}, {"id": 1, "file_name": "b.png"}, {"id": 2, "file_name": "c.png"}]
    cats = [{"id": 1, "name": "rust"}, {"id": 1, "name": "background"}, {"id": 2, "name": "rust"}]
    anns = [_ann(), _ann(id=2, image_id=2, category_id=2), _ann(id=3, image_id=9), _ann(id=4, image_id=2)]
    found = coco.parse_coco(_doc(anns, images, cats), "c.json")
    assert found.duplicate_ids == {1} and [a["id"] for a in found.orphans] == [3]
    assert found.categories == {2: "rust"} and found.conflicting == {1: ("rust", "background")}
    with pytest.raises(AnnotationError) as ambiguous:
        coco.to_boxes(found, found.annotations[2][1:], LABELS)  # annotation 4: category 1, declared twice
    assert ambiguous.value.reason == "duplicate_category_id"
    for bad in ({"id": True, "file_name": "a.png"}, {"id": 1.0, "file_name": "a.png"}):
        with pytest.raises(AnnotationError, match="integer id"):
            coco.parse_coco(_doc([], [bad]), "c.json")
    with pytest.raises(AnnotationError) as as_one:
        _boxes(_doc([_ann(category_id=True)]))
    assert as_one.value.reason == "unknown_label"


def test_each_coco_claim_carries_only_its_own_image():
    """The pipeline pickles every claim on its own: one holding the whole file made a 400-image
    export cost 400 copies of itself (47.7 s, 2.4 GB)."""

    def largest_claim(n: int) -> int:
        images = [{"id": i, "file_name": f"{i}.png", "width": 8, "height": 6} for i in range(n)]
        anns = [_ann(id=i, image_id=i, segmentation=[[1, 1, 5, 1, 5, 5] * 5]) for i in range(n)]
        text = json.dumps(_doc(anns, images)).encode()
        task = discovery.AnnotationTask("/r/c.json", "/r", "r", None, None)
        claims = discovery.parse_annotations(task, exists=lambda p: True, read_json=lambda p: text)
        assert len(claims) == n and all(c.annotation.coco.images == (c.annotation.image,) for _, c in claims)
        return max(len(pickle.dumps(c)) for _, c in claims)

    assert largest_claim(400) < 1.2 * largest_claim(10)


# ---------------------------------------------------------------- RLE against the photo's own size


def _oriented_jpeg(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    out = io.BytesIO()
    Image.new("RGB", (8, 6), (120, 60, 30)).save(out, format="JPEG", exif=exif)
    return out.getvalue()


@pytest.mark.parametrize(
    "declared, rle_size, outcome",
    [
        ((8, 6), [6, 8], "kept"),  # the raw pixels' size
        ((6, 8), [8, 6], "kept"),  # the turned image's size, which the annotator saw
        (None, [6, 8], "kept"),
        (None, [8, 6], "mask_size_mismatch"),
        ((6, 8), [6, 8], "mask_size_mismatch"),  # against its own entry
    ],
)
def test_an_rle_must_be_the_size_its_photo_is_drawn_at(tmp_path, declared, rle_size, outcome):
    (tmp_path / "a.jpg").write_bytes(_oriented_jpeg(6))  # EXIF: turn a quarter
    image = {"id": 1, "file_name": "a.jpg"} | ({"width": declared[0], "height": declared[1]} if declared else {})
    seg = {"size": rle_size, "counts": [0, 48]}
    (tmp_path / "c.json").write_text(json.dumps(_doc([_ann(segmentation=seg)], [image])))
    scanned = discovery.scan(str(tmp_path), LABELS)
    if outcome == "kept":
        from corrosion.data import validate

        (labelled,) = scanned.images
        record = validate.to_record(labelled, (tmp_path / "a.jpg").read_bytes(), LABELS)
        assert regions.decode(record.mask).shape == (8, 6) and regions.decode(record.mask).all()
    else:
        assert sorted((Path(r.path).name, r.reason) for r in scanned.rejects) == [
            ("a.jpg", outcome),
            ("c.json", outcome),
        ]


# ---------------------------------------------------------------- two annotations, one image


def test_an_images_own_json_wins_and_when_it_is_refused_so_is_the_image(tmp_path):
    photo = rf.region_photo(np.random.default_rng(1), 48, 36, 1)
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "a.png").write_bytes(photo.png())
    for folder in ("aaa", "zzz"):  # before and after labelme/ by path
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "x.json").write_text(rf.labelme_json("../images/a.png", 48, 36, photo.polygons))
    (tmp_path / "labelme").mkdir()
    own = tmp_path / "labelme" / "a.json"
    own.write_text(rf.labelme_json("../images/a.png", 48, 36, photo.polygons))
    scanned = discovery.scan(str(tmp_path), LABELS)
    assert [i.annotation_path for i in scanned.images] == [str(own)]
    assert sorted((Path(r.path).parent.name, r.reason) for r in scanned.rejects) == [
        ("aaa", "duplicate_annotation"),
        ("zzz", "duplicate_annotation"),
    ]
    assert all(str(own) in r.detail and r.path in r.detail for r in scanned.rejects)
    circle = {"label": "rust", "points": [[5, 5], [9, 9]], "shape_type": "circle"}  # parses, then refused
    own.write_text(rf.labelme_json("../images/a.png", 48, 36, [], extra_shapes=[circle]))
    scanned = discovery.scan(str(tmp_path), LABELS)
    assert scanned.images == []  # another JSON never stands in for the image's own, refused one
    assert Counter((Path(r.path).name, r.reason) for r in scanned.rejects) == {
        ("a.json", "unsupported_shape"): 1,
        ("a.png", "unsupported_shape"): 1,
        ("x.json", "duplicate_annotation"): 2,
    }
