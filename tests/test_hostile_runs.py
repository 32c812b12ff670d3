"""Hostile lists, trees and runs (``corrosion.testing.hostile_runs``): links out of the input and
loops, lists in any encoding and line end, names with spaces, empty patterns, lost inputs, outputs
that cannot be written, dash-leading values, evaluate's rejects for every model kind.

Every run here is in process (a few seconds each); the large measurements (100,000-line lists,
10,000 photos, memory) are commands in docs/hostile-inputs.md, never timed assertions here.
"""

from __future__ import annotations

import errno
import json
import os
import re
import threading
from pathlib import Path

import apache_beam as beam
import numpy as np
import pytest
from support import model_doubles as doubles

from corrosion import cli
from corrosion.core import io_utils, listing, paths
from corrosion.testing import hostile_runs, synthetic
from pipelines import batch_inference, build_dataset
from pipelines.inference import transforms

SEED = int(os.environ.get("HOSTILE_SEED", "20261207"))


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, str]:
    work = tmp_path_factory.mktemp("hostile_runs_models")
    return {
        "classifier": doubles.export_colour_rule_classifier(str(work / "classifier"), input_size=32),
        "detector": doubles.export_colour_rule_detector(str(work / "detector"), input_size=32),
        "segmenter": doubles.export_colour_rule_segmenter(str(work / "segmenter"), input_size=32),
    }


def _night(models: dict, *args: str) -> dict:
    return batch_inference.run(["--classifier", models["classifier"], "--run_date", "2026-12-07", *args])


def _rows(pattern: str) -> list[dict]:
    import csv

    out = []
    for path in sorted(Path("/").glob(pattern.lstrip("/"))):
        with open(path, newline="", encoding="utf-8") as handle:
            out += list(csv.DictReader(handle))
    return out


def _shown(root: Path, rel: str) -> str:
    return paths.display(f"{root}/{rel}")


# ---------------------------------------------------------------- 7: links out of the input, loops


def test_links_out_of_the_input_and_loops_are_problems_naming_the_link(tmp_path):
    tree = hostile_runs.link_tree(tmp_path, SEED)
    found = listing.walk(str(tree.root))
    problems = {f.path: f.reason for f in found if isinstance(f, listing.Problem)}
    files = [f.path for f in found if isinstance(f, listing.Found)]
    assert problems == {_shown(tree.root, c.path): c.dataset for c in tree.cases if c.dataset != hostile_runs.KEPT}
    assert files == [_shown(tree.root, c.path) for c in tree.cases if c.dataset == hostile_runs.KEPT]
    detail = next(f.detail for f in found if isinstance(f, listing.Problem) and f.reason == listing.LINK_OUTSIDE)
    assert "--follow_links_outside" in detail
    os.unlink(tree.root / next(c.path for c in tree.cases if c.kind == "link_to_root"))  # never walk / in a test
    followed = listing.walk(str(tree.root), follow_outside=True)
    names = {paths.relative(f.path, str(tree.root)) for f in followed if isinstance(f, listing.Found)}
    assert {c.path for c in tree.cases if c.kind == "link_to_outside_file"} <= names
    assert any(n.startswith("norust/mounted_") and n.endswith(".jpg") for n in names)
    assert [f.reason for f in followed if isinstance(f, listing.Problem)] == [listing.LINK_LOOP]


def test_a_glob_reports_a_folder_link_it_would_have_walked_into(tmp_path):
    tree = hostile_runs.link_tree(tmp_path, SEED)
    deep = {paths.relative(f.path, str(tree.root)) for f in listing.match_glob(f"{tree.root}/*/*/*.jpg")}
    assert deep == {c.path for c in tree.cases if c.kind in ("link_to_root", "link_to_outside_folder", "loop")}
    shallow = listing.match_glob(f"{tree.root}/norust/*.jpg")  # the pattern never enters those folders
    assert [(paths.relative(f.path, str(tree.root)), f.reason) for f in shallow] == [
        (c.path, "link_outside_input") for c in tree.cases if c.kind == "link_to_outside_file"
    ]


