"""Candidate against baseline on the same photos, paired bootstrap intervals, promotion only when not worse."""

from __future__ import annotations

import json

import numpy as np
import pytest
from support import model_doubles as doubles

from corrosion.models import versions
from corrosion.testing import synthetic
from training import compare


def test_paired_bootstrap_and_verdict_on_known_scores():
    rng = np.random.default_rng(0)
    y = np.array([1] * 30 + [0] * 30)
    good = compare.Scored("good", 0.5, y, np.where(y == 1, 0.9, 0.1) + rng.normal(0, 0.05, 60))
    coin = compare.Scored("coin", 0.5, y, rng.random(60))
    worse = compare.paired_bootstrap(good, coin, draws=500)
    assert worse["roc_auc"]["baseline"] == 1.0 and worse["roc_auc"]["high"] < 0
    assert compare.verdict(worse)[0] is False and "worse on recall, roc_auc" in compare.verdict(worse)[1]
    better = compare.paired_bootstrap(coin, good, draws=500)
    assert better["roc_auc"]["low"] > 0 and compare.verdict(better)[0] is True
    same = compare.paired_bootstrap(good, good, draws=200)
    assert same["recall"]["difference"] == 0 and compare.verdict(same) == (
        True,
        "promoted: worse on none of recall, roc_auc; no figure better beyond the intervals "
        "(recall +0.000, roc_auc +0.000, precision +0.000)",
    )
    with pytest.raises(ValueError, match="same photos"):
        compare.paired_bootstrap(good, compare.Scored("x", 0.5, y[::-1], good.scores))


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
