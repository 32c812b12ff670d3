"""Fuzzing the parsers with hypothesis: whatever the bytes, only the reader's own refusal escapes.

Examples are bounded and derandomised (the same ones every run, so CI is stable); set
``HYPOTHESIS_PROFILE=explore`` for fresh random examples, ten times as many.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from corrosion.core import csv_rows, paths, safe_json
from corrosion.core.labels import load_labels
from corrosion.core.rejects import AnnotationError
from corrosion.data import discovery, regions
from corrosion.data.readers import coco as coco_reader
from corrosion.data.readers import voc, yolo
from corrosion.imaging import images
from corrosion.testing import synthetic
from pipelines.inference.transforms import input_list_entry

settings.register_profile(
    "ci", max_examples=150, deadline=None, database=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("explore", max_examples=1500, deadline=None, database=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

LABELS = load_labels()
NUMBERISH = st.one_of(
    st.sampled_from(["nan", "inf", "-inf", "1e999", "-0", "0", "", " 12 ", "0x10", "1_000", "٣"]),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.text(max_size=12),
)


def _voc_xml(filename: str, width: str, height: str, boxes: list[tuple[str, str, str, str, str]]) -> str:
    objects = "".join(
        f"<object><name>{n}</name><bndbox><xmin>{a}</xmin><ymin>{b}</ymin><xmax>{c}</xmax><ymax>{d}</ymax></bndbox></object>"
        for n, a, b, c, d in boxes
    )
    return f"<annotation><filename>{filename}</filename><size><width>{width}</width><height>{height}</height></size>{objects}</annotation>"


def _xml_text(max_size: int = 20):
    return st.text(max_size=max_size).map(lambda t: t.replace("&", "&amp;").replace("<", "&lt;"))


@given(st.binary(max_size=400))
def test_voc_arbitrary_bytes_only_refusals(data):
    try:
        voc.parse_voc(data, "x.xml")
    except AnnotationError:
        pass


@given(
    st.one_of(
        st.sampled_from(["utf-8", "utf-16", "latin-1", "rot13", "base64", "x-bogus", "cp500"]), st.text(max_size=12)
    ),
    st.binary(max_size=100),
)
def test_voc_with_any_declared_encoding_only_refusals(encoding, body):
    declaration = f'<?xml version="1.0" encoding="{encoding}"?>'.encode("utf-8", "surrogatepass")
    try:
        voc.parse_voc(declaration + b"<annotation><filename>a.jpg</filename>" + body + b"</annotation>", "x.xml")
    except AnnotationError:
        pass


@given(
    _xml_text(),
    NUMBERISH.map(lambda t: t.replace("&", "").replace("<", "")),
    NUMBERISH.map(lambda t: t.replace("&", "").replace("<", "")),
    st.lists(st.tuples(_xml_text(8), *(NUMBERISH.map(lambda t: t.replace("&", "").replace("<", "")),) * 4), max_size=3),
)
def test_voc_structured_xml_parses_to_finite_boxes_or_is_refused(filename, width, height, boxes):
    try:
        annotation = voc.parse_voc(_voc_xml(filename, width, height, boxes), "/root/a/x.xml")
        voc.resolve_image_path(annotation, "/root")
        labelled = voc.to_labelled(annotation, "/root/a/x.jpg", LABELS)
    except AnnotationError:
        return
    assert all(np.isfinite([b.xmin, b.ymin, b.xmax, b.ymax]).all() for b in labelled.boxes)
    if annotation.declared_size is not None:
        assert all(0 < v < 2**31 for v in annotation.declared_size)


YOLO_LINE = st.one_of(
    st.text(max_size=40),
    st.lists(st.one_of(NUMBERISH, st.integers(-3, 5).map(str)), min_size=1, max_size=7).map(" ".join),
)


@given(st.lists(YOLO_LINE, max_size=6), st.lists(st.one_of(st.none(), st.text(max_size=6)), max_size=4))
def test_yolo_labels_parse_to_finite_known_boxes_or_are_refused(lines, names):
    try:
        boxes = yolo.parse_labels("\n".join(lines), "x.txt", tuple(names))
    except AnnotationError:
        return
    for b in boxes:
        assert b.class_name is not None and np.isfinite([b.cx, b.cy, b.w, b.h]).all()


JSON_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-5, 2000), st.floats(allow_nan=True), st.text(max_size=8)),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)
SHAPE = st.fixed_dictionaries(
    {
        "label": JSON_VALUES,
        "points": JSON_VALUES
        | st.lists(
            st.lists(
                st.floats(allow_nan=True, allow_infinity=True)
                | st.integers(-5, 500)
                | st.text(max_size=3)
                | st.booleans()
                | st.integers(-(10**400), 10**400),  # beyond float: OverflowError once
                max_size=3,
            ),
            max_size=5,
        ),
    },
    optional={"shape_type": st.sampled_from(["polygon", "rectangle", "circle", "line", None]) | JSON_VALUES},
)


HUGE_INTS = st.integers(-(10**400), 10**400)
COCO_NUMBERS = st.floats(allow_nan=True) | st.integers(-5, 50) | st.booleans() | HUGE_INTS


def _finite(v) -> bool:
    """A number float holds, decided without float() (Python compares big ints with floats exactly)."""
    return not isinstance(v, bool) and (abs(v) < 1.79e308 if isinstance(v, int) else math.isfinite(v))


@given(
    st.lists(st.lists(COCO_NUMBERS, min_size=2, max_size=2), min_size=3, max_size=5),
    st.sampled_from(["polygon", "rectangle"]),
)
def test_labelme_points_of_any_number_give_finite_boxes_or_are_refused(points, kind):
    """Well-formed shapes whose numbers are hostile: ``10**400`` used to raise OverflowError, ``true`` to be 1."""
    from corrosion.data.readers import labelme

    doc = {"shapes": [{"label": "rust", "points": points, "shape_type": kind}], "imagePath": "a.png"}
    try:
        (box,) = labelme.to_boxes(labelme.parse_labelme(doc, "x.json"), LABELS)
    except AnnotationError as exc:
        assert exc.reason == "malformed_labelme"
        assert not all(_finite(v) for point in points for v in point)
        return
    assert np.isfinite([box.xmin, box.ymin, box.xmax, box.ymax]).all() and box.xmin <= box.xmax


@given(st.fixed_dictionaries({"shapes": st.lists(SHAPE, max_size=4) | JSON_VALUES, "imagePath": JSON_VALUES}))
def test_labelme_documents_give_finite_boxes_or_are_refused(doc):
    from corrosion.data.readers import labelme

    try:
        annotation = labelme.parse_labelme(doc, "x.json")
        boxes = labelme.to_boxes(annotation, LABELS)
    except AnnotationError:
        return
    for b in boxes:
        assert np.isfinite([b.xmin, b.ymin, b.xmax, b.ymax]).all() and b.xmin <= b.xmax and len(b.polygons[0]) >= 6


RLE_FUZZ = st.fixed_dictionaries(
    {
        "size": st.lists(st.integers(0, 6) | st.booleans() | HUGE_INTS, max_size=3) | JSON_VALUES,
        "counts": st.lists(st.integers(-2, 30) | st.booleans() | HUGE_INTS, max_size=8)
        | st.text(st.characters(min_codepoint=40, max_codepoint=120), max_size=10)
        | JSON_VALUES,
    },
)
COCO_ANNOTATION = st.fixed_dictionaries(
    {"image_id": st.integers(0, 3) | JSON_VALUES, "category_id": st.integers(0, 2) | JSON_VALUES},
    optional={"bbox": st.lists(COCO_NUMBERS, max_size=5) | JSON_VALUES,
              "segmentation": JSON_VALUES | RLE_FUZZ | st.lists(st.lists(COCO_NUMBERS, max_size=9), max_size=2)},
)  # fmt: skip


@given(
    st.lists(st.fixed_dictionaries({"id": st.integers(0, 3) | JSON_VALUES, "file_name": st.text(max_size=8) | JSON_VALUES}), max_size=3),
    st.lists(COCO_ANNOTATION, max_size=4),
    st.lists(st.fixed_dictionaries({"id": st.integers(0, 2) | JSON_VALUES, "name": st.sampled_from(["rust", "x"]) | JSON_VALUES}), max_size=2),
)  # fmt: skip
def test_coco_documents_give_finite_boxes_or_are_refused(images, annotations, categories):
    from corrosion.data.readers import coco

    doc = {"images": images, "annotations": annotations, "categories": categories}
    try:
        found = coco.parse_coco(doc, "x.json")
        boxes = [b for anns in found.annotations.values() for b in coco.to_boxes(found, anns, LABELS)]
    except AnnotationError:
        return
    for b in boxes:
        assert np.isfinite([b.xmin, b.ymin, b.xmax, b.ymax]).all()
        assert all(np.isfinite(p).all() and len(p) >= 6 and len(p) % 2 == 0 for p in b.polygons)
        if b.rle is not None:  # an accepted RLE covers its size exactly: it decodes, the same every time
            h, w, _ = b.rle
            first, second = regions.decode_rle(b.rle, (w, h)), regions.decode_rle(b.rle, (w, h))
            assert first.shape == (h, w) and np.array_equal(first, second) and set(np.unique(first)) <= {0, 1}


@given(st.lists(COCO_NUMBERS, min_size=4, max_size=4), st.lists(COCO_NUMBERS, min_size=5, max_size=9))
def test_coco_numbers_of_any_kind_give_finite_boxes_or_are_refused(bbox, polygon):
    """A well-formed entry whose bbox and polygon hold hostile numbers, or an odd count of them."""
    from corrosion.data.readers import coco

    doc = {"images": [{"id": 1, "file_name": "a.png"}], "categories": [{"id": 1, "name": "rust"}],
           "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": bbox, "segmentation": [polygon]}]}  # fmt: skip
    found = coco.parse_coco(doc, "x.json")
    try:
        (box,) = coco.to_boxes(found, found.annotations[1], LABELS)
    except AnnotationError as exc:
        finite = all(_finite(v) for v in bbox + polygon)
        assert (
            not finite
            or len(polygon) % 2
            or not math.isfinite(bbox[0] + bbox[2])
            or not math.isfinite(bbox[1] + bbox[3])
        )
        assert exc.reason == "malformed_coco"
        return
    assert np.isfinite([box.xmin, box.ymin, box.xmax, box.ymax]).all() and len(box.polygons[0]) % 2 == 0


@st.composite
def rle_of_a_mask(draw) -> tuple[dict, np.ndarray, str]:
    """A real mask's RLE (compressed or not), as written or damaged: cut, extended, one character changed."""
    from pycocotools import mask as mask_utils

    h, w = draw(st.integers(1, 7)), draw(st.integers(1, 7))
    mask = np.array(draw(st.lists(st.booleans(), min_size=h * w, max_size=h * w)), np.uint8).reshape(h, w)
    counts = mask_utils.encode(np.asfortranarray(mask))["counts"].decode("ascii")
    how = draw(st.sampled_from(["compressed", "uncompressed", "cut", "extended", "changed"]))
    if how == "uncompressed":
        flat = mask.flatten(order="F")
        edges = np.flatnonzero(np.diff(flat)) + 1
        runs = np.diff(np.concatenate(([0], edges, [flat.size]))).tolist()
        return {"size": [h, w], "counts": [0, *runs] if flat[0] else runs}, mask, how
    if how == "cut":
        counts = counts[: draw(st.integers(0, len(counts) - 1))]
    elif how == "extended":
        counts += draw(st.text(st.characters(min_codepoint=48, max_codepoint=111), min_size=1, max_size=4))
    elif how == "changed":
        at = draw(st.integers(0, len(counts) - 1))
        counts = counts[:at] + chr(draw(st.integers(32, 126))) + counts[at + 1 :]
    return {"size": [h, w], "counts": counts}, mask, how