def test_build_dataset_rejects_each_escaping_link_and_loop_by_name(tmp_path):
    tree = hostile_runs.link_tree(tmp_path, SEED)
    stats = build_dataset.run(["--input", str(tree.root), "--output_dir", str(tmp_path / "out")])
    rejects = [json.loads(line) for line in (tmp_path / "out" / "rejects.jsonl").read_text().splitlines()]
    assert sorted((r["path"], r["reason"]) for r in rejects) == sorted(
        (_shown(tree.root, c.path), c.dataset) for c in tree.cases if c.dataset != hostile_runs.KEPT
    )
    assert stats["records_total"] == 1  # the one real photo, once (the link inside the tree is no second copy)


def test_batch_inference_gives_each_escaping_link_an_error_row(tmp_path, models):
    tree = hostile_runs.link_tree(tmp_path, SEED)
    summary = _night(models, "--input", f"{tree.root}/**", "--output", str(tmp_path / "out"))
    errors = {(e["image_uri"], e["reason"]) for e in _rows(summary["errors"])}
    assert errors == {(_shown(tree.root, c.path), c.inference) for c in tree.cases if c.inference != "scored"}
    assert [r["image_uri"] for r in _rows(summary["results"])] == [
        _shown(tree.root, c.path) for c in tree.cases if c.inference == "scored"
    ]
    assert summary["inputs"] == len(tree.cases) and summary["all_inputs_accounted_for"]


# ---------------------------------------------------------------- 11, 14: encodings, line ends, spaces


def test_every_encoding_and_line_end_gives_the_same_entries_and_a_wide_list_is_refused(tmp_path):
    night, lists = hostile_runs.input_lists(tmp_path, SEED)
    for case in lists:
        if case.refused:
            with pytest.raises(listing.ListError, match=r"list_utf16_no_bom.txt: .* NUL.*save it as UTF-8"):
                transforms.input_list_entries(str(case.path))
            continue
        entries = [e for _, e in transforms.input_list_entries(str(case.path))]
        assert entries == [str(night / n) for n in case.entries], case.kind  # spaces kept, blank line skipped


def test_a_listed_name_keeps_its_spaces_and_an_indented_name_still_finds_its_file(tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"a")
    (tmp_path / "b.jpg ").write_bytes(b"b")
    lines = ["  a.jpg", "b.jpg ", "b.jpg", "   ", "  # comment"]
    assert [transforms.input_list_entry(line, str(tmp_path / "l.txt")) for line in lines] == [
        str(tmp_path / "a.jpg"),  # no file "  a.jpg": the indented name means a.jpg
        str(tmp_path / "b.jpg "),  # the file whose name ends in a space
        str(tmp_path / "b.jpg"),  # missing, named as written
        None,
        None,
    ]
    (tmp_path / "   ").write_bytes(b"c")  # a file named by spaces alone is listed, not skipped
    assert transforms.input_list_entry("   ", str(tmp_path / "l.txt")) == str(tmp_path / "   ")


def test_a_utf16_list_with_cr_line_ends_scores_every_photo(tmp_path, models):
    night, lists = hostile_runs.input_lists(tmp_path, SEED)
    case = next(c for c in lists if c.kind == "utf16_le_bom_cr")
    summary = _night(models, "--input_list", str(case.path), "--output", str(tmp_path / "out"))
    assert sorted(r["image_uri"] for r in _rows(summary["results"])) == sorted(str(night / n) for n in case.entries)
    assert _rows(summary["errors"]) == [] and summary["inputs"] == len(case.entries) == 4


def test_a_list_without_a_byte_order_mark_in_utf16_is_refused_naming_it(tmp_path, models):
    _, lists = hostile_runs.input_lists(tmp_path, SEED)
    wide = next(c for c in lists if c.refused)
    with pytest.raises(SystemExit, match=rf"--input_list {re.escape(str(wide.path))}: .*UTF-16"):
        _night(models, "--input_list", str(wide.path), "--output", str(tmp_path / "out"))


