"""Candidate against baseline on the same photos, paired bootstrap intervals, promotion only when not worse."""

from __future__ import annotations

import json

import numpy as np
import pytest
from support import model_doubles as doubles

from corrosion.models import versions
from corrosion.testing import synthetic
from training import compare
from training.comparison import bootstrap
from training.comparison.classifiers import FIGURES, Scored, same_photos


def test_paired_bootstrap_and_verdict_on_known_scores():
    rng = np.random.default_rng(0)
    y = np.array([1] * 30 + [0] * 30)
    good = Scored("good", 0.5, y, np.where(y == 1, 0.9, 0.1) + rng.normal(0, 0.05, 60))
    coin = Scored("coin", 0.5, y, rng.random(60))

    def table(baseline: Scored, candidate: Scored, draws: int) -> dict:
        return bootstrap.paired_bootstrap(baseline.figures, candidate.figures, FIGURES, np.arange(60), draws)

    worse = table(good, coin, 500)
    assert worse["roc_auc"]["baseline"] == 1.0 and worse["roc_auc"]["high"] < 0
    assert bootstrap.verdict(worse, FIGURES)[0] is False
    assert "worse on recall, roc_auc" in bootstrap.verdict(worse, FIGURES)[1]
    better = table(coin, good, 500)
    assert better["roc_auc"]["low"] > 0 and bootstrap.verdict(better, FIGURES)[0] is True
    same = table(good, good, 200)
    assert same["recall"]["difference"] == 0 and bootstrap.verdict(same, FIGURES) == (
        True,
        "promoted: worse on none of recall, roc_auc; no figure better beyond the intervals "
        "(recall +0.000, roc_auc +0.000, precision +0.000)",
    )
    with pytest.raises(ValueError, match="same photos"):
        same_photos(good, Scored("x", 0.5, y[::-1], good.scores))


def test_a_lower_is_better_figure_counts_against_a_candidate_whose_error_rose():
    error = bootstrap.Figure("mae", "error", higher_is_better=False, deciding=True)
    rows = {"mae": {"baseline": 2.0, "candidate": 6.0, "difference": 4.0, "low": 3.0, "high": 5.0}}
    assert bootstrap.verdict(rows, [error]) == (False, "not promoted: worse on mae (mae +4.000)")
    rows["mae"] |= {"difference": -4.0, "low": -5.0, "high": -3.0}
    assert bootstrap.verdict(rows, [error]) == (True, "promoted: worse on none of mae; better on mae (mae -4.000)")
    ap = bootstrap.Figure("ap", "AP", deciding=True)  # e.g. photos with no true box: AP undefined
    rows["ap"] = {"baseline": None, "candidate": None, "difference": None, "low": None, "high": None}
    assert bootstrap.verdict(rows, [error, ap]) == (
        True,
        "promoted: worse on none of mae, ap; better on mae (mae -4.000); not measurable on these photos: ap",
    )


def test_promotion_refuses_a_worse_candidate_and_accepts_a_better_one(tmp_path):
    photos = tmp_path / "photos"
    synthetic.generate_survey(photos, "folders", n_rust=12, n_clean=12, size=(96, 72), hard_negative_fraction=0.0)
    root = str(tmp_path / "root")
    good = doubles.export_colour_rule_classifier(str(tmp_path / "good"), version="classifier-good")
    coin = doubles.export_tiny_classifier(str(tmp_path / "coin"), version="classifier-coin")
    versions.publish(good, root)
    versions.promote(root, "classifier-good")

    def run(candidate: str, out: str) -> int:
        argv = ["--baseline", root, "--candidate", candidate, "--data", str(photos), "--output", str(tmp_path / out)]
        return compare.main([*argv, "--promote", root])

    assert run(coin, "c1") == 3 and versions.current(root) == "classifier-good"
    result = json.loads((tmp_path / "c1" / "comparison.json").read_text())
    assert result["promote"] is False and result["figures"]["roc_auc"]["high"] < 0
    assert "not promoted: worse on" in (tmp_path / "c1" / "comparison.md").read_text()

    versions.publish(coin, root)
    versions.promote(root, "classifier-coin")  # the weak model in use; the good one comes back
    assert run(good, "c2") == 0 and versions.current(root) == "classifier-good"
    assert json.loads((tmp_path / "c2" / "comparison.json").read_text())["figures"]["roc_auc"]["low"] > 0

    twice = ["--baseline", coin, "--candidate", good, "--data", str(photos), "--data", str(photos)]
    assert compare.main([*twice, "--output", str(tmp_path / "c3")]) == 0  # extra folders are pooled
    assert json.loads((tmp_path / "c3" / "comparison.json").read_text())["photos"] == "48 photos"