@given(rle_of_a_mask())
def test_coco_rle_decodes_to_its_mask_or_is_refused(case):
    """No RLE reaches pycocotools unless its counts cover height x width exactly: short counts used to
    decode into memory nobody set (a different mask each call), long or garbage ones to crash."""
    from corrosion.data.readers import coco

    seg, mask, how = case
    h, w = mask.shape
    doc = {"images": [{"id": 1, "file_name": "a.png", "width": w, "height": h}],
           "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1], "segmentation": seg}],
           "categories": [{"id": 1, "name": "rust"}]}  # fmt: skip
    found = coco.parse_coco(doc, "x.json")
    try:
        (box,) = coco.to_boxes(found, found.annotations[1], LABELS, (w, h))
    except AnnotationError as exc:
        assert how in ("cut", "extended", "changed") and exc.reason == "malformed_coco"
        return
    decoded = [regions.decode_rle(box.rle, (w, h)) for _ in range(3)]
    assert all(np.array_equal(d, decoded[0]) for d in decoded) and decoded[0].shape == (h, w)
    if how in ("compressed", "uncompressed"):
        assert np.array_equal(decoded[0], mask)


def _json_text(leaf) -> st.SearchStrategy[str]:
    """JSON texts built from literal ``leaf`` strings (which ``json.dumps`` could not write)."""
    return st.recursive(
        leaf,
        lambda inner: (
            st.lists(inner, max_size=4).map(lambda xs: "[" + ", ".join(xs) + "]")
            | st.lists(st.tuples(st.text(max_size=4).map(json.dumps), inner), max_size=3).map(
                lambda kv: "{" + ", ".join(f"{k}: {v}" for k, v in kv) + "}"
            )
        ),
        max_leaves=8,
    )