# ---------------------------------------------------------------- 12: a pattern that matches nothing


def test_a_pattern_matching_nothing_fails_unless_an_empty_night_is_allowed(tmp_path, models):
    (tmp_path / "survey").mkdir()
    pattern = f"{tmp_path}/survey/*.JPG"
    with pytest.raises(SystemExit, match=rf"--input {re.escape(pattern)} matches no file.*--allow_empty"):
        _night(models, "--input", pattern, "--output", str(tmp_path / "out"))
    assert not (tmp_path / "out" / "date=2026-12-07").exists()
    summary = _night(models, "--input", pattern, "--output", str(tmp_path / "out"), "--allow_empty")
    assert summary["inputs"] == 0 and summary["all_inputs_accounted_for"]


# ---------------------------------------------------------------- 8: every input has a row, counted from the files


def _photos(folder: Path, count: int) -> list[Path]:
    rng = np.random.default_rng(SEED)
    return [hostile_runs._write(folder / f"p{i}.jpg", hostile_runs.photo(rng)) for i in range(count)]


def test_a_run_that_loses_an_input_fails_naming_it_and_a_whole_one_passes(tmp_path, models, monkeypatch):
    photos = _photos(tmp_path / "survey", 6)
    latin1 = os.fsencode(tmp_path / "survey") + b"/caf\xe9.jpg"  # staged and counted with its bytes intact
    with open(latin1, "wb") as handle:
        handle.write(photos[0].read_bytes())
    listed = tmp_path / "survey" / "list.txt"
    listed.write_bytes("".join(f"{p.name}\n" for p in photos).encode() + b"caf\xe9.jpg\ngone.jpg\n")
    args = ["--input_list", str(listed), "--output", str(tmp_path / "out")]
    whole = _night(models, *args)
    assert whole["inputs"] == 8 and whole["rows"] == {"results": 6, "errors": 2, "skipped": 0}
    lost = str(photos[3])
    resolve = transforms.ResolveInput.process
    monkeypatch.setattr(  # a pipeline that drops one input on the way, as Beam's timed flush did
        transforms.ResolveInput,
        "process",
        lambda self, line: [] if json.loads(line).get("entry") == lost else resolve(self, line),
    )
    with pytest.raises(SystemExit, match=rf"^1 of 8 inputs got no row in .* = 7\): {re.escape(lost)}; the run summary"):
        batch_inference.main(["--classifier", models["classifier"], "--run_date", "2026-12-07", *args])
    summary = json.loads(Path(whole["results"].replace("results-*.csv", "summary.json")).read_text())
    assert summary["all_inputs_accounted_for"] is False and summary["missing"] == [lost]
    counters = summary["counters"]  # the old check, from counters that never saw the lost input, found no fault
    assert counters["files_matched"] + counters["files_missing"] == 7 == counters["images_scored"] + 2
    assert summary["rows"]["results"] == 5


def _drop_what_the_timer_thread_flushes(monkeypatch) -> None:
    """Beam's race made certain: a flush from the periodic-flush thread discards the buffer."""
    from apache_beam.runners.worker import data_plane

    flush = data_plane.SizeBasedBufferingClosableOutputStream.flush

    def lossy(self):
        if isinstance(threading.current_thread(), data_plane.PeriodicThread):
            self._clear()
            return
        flush(self)

    monkeypatch.setattr(data_plane.SizeBasedBufferingClosableOutputStream, "flush", lossy)


