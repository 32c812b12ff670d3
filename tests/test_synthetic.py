import numpy as np
import pytest
import yaml

from corrosion.core.annotations import Box
from corrosion.imaging import images
from corrosion.testing import synthetic


def _inside_mask(shape, boxes):
    inside = np.zeros(shape[:2], bool)
    for b in boxes:
        inside[int(b.ymin) : int(b.ymax), int(b.xmin) : int(b.xmax)] = True
    return inside


def test_boxes_match_drawn_rust_pixels(tmp_path):
    survey = synthetic.generate_survey(tmp_path, "voc", n_rust=8, n_clean=4, seed=3, hard_negative_fraction=0)
    assert len(survey.rust_images) == 8
    for truth in survey.images:
        pixels = images.decode_array((tmp_path / truth.path).read_bytes(), truth.path)
        assert pixels.shape == (truth.height, truth.width, 3)
        rust = synthetic.rust_mask(pixels)
        inside = _inside_mask(pixels.shape, truth.boxes)
        if truth.image_class == "rust":
            assert 1 <= len(truth.boxes) <= 3
            assert rust[inside].mean() > 0.4, truth
        assert rust[~inside].mean() < 0.01, truth


def test_box_is_tight_around_patch():
    rng = np.random.default_rng(0)
    img = np.full((100, 120, 3), 128.0, np.float32)
    box = synthetic.draw_rust_patch(rng, img, 10, 20, 40, 30)
    changed = np.any(img != 128.0, axis=-1)
    ys, xs = np.nonzero(changed)
    assert (box.xmin, box.ymin, box.xmax, box.ymax) == (xs.min() + 0.0, ys.min() + 0.0, xs.max() + 1.0, ys.max() + 1.0)
    assert 10 <= box.xmin and box.xmax <= 50 and 20 <= box.ymin and box.ymax <= 50


def test_hard_negatives_are_rust_coloured_but_have_no_boxes(tmp_path):
    survey = synthetic.generate_survey(tmp_path, "folders", n_rust=0, n_clean=12, seed=1, hard_negative_fraction=1.0)
    assert {i.background for i in survey.images} <= set(synthetic.HARD_NEGATIVES)
    assert all(i.boxes == () and i.image_class == "no_rust" for i in survey.images)
    assert all((tmp_path / i.path).parent.name == "norust" for i in survey.images)


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_exif_orientation_round_trip(tmp_path, orientation):
    survey = synthetic.generate_survey(
        tmp_path, "voc", n_rust=1, n_clean=0, size=(200, 120), orientations=(orientation,)
    )
    truth = survey.images[0]
    data = (tmp_path / truth.path).read_bytes()
    info = images.probe(data)
    assert (info.width, info.height, info.orientation) == (200, 120, orientation)
    raw_w, raw_h = (120, 200) if orientation in (6, 8) else (200, 120)
    raw = synthetic.raw_boxes(truth.boxes, orientation, 200, 120)
    assert images.orient_boxes(raw, orientation, raw_w, raw_h) == truth.boxes


def test_voc_layout_writes_labelimg_xml(tmp_path):
    survey = synthetic.generate_survey(tmp_path, "voc", n_rust=2, n_clean=1, seed=5)
    for truth in survey.images:
        xml = (tmp_path / truth.path).with_suffix(".xml").read_text()
        assert f"<filename>{truth.path}</filename>" in xml
        assert "C:\\Users\\annotator" in xml  # annotator's path from another machine, as in real data
        assert xml.count("<object>") == len(truth.boxes)


def test_yolo_layout_with_data_yaml(tmp_path):
    survey = synthetic.generate_survey(tmp_path, "yolo", n_rust=3, n_clean=2, split="valid", box_label="corrosion")
    data = yaml.safe_load((tmp_path / "data.yaml").read_text())
    assert data["names"] == ["corrosion"] and data["nc"] == 1
    assert data["val"].startswith("C:\\")  # paths that do not exist here, like Roboflow's
    for truth in survey.images:
        label = tmp_path / truth.path.replace("/images/", "/labels/").replace(".jpg", ".txt")
        rows = [line.split() for line in label.read_text().splitlines()]
        assert len(rows) == len(truth.boxes)
        for row, box in zip(rows, truth.boxes, strict=True):
            cx, cy, w, h = map(float, row[1:])
            assert cx * truth.width == pytest.approx((box.xmin + box.xmax) / 2, abs=0.01)
            assert w * truth.width == pytest.approx(box.width, abs=0.01)
            assert h * truth.height == pytest.approx(box.height, abs=0.01)


def test_large_survey_photo_with_small_spots():
    pixels, boxes = synthetic.render(np.random.default_rng(0), 4000, 3000, 2, "steel", patch_scale=(0.01, 0.02))
    assert pixels.shape == (3000, 4000, 3)
    assert len(boxes) == 2 and all(b.width < 100 and b.height < 100 for b in boxes)


@pytest.mark.parametrize(
    "kind,reason",
    [("truncated", "corrupt_image"), ("empty", "empty_file"), ("not_image", "not_an_image"), ("huge", "too_large")],
)
def test_bad_image_files_fail_with_reason(tmp_path, kind, reason):
    survey = synthetic.generate_survey(tmp_path, "folders", n_rust=0, n_clean=0, bad_files=(kind,))
    bad = survey.bad_files[0]
    with pytest.raises(images.ImageError) as err:
        images.decode((tmp_path / bad.path).read_bytes(), bad.path)
    assert err.value.reason == reason
    assert bad.path in str(err.value)


def test_every_bad_kind_is_writable(tmp_path):
    survey = synthetic.generate_survey(tmp_path, "voc", n_rust=1, n_clean=0, bad_files=synthetic.BAD_KINDS)
    assert [b.kind for b in survey.bad_files] == list(synthetic.BAD_KINDS)
    assert all((tmp_path / b.path).exists() for b in survey.bad_files)
    bomb = next(b for b in survey.bad_files if b.kind == "xml_bomb")
    assert "<!ENTITY lol9" in (tmp_path / bomb.path).read_text()


def test_generation_is_deterministic(tmp_path):
    a = synthetic.generate_survey(tmp_path / "a", "flat", n_rust=2, n_clean=2, seed=9)
    b = synthetic.generate_survey(tmp_path / "b", "flat", n_rust=2, n_clean=2, seed=9)
    assert a.images == b.images
    assert all((a.root / i.path).read_bytes() == (b.root / i.path).read_bytes() for i in a.images)


def test_box_helpers():
    box = Box(-5, 10, 50, 130)
    assert box.clipped(40, 100) == Box(0, 10, 40, 100)
    assert Box(10, 10, 5, 20).is_valid() is False