NUMBER_LITERALS = st.one_of(
    st.integers(-(10**400), 10**400).map(str),
    st.integers(4_290, 4_400).map(lambda n: "9" * n),  # around Python's int-string limit
    st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999", "-1e400", "1e-400", "-0.0", "1E308", "true", "null"]),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
)


def _numbers(value) -> list:
    if isinstance(value, dict):
        return [n for v in value.values() for n in _numbers(v)]
    if isinstance(value, list):
        return [n for v in value for n in _numbers(v)]
    return [value] if isinstance(value, (int, float)) and not isinstance(value, bool) else []


@given(_json_text(NUMBER_LITERALS))
def test_safe_json_reads_finite_numbers_or_refuses_the_file(text):
    """Exactly the documents holding a number no float holds are refused, and nothing but JsonError escapes."""
    try:
        doc = safe_json.loads(text)
    except safe_json.JsonError:
        try:  # every value kept, duplicate keys included: the refused number may be one a later key overwrites
            plain = json.loads(text, object_pairs_hook=lambda pairs: [v for _, v in pairs])
        except ValueError:  # the int-string limit
            return
        assert any(safe_json.number(n) is None for n in _numbers(plain)), text[:200]
        return
    assert doc == json.loads(text) and all(safe_json.number(n) is not None for n in _numbers(doc))


