"""The dataset pipeline end to end on a generated tree (every bad kind, every duplicate kind) and
on the real photos (skipped when ../shared/data is absent)."""

from __future__ import annotations

import csv
import io
import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from corrosion.core.config import ConfigError
from corrosion.data import layout, schema
from corrosion.data.record import Record
from corrosion.testing import synthetic
from pipelines import build_dataset

SIZE = [(128, 96), (112, 112)]


def build_tree(root: Path) -> dict:
    """A survey in three layouts with every bad input and every kind of duplicate; returns the truth."""
    voc = synthetic.generate_survey(
        root / "voc",
        "voc",
        n_rust=3,
        n_clean=2,
        size=SIZE,
        seed=0,
        orientations=(1, 6, 3, 8),
        bad_files=synthetic.BAD_KINDS,
    )
    folders = synthetic.generate_survey(root / "folders", "folders", n_rust=3, n_clean=2, size=SIZE, seed=1)
    yolo = synthetic.generate_survey(
        root / "yolo", "yolo", n_rust=2, n_clean=1, size=SIZE, seed=2, box_label="corrosion"
    )
    # byte-identical copy under another name (same class)
    shutil.copy(root / "folders/rust/rust_0000.jpg", root / "folders/rust/copy_of_rust_0000.jpg")
    # a boxed VOC image also sitting unboxed in a class folder: one record, with the boxes
    shutil.copy(root / "voc/rust_0000.jpg", root / "folders/rust/unboxed_twin.jpg")
    # the same photo resized and re-encoded: a near-duplicate, same group, same split
    img = Image.open(root / "folders/norust/clean_0000.jpg")
    img.resize((img.width * 3 // 4, img.height * 3 // 4), Image.Resampling.LANCZOS).save(
        root / "folders/norust/clean_small.jpg", quality=80
    )
    # the same photo filed as rust and as no rust: both rejected
    shutil.copy(root / "folders/rust/rust_0001.jpg", root / "folders/norust/mislabelled.jpg")
    # YOLO problems: a label file without its image, and an image whose label file is malformed
    (root / "yolo/train/labels/orphan.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    pixels, _ = synthetic.render(np.random.default_rng(42), 128, 96, 1, "green_paint")
    (root / "yolo/train/images/broken_label.jpg").write_bytes(synthetic.encode_image(pixels))
    (root / "yolo/train/labels/broken_label.txt").write_text("0 0.5 0.5\n")
    truth = {f"voc/{i.path}": i for i in voc.images}
    truth.update({f"folders/{i.path}": i for i in folders.images})
    truth.update({f"yolo/{i.path}": i for i in yolo.images})
    return truth


def run_pipeline(inputs: list[Path], out: Path, *beam_args: str) -> dict:
    argv = [a for i in inputs for a in ("--input", str(i))] + ["--output_dir", str(out), *beam_args]
    return build_dataset.run(argv)


def read_manifest(out: Path) -> list[dict]:
    return list(csv.DictReader(io.StringIO((out / "manifest.csv").read_text())))


def read_rejects(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "rejects.jsonl").read_text().splitlines() if line.strip()]


def read_records(out: Path) -> dict[str, list[Record]]:
    result = {}
    for split in layout.SPLITS:
        files = sorted(str(p) for p in out.glob(f"{split}-*.tfrecord"))
        result[split] = [schema.from_example(r.numpy()) for r in tf.data.TFRecordDataset(files)] if files else []
    return result


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("survey")
    truth = build_tree(root)
    out = tmp_path_factory.mktemp("dataset")
    stats = run_pipeline([root], out)
    return root, truth, out, stats


def rel(path: str, root: Path) -> str:
    return str(Path(path).relative_to(root))


def test_exact_counts(built):
    root, truth, out, stats = built
    rows = read_manifest(out)
    status = Counter(r["status"] for r in rows)
    # 5 good VOC + 2 kept bad-kind VOC images (inverted_box, box_outside) + 4 class-folder (rust_0001
    # is rejected with its mislabelled copy) + 3 YOLO + clean_small (near-duplicate, kept) = 15 kept;
    # copy_of_rust_0000 and unboxed_twin collapse into their originals.
    assert status == {"kept": 15, "duplicate": 2, "rejected": 11}
    rejected = Counter(r["reason"] for r in rows if r["status"] == "rejected")
    assert rejected == {
        "corrupt_image": 1,
        "empty_file": 1,
        "not_an_image": 1,
        "too_large": 1,
        "malformed_xml": 1,
        "xml_entity_expansion": 1,
        "xml_external_entity": 1,
        "unknown_label": 1,
        "label_conflict": 2,
        "malformed_yolo": 1,
    }
    assert stats["images_rejected_by_reason"] == dict(rejected)
    reasons = Counter(r["reason"] for r in read_rejects(out))
    # image rows (11) + refused annotation files (6 VOC + 2 YOLO) + the dropped inverted box (1)
    assert reasons == rejected + Counter(
        {
            "malformed_xml": 1,
            "xml_entity_expansion": 1,
            "xml_external_entity": 1,
            "unknown_label": 1,
            "missing_image": 2,
            "path_escape": 1,
            "malformed_yolo": 1,
            "inverted_box": 1,
        }
    )
    assert stats["rejects_by_reason"] == dict(reasons)
    assert stats["duplicates_collapsed"] == 2
    assert stats["near_duplicate_groups"] == 1 and stats["images_in_near_duplicate_groups"] == 2
    assert stats["records_total"] == 15
    assert stats["fixes"]["box_clipped"] == 1
    assert stats["fixes"]["orientation_applied"] == 3  # the voc survey cycles orientations 1, 6, 3, 8
    assert stats["ignored_files"] == 1  # yolo/data.yaml
    assert sum(sum(v.values()) for v in stats["records"].values()) == 15


def test_every_input_accounted_for(built):
    root, truth, out, stats = built
    rows = read_manifest(out)
    images = sorted(str(p) for p in root.rglob("*") if p.suffix in (".jpg", ".png"))
    assert sorted(r["path"] for r in rows) == images  # every image file exactly once
    attached = {r["annotation"] for r in rows if r["annotation"]}
    rejected = {r["path"] for r in read_rejects(out)}
    for ann in [*root.rglob("*.xml"), *root.rglob("labels/*.txt")]:
        assert str(ann) in attached or str(ann) in rejected, ann
    records = read_records(out)
    kept = {(r["split"], r["sha256"]) for r in rows if r["status"] == "kept"}
    written = {(split, rec.sha256) for split, recs in records.items() for rec in recs}
    assert written == kept and sum(len(v) for v in records.values()) == len(kept)
    assert (out / "label_map.pbtxt").read_text() == "item {\n  id: 1\n  name: 'rust'\n}\n"


def test_records_round_trip_boxes(built):
    root, truth, out, stats = built
    rows = {r["sha256"]: r for r in read_manifest(out) if r["status"] == "kept"}
    checked = 0
    for recs in read_records(out).values():
        for rec in recs:
            source = rel(rows[rec.sha256]["path"], root)
            pixels = tf.io.decode_image(rec.encoded, channels=3).numpy()
            assert pixels.shape[:2] == (rec.height, rec.width)
            if source not in truth:
                continue
            t = truth[source]
            assert (rec.width, rec.height) == (t.width, t.height)
            assert rec.image_class == t.image_class
            if source.startswith("folders/"):
                assert rec.boxes == ()  # class folders carry no boxes
                continue
            assert len(rec.boxes) == len(t.boxes)
            for got, want in zip(
                sorted(rec.boxes, key=lambda b: b.xmin), sorted(t.boxes, key=lambda b: b.xmin), strict=True
            ):
                assert np.allclose(
                    [got.xmin, got.ymin, got.xmax, got.ymax], [want.xmin, want.ymin, want.xmax, want.ymax], atol=1.0
                )
                assert got.label == "rust"
            checked += 1
    assert checked == 8  # 5 VOC (4 orientations) + 3 YOLO


def test_duplicates_and_groups(built):
    root, truth, out, stats = built
    rows = {rel(r["path"], root): r for r in read_manifest(out)}
    twin, boxed = rows["folders/rust/unboxed_twin.jpg"], rows["voc/rust_0000.jpg"]
    assert twin["status"] == "duplicate" and twin["duplicate_of"] == boxed["path"]
    assert boxed["status"] == "kept" and int(boxed["boxes"]) == len(truth["voc/rust_0000.jpg"].boxes) > 0
    copy, original = rows["folders/rust/copy_of_rust_0000.jpg"], rows["folders/rust/rust_0000.jpg"]
    assert copy["status"] == "kept"  # of identical unboxed copies the first path is kept
    assert original["status"] == "duplicate" and original["duplicate_of"] == copy["path"]
    assert copy["group"] == original["group"] and copy["split"] == original["split"]
    near, orig = rows["folders/norust/clean_small.jpg"], rows["folders/norust/clean_0000.jpg"]
    assert near["status"] == orig["status"] == "kept"
    assert near["group"] == orig["group"] and near["split"] == orig["split"]
    assert (
        rows["folders/norust/mislabelled.jpg"]["reason"]
        == rows["folders/rust/rust_0001.jpg"]["reason"]
        == "label_conflict"
    )
    inverted = next(r for p, r in rows.items() if "inverted_box" in p)
    assert inverted["status"] == "kept" and inverted["label"] == "rust" and inverted["boxes"] == "0"


def test_split_stability_when_images_are_added(built, tmp_path):
    root, truth, out, stats = built
    more = tmp_path / "more"
    synthetic.generate_survey(more, "folders", n_rust=6, n_clean=6, size=SIZE, seed=9)
    shutil.copy(root / "folders/rust/rust_0002.jpg", more / "rust/late_copy.jpg")  # a new copy of an old image
    out2 = tmp_path / "out2"
    run_pipeline([root, more], out2)
    before = {r["path"]: r["split"] for r in read_manifest(out) if r["status"] in ("kept", "duplicate")}
    after = {r["path"]: r for r in read_manifest(out2)}
    assert all(after[p]["split"] == s for p, s in before.items())
    assert after[str(more / "rust/late_copy.jpg")]["split"] == before[str(root / "folders/rust/rust_0002.jpg")]
    assert sum(1 for r in after.values() if r["status"] == "kept") == 15 + 12


def test_previous_manifest_pins_splits(built, tmp_path):
    root, truth, out, stats = built
    rows = read_manifest(out)
    # pretend an earlier build put every kept image in "test": a rebuild must keep them there
    previous = tmp_path / "previous.csv"
    with previous.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows({**r, "split": "test"} for r in rows if r["status"] == "kept")
    out2 = tmp_path / "out"
    build_dataset.run(["--input", str(root), "--output_dir", str(out2), "--previous_manifest", str(previous)])
    assert {r["split"] for r in read_manifest(out2) if r["status"] == "kept"} == {"test"}


def test_previous_manifest_with_stray_bytes_and_a_bom_still_pins_splits(built, tmp_path):
    root, truth, out, stats = built
    rows = read_manifest(out)
    text = (out / "manifest.csv").read_text().replace(",test,", ",validation,").replace(",train,", ",validation,")
    previous = tmp_path / "previous.csv"  # a manifest edited on Windows: BOM, a Latin-1 byte in one path
    previous.write_bytes(b"\xef\xbb\xbf" + text.encode().replace(b"rust_0001", b"rust_\xe90001"))
    out2 = tmp_path / "out"
    build_dataset.run(["--input", str(root), "--output_dir", str(out2), "--previous_manifest", str(previous)])
    kept = [r for r in read_manifest(out2) if r["status"] == "kept"]
    assert len(kept) == sum(r["status"] == "kept" for r in rows) and {r["split"] for r in kept} == {"validation"}


def test_output_folder_with_glob_characters_is_refused_before_any_work(built, tmp_path):
    root, *_ = built
    with pytest.raises(SystemExit, match=r"may not hold '\[', '\*' or '\?'"):
        build_dataset.run(["--input", str(root), "--output_dir", str(tmp_path / "out[1]")])
    assert not (tmp_path / "out[1]").exists()


def test_an_input_folder_with_brackets_is_read_literally(tmp_path):
    root = tmp_path / "site[7]"
    synthetic.generate_survey(root, "folders", n_rust=2, n_clean=2, size=(64, 48), seed=3)
    assert run_pipeline([root], tmp_path / "dataset")["records_total"] == 4  # not a pattern matching "site7"


def test_an_output_folder_inside_the_input_is_not_read_back_as_input(tmp_path):
    root = tmp_path / "survey"
    synthetic.generate_survey(root, "folders", n_rust=2, n_clean=2, size=(64, 48), seed=3)
    first = run_pipeline([root], root / "dataset")
    second = run_pipeline([root], root / "dataset")  # its own manifest, shards and stats are not inputs
    assert first["records_total"] == second["records_total"] == 4
    assert first.get("ignored_files", 0) == second.get("ignored_files", 0) == 0


def test_multi_processing_runner_gives_the_same_data_set(built, tmp_path):
    root, truth, out, stats = built
    out2 = tmp_path / "mp"
    stats2 = run_pipeline(
        [root],
        out2,
        "--runner",
        "DirectRunner",
        "--direct_num_workers",
        "2",
        "--direct_running_mode",
        "multi_processing",
    )
    assert stats2 == stats
    assert sorted(read_manifest(out2), key=lambda r: r["path"]) == sorted(read_manifest(out), key=lambda r: r["path"])
    for shard in out.glob("*.tfrecord"):
        assert (out2 / shard.name).read_bytes() == shard.read_bytes()


def test_shards_are_sized_by_the_target(built, tmp_path):
    root, truth, out, stats = built
    config = tmp_path / "dataset.yaml"
    config.write_text("shard_target_mb: 0.01\n")  # ~10 kB: several shards per split
    out2 = tmp_path / "sharded"
    shutil.copytree(out, out2)  # an earlier build's shards (one per split) are replaced, not mixed in
    (out2 / "train-00003-of-00009.tfrecord.incomplete-0badc0de").write_bytes(b"left by a crashed run")
    stats2 = build_dataset.run(["--input", str(root), "--output_dir", str(out2), "--config", str(config)])
    assert sorted(stats2["shards"]) == ["test", "train", "validation"]
    expected = {f"{s}-{i:05d}-of-{n:05d}.tfrecord" for s, n in stats2["shards"].items() for i in range(n)}
    assert {p.name for p in out2.glob("*.tfrecord*")} == expected
    assert stats2["shards"]["train"] > 1
    assert sum(len(v) for v in read_records(out2).values()) == 15


# ---------------------------------------------------------------- real photos


def test_real_corrosion_detector(shared_data, tmp_path):
    src = shared_data / "corrosion-detector"
    stats = run_pipeline([src], tmp_path / "cd")
    rows = {rel(r["path"], src): r for r in read_manifest(tmp_path / "cd")}
    assert len(rows) == 83 + 72 + 45
    # byte-identical norust pairs collapse
    for a, b in [("norust.6.jpg", "norust.37.jpg"), ("norust.2.jpg", "norust.57.jpg")]:
        pair = [rows[f"download/norust/{a}"], rows[f"download/norust/{b}"]]
        assert sorted(r["status"] for r in pair) == ["duplicate", "kept"]
    # each objDet image joins its download/rust twin as one record carrying the boxes
    obj = [p for p in rows if p.startswith("objDet/")]
    assert len(obj) == 45
    for p in obj:
        r = rows[p]
        twin = rows[f"download/rust/{Path(p).name}"]
        kept = r if r["status"] == "kept" else rows[rel(r["duplicate_of"], src)]
        assert twin["group"] == r["group"] and twin["split"] == r["split"]
        assert kept["annotation"].endswith(".xml") and int(kept["boxes"]) > 0
    assert stats["records_total"] == 149 and stats["duplicates_collapsed"] == 51
    assert stats["boxes_total"] == 169 and stats["rejects_by_reason"] == {}


def test_overlapping_or_missing_inputs_are_refused(tmp_path):
    (tmp_path / "a/b").mkdir(parents=True)
    with pytest.raises(SystemExit, match="inside input"):
        build_dataset.run(
            ["--input", str(tmp_path / "a"), "--input", str(tmp_path / "a/b"), "--output_dir", str(tmp_path / "o")]
        )
    with pytest.raises(SystemExit, match="given twice"):
        build_dataset.run(
            ["--input", str(tmp_path / "a"), "--input", str(tmp_path / "a"), "--output_dir", str(tmp_path / "o")]
        )
    with pytest.raises(SystemExit, match="does not exist"):
        build_dataset.run(["--input", str(tmp_path / "nope"), "--output_dir", str(tmp_path / "o")])


def test_local_runs_name_the_in_process_engine_and_leave_a_given_runner_alone():
    from pipelines.local_runner import LOCAL_RUNNER, with_local_default

    assert with_local_default(["--temp_location=/tmp"], "--direct_num_workers=0") == [
        f"--runner={LOCAL_RUNNER}",
        "--direct_num_workers=0",
        "--temp_location=/tmp",
    ]
    for given in (["--runner=DataflowRunner", "--project=p"], ["--runner", "DirectRunner"]):
        assert with_local_default(given, "--direct_num_workers=0") == given


def test_image_files_over_the_size_limit_are_rejected_unread(tmp_path):
    root = tmp_path / "survey"
    survey = synthetic.generate_survey(root, "folders", n_rust=2, n_clean=1, size=(64, 48), seed=5)
    big = root / survey.images[0].path
    big.write_bytes(big.read_bytes() + b"\0" * 5000)  # a valid JPEG with trailing bytes, now over the limit
    config = tmp_path / "dataset.yaml"
    config.write_text("validation:\n  max_file_bytes: 4000\n")
    stats = build_dataset.run(["--input", str(root), "--output_dir", str(tmp_path / "out"), "--config", str(config)])
    rows = {r["path"]: r for r in read_manifest(tmp_path / "out")}
    assert (rows[str(big)]["status"], rows[str(big)]["reason"]) == ("rejected", "file_too_large")
    assert stats["records_total"] == 2


def test_set_overrides_a_nested_setting_from_the_command_line(built, tmp_path):
    """--set validation.max_pixels=1000 reaches the nested key: every image is then too large."""
    root, truth, out, stats = built
    placed = {r["path"] for r in read_manifest(out) if r["status"] in ("kept", "duplicate")}
    out2 = tmp_path / "out"
    small = run_pipeline([root], out2, "--set", "validation.max_pixels=1000")
    rows = read_manifest(out2)
    assert small["records_total"] == 0
    too_large = {r["path"] for r in rows if r["reason"] == "too_large"}
    assert len(placed) == 17 and placed <= too_large and not any(r["status"] == "kept" for r in rows)
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['max_pixel'\]"):
        run_pipeline([root], tmp_path / "out3", "--set", "validation.max_pixel=1000")