def _grouped_count(pipeline: beam.Pipeline, n: int, tmp_path: Path) -> int:
    import time

    out = tmp_path / f"grouped-{id(pipeline)}"
    _ = (
        pipeline
        | beam.Create(range(n))
        | beam.Map(lambda i: (time.sleep(0.01), (i % 7, i))[1])  # a bundle longer than the 1 s flush timer
        | beam.GroupByKey()
        | beam.Map(lambda kv: len(kv[1]))
        | beam.io.WriteToText(str(out))
    )
    pipeline.run().wait_until_finish()
    return sum(int(line) for p in tmp_path.glob(f"{out.name}*") for line in p.read_text().split())


def test_the_local_engine_loses_nothing_where_beams_timed_flush_would(tmp_path, monkeypatch):
    _drop_what_the_timer_thread_flushes(monkeypatch)
    assert _grouped_count(batch_inference.local_pipeline([]), 300, tmp_path) == 300
    racy = batch_inference.local_pipeline(["--direct_running_mode=multi_threading"])  # the old default
    assert _grouped_count(racy, 300, tmp_path) < 300


# ---------------------------------------------------------------- 16: outputs that cannot be written


def test_each_tool_refuses_an_output_it_cannot_write_at_launch(tmp_path, models):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    bad = f"{blocker}/out"
    _photos(tmp_path / "survey", 1)
    with pytest.raises(SystemExit, match=rf"^--output_dir {re.escape(bad)}: cannot write there \(Not a directory\)"):
        build_dataset.run(["--input", str(tmp_path / "survey"), "--output_dir", bad])
    for flag, value in (("--output", bad), ("--report", f"{bad}/night.html"), ("--masks", bad)):
        args = ["--input", f"{tmp_path}/survey/*.jpg", "--output", str(tmp_path / "ok"), flag, value]
        with pytest.raises(SystemExit, match=rf"^{flag} {re.escape(bad)}: cannot write there"):
            _night(models, *args)
    from training import evaluate

    with pytest.raises(SystemExit, match=rf"^--output {re.escape(bad)}: cannot write there"):
        evaluate.main(["--model_dir", models["classifier"], "--data", str(tmp_path / "survey"), "--output", bad])


def _full_disk_under(monkeypatch, folder: Path, spared: tuple[str, ...]) -> None:
    """Files created under ``folder`` (but those ending in ``spared``: what the launch writes) are
    /dev/full: the OS answers ENOSPC when a pipeline worker writes them."""
    from apache_beam.io.localfilesystem import LocalFileSystem

    create = LocalFileSystem.create

    def full(self, path, *args, **kwargs):
        if str(path).startswith(str(folder)) and not str(path).endswith(spared):
            return open("/dev/full", "wb")
        return create(self, path, *args, **kwargs)

    monkeypatch.setattr(LocalFileSystem, "create", full)


def test_a_disk_that_fills_during_the_night_ends_in_one_line_naming_the_folder(tmp_path, models, monkeypatch):
    _photos(tmp_path / "survey", 2)
    out = tmp_path / "out"
    _full_disk_under(monkeypatch, out / "date=2026-12-07", spared=(transforms.INPUTS_FILE,))
    argv = ["--classifier", models["classifier"], "--run_date", "2026-12-07", "--input", f"{tmp_path}/survey/*"]
    with pytest.raises(SystemExit) as raised:
        batch_inference.main([*argv, "--output", str(out)])
    message = str(raised.value)
    assert message.startswith(f"cannot write into {out} (No space left on device") and "\n" not in message
    assert isinstance(raised.value, io_utils.OutputNotWritable)


def test_build_dataset_on_a_full_disk_names_its_output_folder(tmp_path, monkeypatch):
    synthetic.generate_survey(tmp_path / "survey", "folders", n_rust=2, n_clean=2, size=(64, 48))
    out = tmp_path / "out"
    out.mkdir()
    _full_disk_under(monkeypatch, out, spared=("label_map.pbtxt",))  # shards, manifest, rejects: the workers
    with pytest.raises(SystemExit, match=rf"^cannot write into {re.escape(str(out))} \(No space left on device"):
        build_dataset.main(["--input", str(tmp_path / "survey"), "--output_dir", str(out)])