@given(_json_text(NUMBER_LITERALS), st.sampled_from(["labelme", "coco"]))
@settings(suppress_health_check=[HealthCheck.too_slow])
def test_annotation_json_with_any_numbers_gives_claims_never_an_exception(value, kind):
    """A whole JSON file through discovery: hostile numbers in points, boxes or an unused field."""
    if kind == "labelme":
        text = f'{{"shapes": [{{"label": "rust", "points": [[1, 2], [{value}, 3], [5, 9]]}}], "imagePath": "a.png", "x": {value}}}'
    else:
        text = (f'{{"images": [{{"id": 1, "file_name": "a.png", "width": {value}, "height": 6}}], "categories": [{{"id": 1, "name": "rust"}}], '
                f'"annotations": [{{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, {value}, 2], "segmentation": [[1, 1, 5, 1, {value}, 5]]}}]}}')  # fmt: skip
    task = discovery.AnnotationTask("/r/a.json", "/r", "r", None, "/r/a.png")
    claims = discovery.parse_annotations(task, exists=lambda p: True, read_json=lambda p: text.encode())
    for _, parsed in claims:
        assert (parsed.annotation is None) != (parsed.error is None)
        if parsed.annotation is not None and kind == "coco":
            entry = parsed.annotation
            try:
                boxes = coco_reader.to_boxes(entry.coco, entry.coco.annotations.get(1, ()), LABELS, entry.image.size)
            except AnnotationError:
                continue
            assert all(np.isfinite([b.xmin, b.ymin, b.xmax, b.ymax]).all() for b in boxes)


