"""Is the candidate model at least as good as the one in use? Both on the same photos, side by side.

    python -m training.compare --baseline ROOT_OR_DIR [--baseline_version V1] --candidate DIR_OR_ROOT \\
        [--candidate_version V2] --data DATASET_OR_FOLDER [--data MORE ...] [--split test] --output DIR \\
        [--promote ROOT]

Two classifiers are compared on recall at each one's operating point and ROC-AUC (precision
shown), two rust-region models (segmenters or detectors) on rusted-% error and box AP50 (rust-pixel
F1 and D610 agreement shown): ``training.comparison``. Each difference candidate - baseline comes
with a 95 % interval from a paired bootstrap (the same resampled photos, or near-duplicate groups,
for both models; 2,000 draws, seeded). The candidate is promoted (``--promote ROOT``: ``ROOT/current``
names its version, ``corrosion.models.versions``) only when it is worse on no deciding figure.
Exit status 0 when it passes, 3 when it is refused.
"""

from __future__ import annotations

import json
import logging
import sys

import numpy as np

from corrosion import cli
from corrosion.core import io_utils
from corrosion.data import layout
from corrosion.models import serving, versions
from training.comparison import bootstrap, classifiers, regions

log = logging.getLogger("training.compare")
REFUSED = 3


def compare_classifiers(dirs: dict[str, str], data: list[str], split: str, output: str) -> tuple[dict, str]:
    runs = {}
    for role, model_dir in dirs.items():
        parts = [
            classifiers.scored(model_dir, path, split, io_utils.join(output, role, f"{i}-{_folder(path)}"))
            for i, path in enumerate(data)
        ]
        runs[role] = classifiers.Scored(
            parts[0].version,
            parts[0].threshold,
            np.concatenate([p.labels for p in parts]),
            np.concatenate([p.scores for p in parts]),
        )
    classifiers.same_photos(runs["baseline"], runs["candidate"])
    groups = np.arange(runs["baseline"].photos)
    table = bootstrap.paired_bootstrap(runs["baseline"].figures, runs["candidate"].figures, classifiers.FIGURES, groups)
    return _report(table, classifiers.FIGURES, f"{groups.size} photos", runs, "classifier")


def compare_regions(dirs: dict[str, str], data: list[str], split: str) -> tuple[dict, str]:
    photos = regions.load_photos(data, split, regions.grid_size(list(dirs.values())))
    log.info(
        "%d photos (%d near-duplicate groups) on a %d px grid; %d rust photos without regions or boxes left out; "
        "%d files refused (comparison.json lists them)",
        photos.groups.size, photos.groups.max() + 1, photos.size, photos.data.left_out, len(photos.rejects),
    )  # fmt: skip
    runs = {role: regions.score(model_dir, photos) for role, model_dir in dirs.items()}
    table = bootstrap.paired_bootstrap(
        runs["baseline"].figures, runs["candidate"].figures, regions.FIGURES, photos.groups
    )
    said = f"{photos.groups.size} photos, {photos.groups.max() + 1} groups"
    result, text = _report(table, regions.FIGURES, said, runs, "region model")
    refused = [{"path": r.path, "reason": r.reason, "detail": r.detail} for r in photos.rejects]
    return result | {"left_out": photos.data.left_out, "rejects": refused}, text


def _report(table: dict, figures, photos: str, runs: dict, kind: str) -> tuple[dict, str]:
    promote, decision = bootstrap.verdict(table, figures)
    names = {role: run.version for role, run in runs.items()}
    text = bootstrap.markdown(table, figures, photos, names["baseline"], names["candidate"], decision)
    result = {"kind": kind, "versions": names, "photos": photos, "figures": table, "promote": promote}
    return result | {"verdict": decision}, text


def _folder(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1]


def kind_of(dirs: dict[str, str]) -> str:
    """ "classifier" or "region": the two models must do the same job."""
    kinds = {role: serving.read_metadata(d).kind for role, d in dirs.items()}
    families = {
        "classifier" if k == "classifier" else "region" if k in regions.REGION_KINDS else k for k in kinds.values()
    }
    if len(families) > 1:
        raise SystemExit(
            f"the baseline is a {kinds['baseline']} and the candidate a {kinds['candidate']}: "
            "compare a classifier with a classifier, a rust-region model with a rust-region model"
        )
    family = families.pop()
    if family not in ("classifier", "region"):
        raise SystemExit(f"{dirs['baseline']} holds a {family}: nothing to compare it on")
    return family


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    p = cli.ArgumentParser(description=__doc__.split("\n\n")[0])
    for role in ("baseline", "candidate"):
        p.add_argument(f"--{role}", required=True, help="model folder or model root")
        p.add_argument(f"--{role}_version", help="with a model root: this version (default: its current one)")
    p.add_argument(
        "--data", required=True, action="append", help="data set directory or raw labelled folder (repeat to pool)"
    )
    p.add_argument("--split", default=layout.TEST, help="split of a data set to score (default test)")
    p.add_argument("--output", required=True, help="comparison.md / .json (and a classifier's evaluations)")
    p.add_argument("--promote", help="model root whose current version becomes the candidate if it is not worse")
    args = p.parse_args(argv)
    dirs = {
        role: versions.resolve(getattr(args, role), getattr(args, f"{role}_version"))
        for role in ("baseline", "candidate")
    }
    try:
        if kind_of(dirs) == "classifier":
            result, text = compare_classifiers(dirs, args.data, args.split, args.output)
        else:
            result, text = compare_regions(dirs, args.data, args.split)
    except (ValueError, FileNotFoundError) as exc:  # no usable photos, a missing data set
        raise SystemExit(f"training.compare: {exc}") from None
    result |= {"baseline": dirs["baseline"], "candidate": dirs["candidate"], "data": args.data, "split": args.split}
    io_utils.write_text(io_utils.join(args.output, "comparison.json"), json.dumps(result, indent=2) + "\n")
    io_utils.write_text(io_utils.join(args.output, "comparison.md"), text)
    print(text)
    if args.promote and result["promote"]:
        version = result["versions"]["candidate"]
        if not versions.is_complete(args.promote, version):
            versions.publish(dirs["candidate"], args.promote)
        versions.promote(args.promote, version)
    return 0 if result["promote"] else REFUSED


if __name__ == "__main__":
    sys.exit(main())
