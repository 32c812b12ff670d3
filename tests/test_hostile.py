"""The three tools on a hostile corpus (``corrosion.testing.hostile``): every input accounted for, with the
right reason, no crash, no hang (each tool runs as a subprocess under a timeout).

``HOSTILE_SEED`` picks another corpus (names and contents differ), e.g. to try one nobody ran yet.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from support import model_doubles as doubles

from corrosion.core import paths
from corrosion.testing import hostile

REPO = Path(__file__).resolve().parent.parent
SEED = int(os.environ.get("HOSTILE_SEED", "20261202"))
TIMEOUT_S = 300  # far above a normal run (10 s); a hang fails the test instead of the suite

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("hostile")


@pytest.fixture(scope="module")
def corpus(work) -> hostile.Corpus:
    return hostile.generate_corpus(work / "corpus" / "root", SEED)


@pytest.fixture(scope="module")
def models(work) -> dict[str, str]:
    return {
        "classifier": doubles.export_tiny_classifier(str(work / "classifier"), lite=True),
        "detector": doubles.export_colour_rule_detector(str(work / "detector"), input_size=64),
    }


def run_tool(module: str, *args: str) -> subprocess.CompletedProcess:
    """A tool as users run it, in its own interpreter, killed if it hangs."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2"}
    try:
        done = subprocess.run(
            [sys.executable, "-m", module, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=TIMEOUT_S
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{module} hung on the hostile corpus (no result in {TIMEOUT_S} s): {exc.stderr}")
    assert done.returncode == 0, f"{module} failed:\n{done.stderr[-4000:]}"
    return done


def shown(corpus: hostile.Corpus, case: hostile.Case) -> str:
    """The name a case's rows carry: its absolute path, printable (``paths.display``)."""
    return paths.display(f"{corpus.root}/{case.path}")


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def one_record_per_line(path: Path) -> None:
    """RFC 4180 records that never span lines: line-based readers (``--skip_processed``) see each whole."""
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(read_csv(path)) + 1, f"{path}: a record spans lines"


# ---------------------------------------------------------------- build_dataset


@pytest.fixture(scope="module")
def dataset(work, corpus) -> Path:
    out = work / "dataset"
    run_tool("pipelines.build_dataset", "--input", str(corpus.root), "--output_dir", str(out))
    return out


def test_build_dataset_gives_every_hostile_image_a_manifest_row_with_its_reason(corpus, dataset):
    manifest = read_csv(dataset / "manifest.csv")
    one_record_per_line(dataset / "manifest.csv")
    by_path = {}
    for row in manifest:
        assert row["path"] not in by_path, f"two manifest rows for {row['path']}"
        by_path[row["path"]] = row
    image_cases = [c for c in corpus.cases if c.dataset not in (hostile.USED, hostile.IGNORED) and _is_image(c)]
    assert sorted(by_path) == sorted(shown(corpus, c) for c in image_cases)  # no input missing, none invented
    for case in image_cases:
        row = by_path[shown(corpus, case)]
        if case.dataset == hostile.KEPT:
            assert row["status"] == "kept", (case.kind, row)
        else:
            assert (row["status"], row["reason"]) == ("rejected", case.dataset), (case.kind, row)
    stats = json.loads((dataset / "stats.json").read_text())
    assert stats["records_total"] == sum(c.dataset == hostile.KEPT for c in image_cases)


def test_build_dataset_rejects_each_hostile_annotation_file_with_its_reason(corpus, dataset):
    rejects = [json.loads(line) for line in (dataset / "rejects.jsonl").read_text().splitlines()]
    reasons: dict[str, set[str]] = {}
    for r in rejects:
        reasons.setdefault(r["path"], set()).add(r["reason"])
        assert len(r["detail"]) < 600 and r["path"] in r["detail"]  # short, and names the file
    for case in corpus.cases:
        if _is_image(case):
            continue
        if case.dataset in (hostile.USED, hostile.IGNORED):
            assert shown(corpus, case) not in reasons, (case.kind, reasons.get(shown(corpus, case)))
        else:
            assert case.dataset in reasons.get(shown(corpus, case), set()), (case.kind, case.path)


def test_build_dataset_shards_hold_scaled_pixels_and_finite_boxes(corpus, dataset):
    import tensorflow as tf

    from training.common import records

    records = [
        ex for split in records.available_splits(str(dataset)) for ex in records.parsed_dataset(str(dataset), split)
    ]
    assert len(records) == sum(c.dataset == hostile.KEPT for c in corpus.cases)
    names = {}
    for ex in records:
        pixels = tf.io.decode_image(ex["encoded"], channels=3, expand_animations=False).numpy()
        names[ex["filename"].numpy().decode()] = pixels
        assert np.isfinite(ex["boxes"].numpy()).all()
    wide = next(p for n, p in names.items() if n.startswith("wide_"))
    assert wide.shape == (1, 70_000, 3)  # too wide for JPEG: stored as PNG, not a crash
    greys = [p for n, p in names.items() if n.startswith("grey16_")]
    assert len(greys) == 2 and not np.array_equal(greys[0], greys[1])
    for grey in greys:  # 16-bit values above 255 scaled, not clipped to white
        assert 0 < grey.mean() < 250 and grey.std() > 0


# ---------------------------------------------------------------- batch inference


def _night(work: Path, corpus: hostile.Corpus, models: dict, name: str) -> dict:
    out = work / name
    done = run_tool(
        "pipelines.batch_inference",
        "--input", f"{corpus.root}/**",
        "--classifier", models["classifier"],
        "--detector", models["detector"],
        "--output", str(out),
        "--survey_id", "hostile",
        "--run_date", "2026-12-01",
        "--report", str(out / "report" / "survey.html"),
    )  # fmt: skip
    summary = json.loads(done.stdout[done.stdout.index("{") :])
    night = out / "date=2026-12-01"
    return {
        "summary": summary,
        "results": sorted(night.glob("hostile-results-*.csv")),
        "errors": sorted(night.glob("hostile-errors-*.csv")),
    }


@pytest.fixture(scope="module")
def night(work, corpus, models) -> dict:
    return _night(work, corpus, models, "night")


def test_batch_inference_gives_every_hostile_input_a_result_or_an_error_row(corpus, night):
    rows = [r for p in night["results"] for r in read_csv(p)]
    errors = [e for p in night["errors"] for e in read_csv(p)]
    for p in night["results"] + night["errors"]:
        one_record_per_line(p)
    scored = [c for c in corpus.cases if c.inference == hostile.SCORED]
    assert sorted(r["image_uri"] for r in rows) == sorted(shown(corpus, c) for c in scored)
    by_uri = {e["image_uri"]: e for e in errors}
    failed = [c for c in corpus.cases if c.inference != hostile.SCORED]
    assert len(errors) == len(by_uri) == len(failed)
    for case in failed:
        error = by_uri[shown(corpus, case)]
        assert error["reason"] == case.inference, (case.kind, error)
        assert shown(corpus, case) in error["message"]
    summary = night["summary"]
    assert summary["all_inputs_accounted_for"]
    assert summary["counters"]["files_matched"] == len(corpus.cases)
    assert summary["counters"]["images_scored"] == len(scored)


def test_batch_inference_error_rows_are_identical_between_identical_runs(work, corpus, models, night):
    again = _night(work, corpus, models, "night_again")
    first = sorted(tuple(e.values()) for p in night["errors"] for e in read_csv(p))
    second = sorted(tuple(e.values()) for p in again["errors"] for e in read_csv(p))
    assert first == second


def test_batch_inference_report_lists_hostile_names_escaped(corpus, night):
    html = (Path(night["summary"]["report"])).read_text(encoding="utf-8")
    assert "line\\nbreak" in html and "line\nbreak" not in html
    assert "quote&quot;,comma" in html


# ---------------------------------------------------------------- training.evaluate


@pytest.fixture(scope="module")
def evaluation(work, corpus, models) -> Path:
    out = work / "evaluation"
    run_tool("training.evaluate", "--model_dir", models["classifier"], "--data", str(corpus.root), "--output", str(out))
    return out


def test_evaluate_scores_every_usable_image_and_rejects_the_rest_with_reasons(corpus, evaluation):
    out = evaluation
    metrics = json.loads((out / "metrics.json").read_text())
    predictions = read_csv(out / "predictions_all.csv")
    one_record_per_line(out / "predictions_all.csv")
    kept = [c for c in corpus.cases if c.dataset == hostile.KEPT]
    assert sorted(p["filename"] for p in predictions) == sorted(shown(corpus, c) for c in kept)
    rejected = {(f["path"], f["reason"]) for f in metrics["rejects"]["files"]}
    for case in corpus.cases:
        if case.dataset not in (hostile.KEPT, hostile.USED, hostile.IGNORED):
            assert (shown(corpus, case), case.dataset) in rejected, case.kind
    ignored = {shown(corpus, c) for c in corpus.cases if c.dataset == hostile.IGNORED}
    assert ignored <= set(metrics["ignored_files"])


def _is_image(case: hostile.Case) -> bool:
    return paths.is_image(case.path) and "/labels/" not in case.path


# ---------------------------------------------------------------- links out of the corpus, loops (every tool)

LINK_KINDS = ("link_outside_folder", "link_outside_file", "link_loop")


def test_each_tool_gives_an_escaping_link_and_a_loop_their_row_and_lists_nothing_behind_them(
    corpus, dataset, night, evaluation
):
    links = [c for c in corpus.cases if c.kind in LINK_KINDS]
    names = {shown(corpus, c) for c in links}
    assert sorted(c.dataset for c in links) == ["link_loop", "link_outside_input", "link_outside_input"]
    rejects = [json.loads(line) for line in (dataset / "rejects.jsonl").read_text().splitlines()]
    errors = [e for p in night["errors"] for e in read_csv(p)]
    metrics = json.loads((evaluation / "metrics.json").read_text())
    for rows, path, outcome in (
        (rejects, "path", "dataset"),
        (errors, "image_uri", "inference"),
        (metrics["rejects"]["files"], "path", "dataset"),
    ):
        found = sorted((r[path], r["reason"]) for r in rows if r[path] in names)
        assert found == sorted((shown(corpus, c), getattr(c, outcome)) for c in links), outcome  # once each
    behind = tuple(f"{n}/" for n in names) + tuple(str(o) for o in corpus.outside)
    listed = [r["path"] for r in read_csv(dataset / "manifest.csv")] + [r["path"] for r in rejects]
    listed += [r["image_uri"] for p in night["results"] for r in read_csv(p)] + [e["image_uri"] for e in errors]
    listed += [r["filename"] for r in read_csv(evaluation / "predictions_all.csv")]
    assert not [n for n in listed if n.startswith(behind)]  # nothing under a link that was not followed
    linked = next(c for c in corpus.cases if c.kind == "symlinked_folder")  # followed: its photo once, no row
    assert listed.count(shown(corpus, linked)) == 3  # its manifest row, result row and prediction
    link = shown(corpus, hostile.Case("", "norust/linked", "", ""))
    assert not [n for n in listed if n == link or n.startswith(f"{link}/")]


def test_corpus_cases_cover_every_class_named_in_the_issue(corpus):
    kinds = {c.kind for c in corpus.cases}
    assert {
        "undecodable_name", "voc_size_nan", "voc_size_overflow", "yolo_mixed_keys", "yolo_data_yaml_folder",
        "wider_than_jpeg", "fifo", "yolo_alias_bomb", "voc_box_nan", "grey16", "int32", "float32",
        "yolo_names_by_id", "newline_name", "dangling_symlink", "symlinked_folder", "brackets_in_folder",
        "backslash_name", "voc_bom", "yolo_bom", "voc_oversized_xml", "voc_bogus_encoding", "yolo_same_stem",
        *LINK_KINDS,
    } <= kinds  # fmt: skip


# ---------------------------------------------------------------- careless nights (in process)


def _photos(folder: Path, names: list[str], seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    for name in names:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(hostile.photo_jpeg(rng, True)[0])


def _run(models: dict, *args: str) -> dict:
    from pipelines import batch_inference

    return batch_inference.run(["--classifier", models["classifier"], "--run_date", "2026-12-01", *args])


def _rows(pattern: str) -> list[dict]:
    return [r for p in sorted(Path("/").glob(pattern.lstrip("/"))) for r in read_csv(p)]


def test_input_list_entries_are_literal_paths_relative_to_the_list(tmp_path, models):
    survey = tmp_path / "survey"
    _photos(survey, ["site[1]/a.jpg", "star*.jpg", "b.jpg", "sub/c.jpg", "back\\slash.jpg"])
    listed = survey / "tonight.txt"
    listed.write_bytes(
        "\ufeffsite[1]/a.jpg\n"  # relative, with brackets, after a byte-order mark
        f"{survey}/star*.jpg\n# a comment\n\n"  # a literal star: only that file, not every .jpg
        "b.jpg\n  b.jpg  \n"  # twice: one input
        "missing.jpg\nsub\nback\\slash.jpg\n".encode()
    )
    summary = _run(models, "--input_list", str(listed), "--output", str(tmp_path / "out"))
    rows, errors = _rows(summary["results"]), _rows(summary["errors"])
    assert sorted(r["image_uri"] for r in rows) == sorted(
        str(survey / n) for n in ("site[1]/a.jpg", "star*.jpg", "b.jpg", "back\\slash.jpg")
    )
    assert {(e["image_uri"], e["reason"]) for e in errors} == {
        (str(survey / "missing.jpg"), "missing_file"),
        (str(survey / "sub"), "is_a_folder"),
    }
    assert summary["all_inputs_accounted_for"] and summary["counters"]["files_missing"] == 1


def test_survey_ids_that_sanitise_alike_keep_their_own_files(tmp_path, models):
    from pipelines.batch_inference import survey_file_stem

    _photos(tmp_path / "survey", ["a.jpg"])
    out = tmp_path / "out"
    for survey_id in ("Корпус-7", "Палуба-7"):
        _run(models, "--input", f"{tmp_path}/survey/*.jpg", "--output", str(out), "--survey_id", survey_id)
    stems = {survey_file_stem("Корпус-7"), survey_file_stem("Палуба-7")}
    assert len(stems) == 2 and survey_file_stem("hull-7") == "hull-7"
    for stem, survey_id in zip(sorted(stems), sorted(("Корпус-7", "Палуба-7"), key=survey_file_stem), strict=True):
        assert [r["survey_id"] for r in _rows(f"{out}/date=2026-12-01/{stem}-results-*.csv")] == [survey_id]


def test_rerunning_a_clean_night_keeps_its_errors_file_and_replaces_its_rows(tmp_path, models):
    _photos(tmp_path / "survey", ["a.jpg", "b.jpg"])
    args = ["--input", f"{tmp_path}/survey/*.jpg", "--output", str(tmp_path / "out"), "--survey_id", "s"]
    night = tmp_path / "out" / "date=2026-12-01"
    seen = []
    for _ in range(3):  # Beam skips a shard whose size matches the one already there: every run must still land
        _run(models, *args)
        errors = sorted(night.glob("s-errors-*.csv"))
        assert errors and all(read_csv(p) == [] for p in errors)
        seen.append(sorted((r["image_uri"], r["rust_probability"]) for r in _rows(f"{night}/s-results-*.csv")))
    assert seen[0] == seen[1] == seen[2] and len(seen[0]) == 2
    assert not list(night.glob(".staging-*"))


def test_skip_processed_reads_old_results_with_stray_bytes(tmp_path, models):
    _photos(tmp_path / "survey", ["a.jpg", "b.jpg"])
    args = ["--input", f"{tmp_path}/survey/*.jpg", "--output", str(tmp_path / "out"), "--survey_id", "s"]
    first = _run(models, *args)
    old = sorted(Path("/").glob(first["results"].lstrip("/")))[0]
    old.write_bytes(old.read_bytes() + b"/survey/caf\xe9.jpg,not-a-sha,1,1,0.5,true,,,,,v,,s,x\n")
    second = _run(models, *args, "--skip_processed", str(tmp_path / "out"), "--run_date", "2026-12-02")
    assert second["counters"]["images_skipped"] == 2 and second["all_inputs_accounted_for"]


def test_outputs_written_inside_the_survey_are_not_scored_the_next_night(tmp_path, models):
    survey = tmp_path / "survey"
    _photos(survey, ["a.jpg", "deck/b.jpg"])
    args = ["--input", f"{survey}/**", "--output", str(survey / "results"), "--report", str(survey / "report.html")]
    args += ["--detector", models["detector"]]
    first = _run(models, *args)
    second = _run(models, *args, "--run_date", "2026-12-02")
    assert list((survey / "previews").glob("*.jpg"))  # previews were written inside the survey...
    assert first["counters"]["files_matched"] == second["counters"]["files_matched"] == 2  # ...and not re-read


def test_a_survey_id_that_looks_like_a_formula_is_written_as_text(tmp_path, models):
    _photos(tmp_path / "survey", ["a.jpg"])
    out = tmp_path / "out"
    summary = _run(models, "--input", f"{tmp_path}/survey/*.jpg", "--output", str(out), "--survey_id", "=1+1")
    assert [r["survey_id"] for r in _rows(summary["results"])] == ["'=1+1"]


def test_an_output_prefix_with_glob_characters_is_refused_before_any_work(tmp_path, models):
    _photos(tmp_path / "survey", ["a.jpg"])
    with pytest.raises(SystemExit, match="may not hold"):
        _run(models, "--input", f"{tmp_path}/survey/*.jpg", "--output", str(tmp_path / "out[1]"))
    assert not (tmp_path / "out[1]").exists()


# ---------------------------------------------------------------- memory


MEMORY_BUDGET_MB = 1024  # what one photo at the size limits may add to the job's peak (measured: ~700)


def test_the_largest_accepted_photos_stay_within_the_memory_budget(tmp_path):
    """Peak RSS of the whole job (own interpreter) on a 100 MP PNG and a 60 MP JPEG, against the same
    job on a 1 MP photo in this run. Before bounded decoding the PNG alone took 5.3 GB."""
    from benchmarks.bench_memory import models, night_peak_mb, write_photos

    classifier, detector = models(tmp_path)
    photos = write_photos(tmp_path)
    baseline = night_peak_mb(tmp_path, photos["small"], classifier, detector)
    for name in ("png100", "jpeg60"):
        peak = night_peak_mb(tmp_path, photos[name], classifier, detector)
        assert peak - baseline < MEMORY_BUDGET_MB, f"{name}: {peak:.0f} MB peak vs {baseline:.0f} MB baseline"


def test_an_input_list_with_a_latin1_name_gives_that_file_its_row(tmp_path, models):
    survey = tmp_path / "survey"
    _photos(survey, ["a.jpg"])
    latin1 = os.fsencode(survey) + b"/caf\xe9.jpg"
    with open(latin1, "wb") as handle:
        handle.write((survey / "a.jpg").read_bytes())
    (survey / "caf\\xe9.jpg").write_bytes(b"a file really named with a backslash")
    listed = survey / "list.txt"
    listed.write_bytes(b"a.jpg\n" + latin1 + b"\ncaf\\xe9.jpg\n")
    summary = _run(models, "--input_list", str(listed), "--output", str(tmp_path / "out"))
    assert [r["image_uri"] for r in _rows(summary["results"])] == [str(survey / "a.jpg")]
    assert sorted(e["reason"] for e in _rows(summary["errors"])) == ["not_an_image", "undecodable_name"]
    assert summary["counters"]["files_matched"] == 3 and summary["all_inputs_accounted_for"]


def test_a_folder_as_input_says_how_to_name_its_files(tmp_path, models):
    _photos(tmp_path / "survey", ["a.jpg"])
    with pytest.raises(SystemExit, match=r"is a folder: give '.*/survey/\*'"):
        _run(models, "--input", str(tmp_path / "survey"), "--output", str(tmp_path / "out"))
    summary = _run(models, "--input", f"{tmp_path}/survey/", "--output", str(tmp_path / "out"))
    assert summary["counters"]["images_scored"] == 1  # a trailing slash: every file in it, as Beam reads it


def test_rerunning_one_survey_leaves_a_survey_named_like_its_shards_alone(tmp_path, models):
    _photos(tmp_path / "survey", ["a.jpg"])
    out = tmp_path / "out"
    for survey_id in ("A-results-1", "A", "A"):
        _run(models, "--input", f"{tmp_path}/survey/*.jpg", "--output", str(out), "--survey_id", survey_id)
    assert len(_rows(f"{out}/date=2026-12-01/A-results-1-results-*.csv")) == 1
    assert len(_rows(f"{out}/date=2026-12-01/A-results-0*.csv")) == 1


def test_a_nul_byte_in_an_input_list_is_that_lines_row(tmp_path, models):
    _photos(tmp_path / "survey", ["a.jpg"])
    listed = tmp_path / "survey" / "list.txt"
    listed.write_bytes(b"a.jpg\nb.jpg\x00\n")
    summary = _run(models, "--input_list", str(listed), "--output", str(tmp_path / "out"))
    assert [e["reason"] for e in _rows(summary["errors"])] == ["invalid_name"]
    assert summary["counters"]["images_scored"] == 1 and summary["all_inputs_accounted_for"]
