"""Choosing the rust-region model across seeds: figures read back, mean ± sd, a call only beyond the spread."""

from __future__ import annotations

import json

import pytest

from training import compare_region_models as crm


def _segmenter(data: str, mae: float) -> dict:
    pooled = {"rusted_pct_mae": mae, "d610_within_1": 0.9, "pixel_f1": 0.7, "pixel_iou": 0.55, "AP50": 0.06}
    return {"kind": "segmenter", "data": {data: {"validation": {"pooled": pooled}}}}


def _detector(mae: float, ap50: float) -> dict:
    area = {"rusted_pct_mae": mae, "d610_within_1": 0.5, "pixel_f1": 0.45, "pixel_iou": 0.29, "AP50": 0.02}
    return {
        "kind": "detector",
        "splits": {"validation": {"AP50": ap50, "AP": 0.03}},
        "rusted_area": {"validation": {"pooled": area}},
    }


def test_scored_models_are_read_back_summarised_and_the_clear_winner_called(tmp_path):
    data = str(tmp_path / "ds")
    runs = {
        "s1": _segmenter(data, 4.0),
        "s2": _segmenter(data, 5.0),
        "d1": _detector(20.0, 0.10),
        "d2": _detector(19.0, 0.08),
    }
    for name, result in runs.items():
        (tmp_path / "out" / name).mkdir(parents=True)
        (tmp_path / "out" / name / "metrics.json").write_text(json.dumps(result))
    result, text = crm.compare(
        [str(tmp_path / "models" / "s1"), str(tmp_path / "models" / "s2")],
        [str(tmp_path / "models" / "d1"), str(tmp_path / "models" / "d2")],
        data,
        "validation",
        str(tmp_path / "out"),
    )
    seg, det = result["summary"]["segmenter"], result["summary"]["detector"]
    assert seg["rusted_pct_mae"] == {"mean": 4.5, "sd": pytest.approx(0.7071, abs=1e-4), "runs": 2}
    assert det["AP50"]["mean"] == pytest.approx(0.09)  # the detector's own boxes, not its union's regions
    assert det["pixel_f1"]["mean"] == pytest.approx(0.45)
    assert result["winner"] == "segmenter"
    assert "| rusted-% MAE (points) | 4.500 ± 0.707 | 19.500 ± 0.707 |" in text
    assert json.loads((tmp_path / "out" / "comparison.json").read_text())["winner"] == "segmenter"
    assert (tmp_path / "out" / "comparison.md").read_text() == text


def test_no_call_within_the_seeds_spread():
    table = {
        "segmenter": {"rusted_pct_mae": {"mean": 4.0, "sd": 1.0, "runs": 3}},
        "detector": {"rusted_pct_mae": {"mean": 4.8, "sd": 0.2, "runs": 3}},
    }
    winner, verdict = crm.choose(table)
    assert winner is None and "within the seeds' spread (1.00)" in verdict
    assert crm.choose({"segmenter": table["segmenter"]})[0] is None


def test_the_comparison_goes_into_the_shipped_models_card_and_replaces_itself_on_a_rerun(tmp_path):
    model = tmp_path / "seg"
    model.mkdir()
    card = "# Model card\n\n## Metrics\nfigures\n\n## Configuration\n`a: 1`\n"
    (model / "model_card.md").write_text(card)
    first = "## Rust-region model choice (validation split, mean ± sd over seeds)\n\nold table\n"
    crm.write_to_card(str(model), {"winner": "segmenter"}, first)
    written = (model / "model_card.md").read_text()
    assert written == "# Model card\n\n## Metrics\nfigures\n\n" + first + "\n## Configuration\n`a: 1`\n"
    crm.write_to_card(str(model), {"winner": "detector"}, first.replace("old", "new"))
    again = (model / "model_card.md").read_text()
    assert again == written.replace("old table", "new table")
    assert json.loads((model / crm.CHOICE_FILE).read_text()) == {"winner": "detector"}
    with pytest.raises(FileNotFoundError, match="no model card"):
        crm.write_to_card(str(tmp_path / "missing"), {}, first)