def _region_folder(root, n: int = 12, seed: int = 3) -> str:
    """LabelMe photos with exactly known rust (polygons) and a few clean ones (no shapes)."""
    from corrosion.testing import region_files as rf

    rng = np.random.default_rng(seed)
    root.mkdir(parents=True)
    for i in range(n):
        photo = rf.region_photo(rng, 96, 72, int(rng.integers(0, 3)))
        (root / f"p{i}.jpg").write_bytes(photo.jpeg())
        (root / f"p{i}.json").write_text(rf.labelme_json(f"p{i}.jpg", 96, 72, photo.polygons))
    (root / "broken.jpg").write_bytes(photo.jpeg()[:200])  # refused, and listed as refused
    (root / "broken.json").write_text(rf.labelme_json("broken.jpg", 96, 72, photo.polygons))
    return str(root)


def test_ap50_from_kept_matches_equals_cocoeval_at_any_weighting():
    from training.detector.metrics import ImageResult, ap50, box_matches, coco_metrics

    rng = np.random.default_rng(1)
    for _ in range(10):
        results = []
        for i in range(int(rng.integers(3, 20))):
            corners = rng.uniform(0, 80, (int(rng.integers(0, 4)), 2))
            truth = np.concatenate([corners, corners + rng.uniform(5, 40, corners.shape)], 1)
            found = np.concatenate([truth + rng.normal(0, 4, truth.shape), rng.uniform(0, 60, (2, 4)) + [0, 0, 30, 30]])
            results.append(ImageResult(f"i{i}", 128, 128, truth, found, rng.random(len(found))))
        matches = box_matches(results)
        assert ap50(matches) == pytest.approx(coco_metrics(results)["AP50"], abs=1e-12)
        weights = rng.integers(0, 3, len(results))
        repeated = [r for r, k in zip(results, weights, strict=True) for _ in range(k)]
        expected = coco_metrics(repeated)["AP50"] if repeated else None
        assert ap50(matches, weights) == (None if expected is None else pytest.approx(expected, abs=1e-12))


def test_group_draws_take_near_duplicates_together():
    from training.comparison import bootstrap

    groups = np.array([0, 0, 0, 1, 2, 2])
    weights = bootstrap.draws_weights(groups, draws=50, seed=0)
    assert weights.shape == (50, 6) and (weights[:, [0, 3, 4]].sum(axis=1) == 3).all()  # three groups per draw
    assert (weights[:, 0] == weights[:, 1]).all() and (weights[:, 1] == weights[:, 2]).all()
    assert (weights[:, 4] == weights[:, 5]).all() and weights[:, 0].max() > 0 and weights[:, 0].min() == 0


def test_region_models_promotion_refuses_the_worse_and_accepts_the_better(tmp_path):
    photos = _region_folder(tmp_path / "photos")
    root = str(tmp_path / "root")
    good = doubles.export_colour_rule_segmenter(str(tmp_path / "good"), version="segmenter-good")
    wrong = doubles.export_colour_rule_segmenter(str(tmp_path / "wrong"), version="segmenter-wrong", everywhere=True)
    versions.publish(good, root)
    versions.promote(root, "segmenter-good")

    def run(candidate: str, out: str) -> int:
        argv = ["--baseline", root, "--candidate", candidate, "--data", photos, "--output", str(tmp_path / out)]
        return compare.main([*argv, "--promote", root])

    assert run(wrong, "r1") == compare.REFUSED and versions.current(root) == "segmenter-good"
    result = json.loads((tmp_path / "r1" / "comparison.json").read_text())
    assert result["kind"] == "region model" and result["photos"] == "12 photos, 12 groups"
    assert result["rejects"] == [
        {"path": photos + "/broken.jpg", "reason": "corrupt_image", "detail": result["rejects"][0]["detail"]}
    ]
    mae = result["figures"]["rusted_pct_mae"]
    assert mae["baseline"] < 5 and mae["candidate"] > 50 and mae["low"] > 0  # the wrong one's error is higher
    assert "not promoted: worse on rusted_pct_mae, AP50" in result["verdict"]

    versions.publish(wrong, root)
    versions.promote(root, "segmenter-wrong")
    assert run(good, "r2") == 0 and versions.current(root) == "segmenter-good"
    text = (tmp_path / "r2" / "comparison.md").read_text()
    assert "| rusted-% MAE (points) (deciding) | lower |" in text and "better on rusted_pct_mae" in text


