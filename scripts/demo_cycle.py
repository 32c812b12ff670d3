"""``make demo-cycle``: two survey nights with the review loop between them, on generated photos.

labelled photos (VOC boxes, and rust masks) -> data set -> classifier and rust-region model
(segmenter) V1 (each published to its model root and promoted) -> night 1 scored by V1 -> review queue -> corrections (the photos' known truth written
as labelImg files, standing in for the inspector) -> data set rebuilt with them (--corrections,
--previous_manifest) -> classifier and rust-region model V2 trained into their roots (not promoted) ->
training.compare V2 against V1 on the test split, each promoted only if not worse -> night 2
(night 1's photos plus new ones) scored by what the roots then serve, with --skip_processed
re-scoring what a new version must -> pipelines.compare_nights: night 1's rows against night 2's,
photo by photo, when anything was re-scored.

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
from scripts.demo import (
    DemoConfig,
    DemoSize,
    _step,
    generate_labelled,
    generate_region_labelled,
    pick_weights,
    regions_backbone,
)

log = logging.getLogger("demo_cycle")


def train_classifier(dataset: Path, size: DemoSize, weights: str, root: Path) -> None:
    _step(
        "train classifier", "training.train_classifier", "--data", str(dataset), "--model_root", str(root),
        "--set", f"input_size={size.classifier_input_size}", "--head_epochs", str(size.classifier_head_epochs),
        "--fine_tune_epochs", str(size.classifier_fine_tune_epochs), "--weights", weights,
    )  # fmt: skip


def train_segmenter(dataset: Path, size: DemoSize, weights: str, root: Path) -> None:
    _step(
        "train rust-region model", "training.train_segmenter", "--data", str(dataset), "--model_root", str(root),
        "--input_size", str(size.regions_input_size), "--head_epochs", str(size.regions_head_epochs),
        "--weights", weights,
    )  # fmt: skip


def night(photos: Path, roots: dict[str, Path], out: Path, date: str) -> dict:
    _step(
        f"night {date}", "pipelines.batch_inference", "--input", str(photos / "*"), "--classifier",
        str(roots["classifier"]), "--regions", str(roots["segmenter"]), "--output", str(out), "--skip_processed", str(out), "--survey_id", "hull-7",
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
    w = {"classifier": pick_weights(tiny), "segmenter": pick_weights(tiny, regions_backbone())}
    roots = {kind: workdir / "models" / kind for kind in ("classifier", "segmenter")}
    trainers = {"classifier": train_classifier, "segmenter": train_segmenter}
    generate_labelled(workdir / "labelled", size, seed)
    generate_region_labelled(workdir / "labelled_regions", size, seed + 3)
    inputs = [a for folder in ("labelled", "labelled_regions") for a in ("--input", str(workdir / folder))]
    _step("build data set", "pipelines.build_dataset", *inputs, "--output_dir", str(workdir / "d1"))
    for kind, root in roots.items():
        trainers[kind](workdir / "d1", size, w[kind], root)
        _step(f"promote {kind} V1", "training.versions", "promote", str(root), versions.versions(str(root))[0])
    photos = workdir / "night"
    truth = synthetic.generate_survey(
        photos, "flat", n_rust=size.night_images // 2, n_clean=size.night_images - size.night_images // 2,
        size=[tuple(s) for s in size.night_sizes], seed=seed + 1, hard_negative_fraction=0.4,
    )  # fmt: skip
    first = night(photos, roots, workdir / "results", "2026-12-01")
    results_glob = str(workdir / "results" / "date=2026-12-01" / "hull-7-results-*.csv")
    budget = str(max(2, size.night_images // 2))
    _step("review queue", "pipelines.review_queue", "--results", results_glob, "--classifier",
          str(roots["classifier"]), "--budget", budget, "--output", str(workdir / "review"))  # fmt: skip
    corrected = correct(workdir / "review", truth, workdir / "corrections")
    _step(
        "rebuild data set", "pipelines.build_dataset", *inputs,
        "--corrections", str(workdir / "corrections"), "--previous_manifest", str(workdir / "d1" / "manifest.csv"),
        "--output_dir", str(workdir / "d2"),
    )  # fmt: skip
    models = {}
    for kind, root in roots.items():
        trainers[kind](workdir / "d2", size, w[kind], root)
        v1 = versions.current(str(root))
        v2 = [v for v in versions.versions(str(root)) if v != v1][0]
        models[kind] = {"v1": v1, "v2": v2, "promoted": compare(root, v1, v2, workdir / "compare" / kind)}
    more = synthetic.generate_survey(workdir / "more", "flat", n_rust=2, n_clean=2, size=[(320, 240)], seed=seed + 2)
    for image in more.images:
        shutil.copy(workdir / "more" / image.path, photos / f"new_{Path(image.path).name}")
    second = night(photos, roots, workdir / "results", "2026-12-02")
    if any(m["promoted"] for m in models.values()):  # night 1's photos were scored again by a new version
        _step("compare nights", "pipelines.compare_nights", "--baseline", results_glob, "--candidate",
              results_glob.replace("2026-12-01", "2026-12-02"), "--output", str(workdir / "night_diff"))  # fmt: skip
    return summarise(workdir, first, second, corrected, models)


def compare(root: Path, v1: str, v2: str, output: Path) -> bool:
    """training.compare V2 against V1 on the rebuilt data set's test split; True when promoted."""
    import subprocess

    cmd = [
        sys.executable, "-m", "training.compare", "--baseline", str(root), "--baseline_version", v1,
        "--candidate", str(root), "--candidate_version", v2, "--data", str(output.parents[1] / "d2"),
        "--output", str(output), "--promote", str(root),
    ]  # fmt: skip
    log.info("[compare %s] %s", root.name, " ".join(cmd))
    code = subprocess.run(cmd).returncode
    if code not in (0, 3):
        raise SystemExit(f"demo step 'compare {root.name}' failed (exit {code})")
    return code == 0


def summarise(workdir: Path, first: dict, second: dict, corrected: int, models: dict) -> dict:
    def served(night: dict) -> dict:
        return {"classifier": night["classifier_version"], "segmenter": night["detector_version"]}

    diff = workdir / "night_diff" / "summary.json"
    summary = {
        "night_1": served(first) | {"scored": first["counters"]["images_scored"]},
        "corrected_photos": corrected,
        "models": models,
        "night_2": served(second)
        | {"scored": second["counters"]["images_scored"], "skipped": second["counters"]["images_skipped"]},
        "night_diff": json.loads(diff.read_text()) if diff.exists() else None,
        "comparisons": [str(workdir / "compare" / kind / "comparison.md") for kind in models],
    }
    (workdir / "cycle_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    for path in summary["comparisons"]:
        print(Path(path).read_text())
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