def test_write_failures_are_told_apart_from_other_errors():
    enospc = OSError(errno.ENOSPC, "No space left on device", "/out/date=1/a.csv")
    assert io_utils.write_failure(enospc, ["/out"]) == (
        "cannot write into /out (No space left on device: /out/date=1/a.csv); free space there or give another folder"
    )
    beam_text = RuntimeError("Traceback ...\nOSError: [Errno 30] Read-only file system: '/out/x.csv' [while running]")
    assert io_utils.write_failure(beam_text, ["/out"]).startswith("cannot write into /out (Read-only file system")
    assert io_utils.write_failure(PermissionError(errno.EACCES, "Permission denied", "/models/m"), ["/out"]) is None
    assert io_utils.write_failure(ValueError("no"), ["/out"]) is None


# ---------------------------------------------------------------- 20: values that start with a dash


PARSERS = [
    lambda argv: build_dataset.parse_args(argv),
    lambda argv: batch_inference.build_parser().parse_known_args(argv),
    lambda argv: __import__("training.evaluate", fromlist=["x"]).parse_args(argv),
]


@pytest.mark.parametrize("parse", PARSERS, ids=["build_dataset", "batch_inference", "evaluate"])
def test_a_dash_leading_value_is_refused_saying_to_join_it_with_equals(parse, capsys):
    flag = "--data" if parse is PARSERS[2] else "--input"
    with pytest.raises(SystemExit) as raised:
        parse([flag, "-scan.jpg", "--output_dir", "o", "--output", "o", "--classifier", "c", "--model_dir", "m"])
    assert raised.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {flag}: expected one argument; " in err and f"{flag}=-scan.jpg" in err


def test_the_training_jobs_parser_gives_the_same_hint(capsys):
    from training.common import job

    spec = job.JobSpec("d", dict, "classifier.yaml", lambda j: {})
    with pytest.raises(SystemExit):
        job.parser(spec).parse_args(["--data", "-set", "--model_dir", "m"])
    assert "--data=-set" in capsys.readouterr().err
    assert cli.dash_hint("argument --x: invalid int value: 'a'", ["--x", "-a"]) == ""


# ---------------------------------------------------------------- 21a: evaluate's rejects, every kind


@pytest.fixture(scope="module")
def voc_folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("voc_eval") / "voc"
    synthetic.generate_survey(root, "voc", n_rust=2, n_clean=1, size=(96, 72), seed=SEED)
    rng = np.random.default_rng(SEED)
    hostile_runs._write(root / "broken.jpg", hostile_runs.photo(rng, True, (96, 72)))
    (root / "broken.xml").write_text(
        "<annotation><filename>broken.jpg</filename><size><width>nan</width><height>72</height><depth>3</depth>"
        "</size><object><name>rust</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>9</xmax><ymax>9</ymax>"
        "</bndbox></object></annotation>"
    )
    return root


@pytest.mark.parametrize("kind", ["detector", "segmenter", "classifier"])
def test_evaluate_writes_the_rejects_of_a_raw_folder_for_every_model_kind(kind, models, voc_folder, tmp_path):
    from training import evaluate

    out = tmp_path / "eval"
    assert evaluate.main(["--model_dir", models[kind], "--data", str(voc_folder), "--output", str(out)]) == 0
    jsonl = [json.loads(line) for line in (out / "rejects.jsonl").read_text().splitlines()]
    broken = {(str(voc_folder / "broken.xml"), "malformed_xml"), (str(voc_folder / "broken.jpg"), "malformed_xml")}
    assert {(r["path"], r["reason"]) for r in jsonl} & broken
    metrics = json.loads((out / "metrics.json").read_text())
    listed = metrics["rejects"]["files"] if kind == "classifier" else metrics["rejects"]
    assert {(r["path"], r["reason"]) for r in listed} == {(r["path"], r["reason"]) for r in jsonl}
