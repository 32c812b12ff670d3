"""VOC, YOLO and class-folder readers and layout discovery, on generated files and every bad input."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from corrosion.core.annotations import Box
from corrosion.core.labels import load_labels
from corrosion.core.rejects import AnnotationError
from corrosion.data import discovery
from corrosion.data.readers import voc, yolo
from corrosion.data.readers.class_folders import class_from_path
from corrosion.testing import synthetic

LABELS = load_labels()
SIZE = (128, 96)


def test_voc_reads_filename_not_path(tmp_path):
    survey = synthetic.generate_survey(tmp_path, "voc", n_rust=2, n_clean=1, size=SIZE)
    for truth in survey.images:
        xml = tmp_path / Path(truth.path).with_suffix(".xml")
        assert "C:\\Users\\annotator" in xml.read_text()  # <path> from another machine, ignored
        labelled = voc.read_voc(str(xml), str(tmp_path), LABELS, source="s")
        assert labelled.image_path == str(tmp_path / truth.path)
        assert labelled.image_class == truth.image_class
        assert labelled.declared_size == (truth.width, truth.height)
        assert [(b.xmin, b.ymin, b.xmax, b.ymax) for b in labelled.boxes] == [
            (round(b.xmin), round(b.ymin), round(b.xmax), round(b.ymax)) for b in truth.boxes
        ]
        assert all(b.label == "rust" for b in labelled.boxes)


def test_voc_maps_aliases_and_flags():
    xml = synthetic.voc_xml("a.jpg", 100, 80, (Box(1, 2, 30, 40, "CORROSION"),)).replace(
        "<truncated>0</truncated>", "<truncated>1</truncated>"
    )
    ann = voc.parse_voc(xml, "/r/a.xml")
    labelled = voc.to_labelled(ann, "/r/a.jpg", LABELS)
    assert labelled.boxes == (Box(1, 2, 30, 40, "rust", difficult=False, truncated=True),)


@pytest.mark.parametrize(
    "kind, reason",
    [
        ("malformed_xml", "malformed_xml"),
        ("xml_bomb", "xml_entity_expansion"),
        ("xml_external_entity", "xml_external_entity"),
    ],
)
def test_voc_refuses_bad_xml(tmp_path, kind, reason):
    bad = synthetic.write_bad_file(tmp_path, kind, "bad")
    with pytest.raises(AnnotationError) as err:
        voc.read_voc(str(tmp_path / bad.path), str(tmp_path), LABELS)
    assert err.value.reason == reason
    assert str(tmp_path / bad.path) in str(err.value)
    assert "lol" * 5 not in str(err.value) and "root:" not in str(err.value)  # never expanded


@pytest.mark.parametrize(
    "kind, reason",
    [("missing_image", "missing_image"), ("path_escape", "path_escape"), ("unknown_label", "unknown_label")],
)
def test_voc_bad_references_and_labels(tmp_path, kind, reason):
    bad = synthetic.write_bad_file(tmp_path, kind, "bad")
    with pytest.raises(AnnotationError) as err:
        voc.read_voc(str(tmp_path / bad.path), str(tmp_path), LABELS)
    assert err.value.reason == reason
    if kind == "unknown_label":
        assert "'scratch'" in str(err.value)


def test_voc_non_numeric_coordinate():
    xml = synthetic.voc_xml("a.jpg", 100, 80, (Box(1, 2, 30, 40),)).replace("<xmin>1</xmin>", "<xmin>left</xmin>")
    with pytest.raises(AnnotationError) as err:
        voc.parse_voc(xml, "a.xml")
    assert err.value.reason == "malformed_xml" and "'left'" in str(err.value)


def test_yolo_resolves_windows_yaml_and_reads_boxes(tmp_path):
    survey = synthetic.generate_survey(tmp_path, "yolo", n_rust=3, n_clean=1, size=SIZE, box_label="corrosion")
    dataset = yolo.read_data_yaml(str(tmp_path / "data.yaml"))
    assert dataset.names == ("corrosion",)
    assert dataset.split_dirs["train"] == str(tmp_path / "train/images")  # Windows path, resolved here
    for truth in survey.images:
        labelled = yolo.read_yolo(str(tmp_path / truth.path), dataset.names, LABELS)
        assert labelled.image_class == truth.image_class
        assert len(labelled.boxes) == len(truth.boxes)
        for got, want in zip(labelled.boxes, truth.boxes, strict=True):
            assert np.allclose(
                [got.xmin, got.ymin, got.xmax, got.ymax], [want.xmin, want.ymin, want.xmax, want.ymax], atol=0.01
            )
            assert got.label == "rust"
    negative = next(i for i in survey.images if i.image_class == "no_rust")
    assert (tmp_path / negative.path.replace("images", "labels")).with_suffix(".txt").read_text() == ""


@pytest.mark.parametrize(
    "content, reason",
    [
        ("0 0.5 0.5 0.2\n", "malformed_yolo"),
        ("0 0.5 half 0.2 0.2\n", "malformed_yolo"),
        ("3 0.5 0.5 0.2 0.2\n", "unknown_label"),
        ("0 nan 0.5 0.2 0.2\n", "malformed_yolo"),
        ("0 0.5 0.5 inf 0.2\n", "malformed_yolo"),
    ],
)
def test_yolo_bad_label_lines(content, reason):
    with pytest.raises(AnnotationError) as err:
        yolo.parse_labels(content, "x.txt", ("corrosion",))
    assert err.value.reason == reason and "line 1" in str(err.value)


def test_yolo_unknown_name_in_yaml():
    boxes = yolo.parse_labels("0 0.5 0.5 0.2 0.2\n", "x.txt", ("scratch",))
    with pytest.raises(AnnotationError) as err:
        yolo.to_pixel_boxes(boxes, 100, 100, LABELS, "x.txt")
    assert err.value.reason == "unknown_label" and "'scratch'" in str(err.value)


def test_class_folder_aliases(tmp_path):
    root = str(tmp_path)
    assert class_from_path(f"{root}/train/CORROSION/a.jpg", root, LABELS) == "rust"
    assert class_from_path(f"{root}/validation/NOCORROSION/a.jpg", root, LABELS) == "no_rust"
    assert class_from_path(f"{root}/download/norust/sub/a.jpg", root, LABELS) == "no_rust"
    assert class_from_path(f"{root}/photos/a.jpg", root, LABELS) is None


def test_scan_mixed_layouts(tmp_path):
    """One tree holding class folders, VOC and YOLO, like corrosion-detector (download/ + objDet/)."""
    folders = synthetic.generate_survey(tmp_path / "download", "folders", n_rust=2, n_clean=2, size=SIZE, seed=1)
    vocs = synthetic.generate_survey(tmp_path / "objDet", "voc", n_rust=2, n_clean=1, size=SIZE, seed=2, split="train")
    yolos = synthetic.generate_survey(tmp_path / "rf", "yolo", n_rust=2, n_clean=1, size=SIZE, seed=3, split="valid")
    result = discovery.scan(str(tmp_path), LABELS)
    assert result.rejects == []
    by_path = {i.image_path: i for i in result.images}
    assert len(by_path) == 4 + 3 + 3
    for sub, survey in (("download", folders), ("objDet", vocs), ("rf", yolos)):
        for truth in survey.images:
            labelled = by_path[str(tmp_path / sub / truth.path)]
            assert labelled.image_class == truth.image_class
            assert (labelled.boxes is None) == (sub == "download")
    assert by_path[str(tmp_path / "objDet/train/rust_0000.jpg")].source_split == "train"
    assert by_path[str(tmp_path / "rf/valid/images/rust_0000.jpg")].source_split == "validation"
    assert result.ignored == [str(tmp_path / "rf/data.yaml")]


def test_scan_reports_every_bad_input(tmp_path):
    synthetic.generate_survey(tmp_path, "voc", n_rust=2, n_clean=1, size=SIZE, bad_files=synthetic.BAD_KINDS)
    (tmp_path / "stray.jpg").write_bytes((tmp_path / "rust_0000.jpg").read_bytes())  # no annotation
    result = discovery.scan(str(tmp_path), LABELS)
    reasons = Counter((r.stage, r.reason) for r in result.rejects)
    assert reasons == {
        # images without annotation (scan does not decode: the pipeline reports the corrupt ones as such)
        ("discover", "unlabelled"): 5,  # truncated, empty, not_image, huge, stray
        ("annotation", "malformed_xml"): 2,  # the XML and its image
        ("annotation", "xml_entity_expansion"): 2,
        ("annotation", "xml_external_entity"): 2,
        ("annotation", "unknown_label"): 2,
        ("annotation", "missing_image"): 1,
        ("annotation", "path_escape"): 1,
    }
    # the inverted and the outside box are validation's business: their images are labelled
    assert {Path(i.image_path).name for i in result.images} >= {"bad_10_inverted_box.jpg", "bad_11_box_outside.jpg"}
    assert all(r.detail for r in result.rejects)


def test_scan_yolo_problems(tmp_path):
    synthetic.generate_survey(tmp_path, "yolo", n_rust=2, n_clean=1, size=SIZE)
    (tmp_path / "train/labels/orphan.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    (tmp_path / "train/labels/rust_0001.txt").write_text("0 0.5 0.5\n")
    (tmp_path / "train/labels/clean_0000.txt").unlink()
    result = discovery.scan(str(tmp_path), LABELS)
    reasons = Counter((Path(r.path).name, r.reason) for r in result.rejects)
    assert reasons == {
        ("orphan.txt", "missing_image"): 1,
        ("rust_0001.txt", "malformed_yolo"): 1,
        ("rust_0001.jpg", "malformed_yolo"): 1,
        ("clean_0000.jpg", "missing_label_file"): 1,
    }
    negative = discovery.scan(str(tmp_path), LABELS, missing_annotation_is_negative=True)
    clean = next(i for i in negative.images if i.image_path.endswith("clean_0000.jpg"))
    assert clean.image_class == "no_rust" and clean.boxes == ()


def test_scan_yolo_without_data_yaml(tmp_path):
    synthetic.generate_survey(tmp_path, "yolo", n_rust=1, n_clean=0, size=SIZE)
    (tmp_path / "data.yaml").unlink()
    result = discovery.scan(str(tmp_path), LABELS)
    assert result.images == []
    assert {r.reason for r in result.rejects} == {"missing_data_yaml"}


def test_voc_stale_filename_falls_back_to_same_stem_image(tmp_path):
    synthetic.generate_survey(tmp_path, "voc", n_rust=1, n_clean=0, size=SIZE)
    shutil.move(tmp_path / "rust_0000.jpg", tmp_path / "renamed.jpg")
    shutil.move(tmp_path / "rust_0000.xml", tmp_path / "renamed.xml")
    result = discovery.scan(str(tmp_path), LABELS)
    assert result.rejects == [] and len(result.images) == 1 and result.images[0].has_boxes


def test_scan_missing_root(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        discovery.scan(str(tmp_path / "nope"), LABELS)


def test_scan_real_corrosion_detector(shared_data):
    result = discovery.scan(str(shared_data / "corrosion-detector"), LABELS)
    assert result.rejects == []
    classes = Counter((i.image_class, i.has_boxes) for i in result.images)
    assert classes == {("rust", False): 83, ("no_rust", False): 72, ("rust", True): 45}


def test_scan_real_roboflow(shared_data):
    result = discovery.scan(str(shared_data / "roboflow-corrosion"), LABELS)
    assert result.rejects == [] and len(result.images) == 58
    assert all(i.image_class == "rust" and i.has_boxes for i in result.images)
    assert Counter(i.source_split for i in result.images) == {"train": 51, "validation": 5, "test": 2}


def test_path_arithmetic_for_gs_urls():
    from corrosion.core import paths

    root = "gs://bucket/survey"
    assert paths.normalise("gs://bucket/survey/a/../b/x.jpg") == "gs://bucket/survey/b/x.jpg"
    assert paths.is_within("gs://bucket/survey/b/x.jpg", root)
    assert not paths.is_within("gs://bucket/survey/../other/x.jpg", root)
    assert not paths.is_within("gs://bucket/survey2/x.jpg", root)
    assert paths.relative("gs://bucket/survey/b/x.jpg", root) == "b/x.jpg"
    assert discovery.unit_of("gs://bucket/survey/train/images/x.jpg") == "gs://bucket/survey/train"
    assert discovery.source_split_of("gs://bucket/survey/valid/labels/x.txt", root) == "validation"
    ann = voc.VocAnnotation("gs://bucket/survey/a/x.xml", "../../../etc/passwd", None, ())
    with pytest.raises(AnnotationError) as err:
        voc.resolve_image_path(ann, root)
    assert err.value.reason == "path_escape"
    ann = voc.VocAnnotation("gs://bucket/survey/a/x.xml", "x.jpg", None, ())
    assert voc.resolve_image_path(ann, root) == "gs://bucket/survey/a/x.jpg"


def test_two_annotations_for_one_image(tmp_path):
    synthetic.generate_survey(tmp_path, "voc", n_rust=1, n_clean=0, size=SIZE)
    shutil.copy(tmp_path / "rust_0000.xml", tmp_path / "rust_0000_copy.xml")
    result = discovery.scan(str(tmp_path), LABELS)
    assert len(result.images) == 1 and result.images[0].annotation_path == str(tmp_path / "rust_0000.xml")
    assert [(Path(r.path).name, r.reason) for r in result.rejects] == [("rust_0000_copy.xml", "duplicate_annotation")]


def test_voc_devkit_layout_annotations_apart_from_images(tmp_path):
    survey = synthetic.generate_survey(tmp_path / "flat", "voc", n_rust=2, n_clean=1, size=SIZE)
    (tmp_path / "voc/Annotations").mkdir(parents=True)
    (tmp_path / "voc/JPEGImages").mkdir()
    for truth in survey.images:
        shutil.move(tmp_path / "flat" / truth.path, tmp_path / "voc/JPEGImages" / truth.path)
        xml = Path(truth.path).with_suffix(".xml")
        shutil.move(tmp_path / "flat" / xml, tmp_path / "voc/Annotations" / xml)
    result = discovery.scan(str(tmp_path / "voc"), LABELS)
    assert result.rejects == []
    assert sorted(Path(i.image_path).name for i in result.images) == sorted(t.path for t in survey.images)
    assert all(i.annotation_path and "Annotations" in i.annotation_path for i in result.images)


def test_a_folder_merely_called_images_is_not_yolo(tmp_path):
    synthetic.generate_survey(tmp_path / "rust", "flat", n_rust=2, n_clean=0, size=SIZE)
    (tmp_path / "rust/images").mkdir()
    for f in (tmp_path / "rust").glob("*.jpg"):
        shutil.move(f, tmp_path / "rust/images" / f.name)
    result = discovery.scan(str(tmp_path), LABELS)
    assert result.rejects == [] and [i.image_class for i in result.images] == ["rust", "rust"]


@pytest.mark.parametrize("text", ["names: {2: corrosion, 0: scratch}\n", "names: {'2': corrosion, '0': scratch}\n"])
def test_yolo_names_dict_is_mapped_by_id_not_by_position(tmp_path, text):
    (tmp_path / "data.yaml").write_text(text)
    names = yolo.read_data_yaml(str(tmp_path / "data.yaml")).names
    assert names == ("scratch", None, "corrosion")
    assert [b.class_name for b in yolo.parse_labels("2 0.5 0.5 0.2 0.2\n0 0.5 0.5 0.1 0.1\n", "x.txt", names)] == [
        "corrosion",
        "scratch",
    ]
    with pytest.raises(AnnotationError) as err:
        yolo.parse_labels("1 0.5 0.5 0.2 0.2\n", "x.txt", names)
    assert err.value.reason == "unknown_label"


@pytest.mark.parametrize(
    "text, words",
    [
        ("names: {0: rust, x: corrosion}\n", "'x'"),
        ("names: {0: rust, 1.5: corrosion}\n", "1.5"),
        ("names: {0: rust, 99999999: corrosion}\n", "99999999"),
        ("names: &a [a, b]\nmore: [*a, *a]\n", "aliases"),
        ("names: [rust, [nested]]\n", "list of strings"),
        ("names: {'\u00b2': rust}\n", "'\u00b2'"),  # a superscript two: isdigit() says yes, int() says no
        ("names: " + "[" * 200_000 + "]" * 200_000 + "\n", "nesting depth"),
    ],
)
def test_yolo_unusable_data_yaml_is_refused_with_a_short_reason(tmp_path, text, words):
    (tmp_path / "data.yaml").write_text(text)
    with pytest.raises(AnnotationError) as err:
        yolo.read_data_yaml(str(tmp_path / "data.yaml"))
    assert err.value.reason == "malformed_data_yaml" and words in str(err.value) and len(str(err.value)) < 400


def test_yolo_data_yaml_that_is_a_folder_or_too_large_is_refused(tmp_path):
    (tmp_path / "a" / "data.yaml").mkdir(parents=True)
    with pytest.raises(AnnotationError) as err:
        yolo.read_data_yaml(str(tmp_path / "a" / "data.yaml"))
    assert err.value.reason == "malformed_data_yaml" and "cannot be read as a file" in str(err.value)
    (tmp_path / "b.yaml").write_text("names: [rust]\n" + "#" * 2**21)
    with pytest.raises(AnnotationError) as err:
        yolo.read_data_yaml(str(tmp_path / "b.yaml"))
    assert err.value.reason == "malformed_data_yaml" and "larger than" in str(err.value)


@pytest.mark.parametrize("value", ["nan", "1e999", "-inf"])
def test_voc_non_finite_numbers_are_refused(value):
    for size, box in ((value, "10"), ("96", value)):
        xml = (
            f"<annotation><filename>a.jpg</filename><size><width>{size}</width><height>72</height></size>"
            f"<object><name>rust</name><bndbox><xmin>{box}</xmin><ymin>1</ymin><xmax>50</xmax><ymax>50</ymax>"
            "</bndbox></object></annotation>"
        )
        with pytest.raises(AnnotationError) as err:
            voc.parse_voc(xml, "a.xml")
        assert err.value.reason == "malformed_xml" and "not a finite number" in str(err.value)


def test_byte_order_marks_are_read_through(tmp_path):
    (tmp_path / "data.yaml").write_bytes(b"\xef\xbb\xbfnames: [corrosion]\n")
    assert yolo.read_data_yaml(str(tmp_path / "data.yaml")).names == ("corrosion",)
    xml = b"\xef\xbb\xbf<?xml version='1.0'?><annotation><filename>a.jpg</filename></annotation>"
    assert voc.parse_voc(xml, "a.xml").filename == "a.jpg"


def test_yolo_images_sharing_a_stem_all_take_its_label_file_and_a_second_label_file_is_refused(tmp_path):
    unit = tmp_path / "u"
    (unit / "images").mkdir(parents=True)
    (unit / "labels").mkdir()
    (unit / "data.yaml").write_text("names: [corrosion]\n")
    rng = np.random.default_rng(0)
    for ext in ("jpg", "JPG", "png"):
        pixels, _ = synthetic.render(rng, 64, 48, 0, "steel")
        (unit / "images" / f"a.{ext}").write_bytes(synthetic.encode_image(pixels, "PNG" if ext == "png" else "JPEG"))
    (unit / "labels" / "a.txt").write_text("0 0.5 0.5 0.25 0.25\n")
    (unit / "labels" / "a.TXT").write_text("0 0.1 0.1 0.1 0.1\n")
    result = discovery.scan(str(tmp_path), LABELS)
    assert sorted(Path(i.image_path).name for i in result.images) == ["a.JPG", "a.jpg", "a.png"]
    assert all(len(i.boxes) == 1 and i.boxes[0].xmin == 24 for i in result.images)  # from a.txt: 0.375 * 64
    assert [(Path(r.path).name, r.reason) for r in result.rejects] == [("a.TXT", "duplicate_annotation")]


def test_voc_declaring_an_unknown_encoding_is_refused():
    with pytest.raises(AnnotationError) as err:
        voc.parse_voc(b'<?xml version="1.0" encoding="x-bogus-42"?><annotation/>', "a.xml")
    assert err.value.reason == "malformed_xml"