def test_a_classifier_is_not_compared_with_a_region_model(tmp_path):
    seg = doubles.export_colour_rule_segmenter(str(tmp_path / "seg"))
    cls = doubles.export_colour_rule_classifier(str(tmp_path / "cls"))
    with pytest.raises(SystemExit, match="the baseline is a classifier and the candidate a segmenter"):
        compare.main(["--baseline", cls, "--candidate", seg, "--data", str(tmp_path), "--output", str(tmp_path / "o")])


def test_near_duplicates_in_a_data_set_are_one_group_in_the_draws(tmp_path):
    from PIL import Image

    from corrosion.data import manifest
    from pipelines import build_dataset
    from training.comparison import regions

    folder = tmp_path / "photos"
    _region_folder(folder, n=8)
    Image.open(folder / "p1.jpg").save(folder / "p1_again.jpg", "JPEG", quality=60)  # a near-duplicate view
    (folder / "p1_again.json").write_text((folder / "p1.json").read_text().replace('"p1.jpg"', '"p1_again.jpg"'))
    build_dataset.run(["--input", str(folder), "--output_dir", str(tmp_path / "ds")])
    rows = {r.path.rsplit("/", 1)[-1]: r for r in manifest.read(str(tmp_path / "ds" / "manifest.csv"))}
    pair = rows["p1.jpg"], rows["p1_again.jpg"]
    assert pair[0].group == pair[1].group != "" and pair[0].split == pair[1].split

    photos = regions.load_photos([str(tmp_path / "ds")], pair[0].split, 96)
    index = {key: i for i, key in enumerate(photos.data.keys)}
    mine = [photos.groups[index[r.sha256]] for r in pair]
    assert mine[0] == mine[1] and photos.groups.max() + 1 == photos.groups.size - 1  # the others stand alone


def test_region_models_without_photos_to_score_say_so(tmp_path):
    seg = doubles.export_colour_rule_segmenter(str(tmp_path / "seg"))
    (tmp_path / "empty").mkdir()
    argv = ["--baseline", seg, "--candidate", seg, "--data", str(tmp_path / "empty"), "--output", str(tmp_path / "o")]
    with pytest.raises(SystemExit, match="training.compare: no photo with rust masks, boxes or no_rust labels"):
        compare.main(argv)


def test_a_detector_is_compared_with_a_segmenter_by_its_box_union_and_its_own_boxes(tmp_path):
    photos = _region_folder(tmp_path / "photos")
    seg = doubles.export_colour_rule_segmenter(str(tmp_path / "seg"), version="segmenter-good")
    det = doubles.export_colour_rule_detector(str(tmp_path / "det"), input_size=96, version="detector-box")
    argv = ["--baseline", seg, "--candidate", det, "--data", photos, "--output", str(tmp_path / "o")]
    compare.main(argv)
    result = json.loads((tmp_path / "o" / "comparison.json").read_text())
    mae, ap = result["figures"]["rusted_pct_mae"], result["figures"]["AP50"]
    assert result["versions"] == {"baseline": "segmenter-good", "candidate": "detector-box"}
    assert mae["candidate"] > mae["baseline"]  # one box around all the rust covers clean steel too
    assert 0 < ap["candidate"] <= 1 and ap["draws"] > 0