YAML_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-5, 20), st.floats(allow_nan=True), st.text(max_size=8))
YAML_VALUES = st.recursive(
    YAML_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(YAML_SCALARS.filter(lambda v: v == v), inner, max_size=4)
    ),
    max_leaves=12,
)


@given(st.one_of(st.text(max_size=200), YAML_VALUES.map(lambda v: __import__("yaml").safe_dump({"names": v}))))
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
def test_data_yaml_reads_to_a_name_table_or_is_refused(text):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "data.yaml"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        try:
            dataset = yolo.read_data_yaml(str(path))
        except AnnotationError:
            return
    assert all(n is None or isinstance(n, str) for n in dataset.names)


@given(
    st.binary(max_size=300),
    st.sampled_from(["JPEG", "PNG", "GIF", "BMP", "TIFF", "WEBP"]),
    st.sampled_from(["RGB", "P", "L", "1", "RGBA"]),
    st.integers(0, 2**16),
)
def test_image_decoding_of_damaged_files_only_refuses(noise, fmt, mode, where):
    pixels, _ = synthetic.render(np.random.default_rng(where % 7), 48, 32, 1, "steel")
    from PIL import Image

    out = io.BytesIO()
    img = Image.fromarray(pixels).convert(mode)
    img.convert("RGB" if fmt == "JPEG" and mode in ("P", "RGBA") else img.mode).save(out, format=fmt)
    good = out.getvalue()
    assert min(images.decode(good, "x", reduce_to=(16, 16)).size) >= 16  # the undamaged file always decodes
    cut = where % (len(good) + 1)
    for data in (noise, good[:cut] + noise + good[cut + len(noise) :], good[:cut]):
        try:
            img = images.decode(data, "x", reduce_to=(16, 16))
        except images.ImageError:
            continue
        assert img.mode == "RGB" and min(img.size) >= 1


@given(st.lists(st.one_of(st.text(max_size=30), st.floats().map(str).map(csv_rows.Number)), min_size=1, max_size=5))
def test_csv_records_round_trip_one_per_line(cells):
    line = csv_rows.record(cells)
    assert "\n" not in line and "\r" not in line
    assert len(next(csv.reader(io.StringIO(line)))) == len(cells)


@given(st.text(max_size=60))
def test_input_list_lines_are_literal_paths_or_skipped(line):
    entry = input_list_entry(line, "/lists/tonight.txt")
    stripped = line.lstrip("\ufeff").strip()
    if not stripped or stripped.startswith("#"):
        assert entry is None
    elif stripped.startswith("/") or "://" in stripped:
        assert entry == stripped  # absolute: exactly as written, never globbed
    else:
        assert entry == paths.normalise(f"/lists/{stripped}")  # relative to the list's folder


@pytest.mark.slow
@given(st.binary(max_size=200), st.binary(max_size=200), st.text(max_size=40))
@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
def test_scan_of_a_folder_with_arbitrary_annotations_accounts_for_every_image(xml, label, yaml_text):
    """The whole raw-folder reader never raises and every image ends labelled or rejected."""
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        jpeg = synthetic.encode_image(synthetic.render(np.random.default_rng(0), 40, 30, 1, "steel")[0])
        (root / "voc").mkdir()
        (root / "voc" / "a.jpg").write_bytes(jpeg)
        (root / "voc" / "a.xml").write_bytes(xml)
        for sub in ("images", "labels"):
            (root / "yolo" / sub).mkdir(parents=True)
        (root / "yolo" / "images" / "b.jpg").write_bytes(jpeg)
        (root / "yolo" / "labels" / "b.txt").write_bytes(label)
        (root / "yolo" / "data.yaml").write_text(yaml_text, errors="surrogatepass")
        result = discovery.scan(str(root), LABELS)
        images_out = {i.image_path for i in result.images}
        rejected = {r.path for r in result.rejects}
        for image in (root / "voc" / "a.jpg", root / "yolo" / "images" / "b.jpg"):
            assert (str(image) in images_out) != (str(image) in rejected)
