"""``make demo-cycle``: two survey nights with the review loop between them, on generated photos.

labelled photos -> data set -> classifier V1 (published to a model root and promoted) -> night 1
scored by V1 (+ the detector) -> review queue -> corrections (the photos' known truth written as
labelImg files, standing in for the inspector) -> data set rebuilt with them (--corrections,
--previous_manifest) -> classifier V2 trained into the root (not promoted) -> training.compare V2
against V1 on the test split -> promoted only if not worse -> night 2 (night 1's photos plus new
ones) scored by what the root then serves, with --skip_processed re-scoring what the new version must.

Every step is the real command a user would run (``python -m ...``).
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import shutil
import sys
from pathlib import Path

from corrosion.core.config import config_path, load_config
from corrosion.models import versions
from corrosion.review import exports
from corrosion.testing import synthetic
from scripts.demo import DemoConfig, DemoSize, _step, generate_labelled, pick_weights

log = logging.getLogger("demo_cycle")


def train_classifier(dataset: Path, size: DemoSize, weights: str, *where: str) -> None:
    _step(
        "train classifier", "training.train_classifier", "--data", str(dataset), *where,
        "--set", f"input_size={size.classifier_input_size}", "--head_epochs", str(size.classifier_head_epochs),
        "--fine_tune_epochs", str(size.classifier_fine_tune_epochs), "--weights", weights,
    )  # fmt: skip


def night(photos: Path, root: Path, detector: Path, out: Path, date: str) -> dict:
    _step(
        f"night {date}", "pipelines.batch_inference", "--input", str(photos / "*"), "--classifier", str(root),
        "--detector", str(detector), "--output", str(out), "--skip_processed", str(out), "--survey_id", "hull-7",
        "--run_date", date,
    )  # fmt: skip
    return json.loads((out / f"date={date}" / "hull-7-summary.json").read_text())


def correct(queue: Path, truth: synthetic.Survey, corrections: Path) -> int:
    """The inspector's work, done from the photos' known truth: each queued photo with its true boxes."""
    corrections.mkdir(parents=True, exist_ok=True)
    by_name = {Path(i.path).name: i for i in truth.images}
    with open(queue / "queue.csv", newline="") as handle:
        queued = [row["image_uri"] for row in csv.DictReader(handle)]
    for uri in queued:
        image = by_name[Path(uri).name]
        shutil.copy(uri, corrections / Path(uri).name)
        boxes = tuple((b.xmin, b.ymin, b.xmax, b.ymax, 1.0) for b in image.boxes)
        item = exports.ReviewItem(Path(uri).name, image.width, image.height, boxes, 1.0)
        (corrections / Path(uri).name).with_suffix(".xml").write_text(exports.voc_xml(item, corrections.name))
    return len(queued)


def run_cycle(workdir: Path, tiny: bool, seed: int = 11) -> dict:
    size = getattr(load_config(DemoConfig, config_path("demo.yaml")), "tiny" if tiny else "full")
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    w, root, detector = pick_weights(tiny), workdir / "models" / "classifier", workdir / "models" / "detector"
    generate_labelled(workdir / "labelled", size, seed)
    _step(
        "build data set",
        "pipelines.build_dataset",
        "--input",
        str(workdir / "labelled"),
        "--output_dir",
        str(workdir / "d1"),
    )
    train_classifier(workdir / "d1", size, w, "--model_root", str(root))
    _step("promote V1", "training.versions", "promote", str(root), versions.versions(str(root))[0])
    _step(
        "train detector", "training.train_detector", "--data", str(workdir / "d1"), "--model_dir", str(detector),
        "--set", f"model.input_size={size.detector_input_size}", "--head_epochs", str(size.detector_head_epochs),
        "--fine_tune_epochs", str(size.detector_fine_tune_epochs), "--batch_size", str(size.detector_batch_size),
        "--weights", w,
    )  # fmt: skip
    photos = workdir / "night"
    truth = synthetic.generate_survey(
        photos, "flat", n_rust=size.night_images // 2, n_clean=size.night_images - size.night_images // 2,
        size=[tuple(s) for s in size.night_sizes], seed=seed + 1, hard_negative_fraction=0.4,
    )  # fmt: skip
    first = night(photos, root, detector, workdir / "results", "2026-12-01")
    results_glob = str(workdir / "results" / "date=2026-12-01" / "hull-7-results-*.csv")
    budget = str(max(2, size.night_images // 2))
    _step("review queue", "pipelines.review_queue", "--results", results_glob, "--classifier", str(root),
          "--budget", budget, "--output", str(workdir / "review"))  # fmt: skip
    corrected = correct(workdir / "review", truth, workdir / "corrections")
    _step(
        "rebuild data set", "pipelines.build_dataset", "--input", str(workdir / "labelled"),
        "--corrections", str(workdir / "corrections"), "--previous_manifest", str(workdir / "d1" / "manifest.csv"),
        "--output_dir", str(workdir / "d2"),
    )  # fmt: skip
    train_classifier(workdir / "d2", size, w, "--model_root", str(root))
    v1 = versions.current(str(root))
    v2 = [v for v in versions.versions(str(root)) if v != v1][0]
    promoted = compare(root, v1, v2, workdir)
    more = synthetic.generate_survey(workdir / "more", "flat", n_rust=2, n_clean=2, size=[(320, 240)], seed=seed + 2)
    for image in more.images:
        shutil.copy(workdir / "more" / image.path, photos / f"new_{Path(image.path).name}")
    second = night(photos, root, detector, workdir / "results", "2026-12-02")
    return summarise(workdir, first, second, corrected, v1, v2, promoted)


def compare(root: Path, v1: str, v2: str, workdir: Path) -> bool:
    """training.compare V2 against V1 on the rebuilt data set's test split; True when promoted."""
    import subprocess

    cmd = [
        sys.executable, "-m", "training.compare", "--baseline", str(root), "--baseline_version", v1,
        "--candidate", str(root), "--candidate_version", v2, "--data", str(workdir / "d2"),
        "--output", str(workdir / "compare"), "--promote", str(root),
    ]  # fmt: skip
    log.info("[compare] %s", " ".join(cmd))
    code = subprocess.run(cmd).returncode
    if code not in (0, 3):
        raise SystemExit(f"demo step 'compare' failed (exit {code})")
    return code == 0


def summarise(workdir: Path, first: dict, second: dict, corrected: int, v1: str, v2: str, promoted: bool) -> dict:
    summary = {
        "night_1": {"classifier": first["classifier_version"], "scored": first["counters"]["images_scored"]},
        "corrected_photos": corrected,
        "v1": v1,
        "v2": v2,
        "promoted": promoted,
        "night_2": {
            "classifier": second["classifier_version"],
            "scored": second["counters"]["images_scored"],
            "skipped": second["counters"]["images_skipped"],
        },
        "comparison": str(workdir / "compare" / "comparison.md"),
    }
    (workdir / "cycle_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    print((workdir / "compare" / "comparison.md").read_text())
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", default="demo_cycle_out", help="where everything goes (wiped first)")
    parser.add_argument("--tiny", action="store_true", help="tiny sizes and random weights (the CI test)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s demo-cycle: %(message)s")
    run_cycle(Path(args.workdir), args.tiny)
    return 0


if __name__ == "__main__":
    sys.exit(main())
