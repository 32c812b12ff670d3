"""The rust-region model's int8 LiteRT copy against its float32 copy: the same night, the same photos,
one run (issue 29's "then int8 with a representative data set, kept only if it stays inside the
tolerance").

The nights run ``pipelines.batch_inference`` as a user runs it (``bench_night.night_run``), with
``--detector_runtime savedmodel`` (the baseline), ``litert`` and ``litert_int8``, interleaved
``--repeats`` times; each figure is the marginal one between a small and a large run (CPU-seconds
a photo from the job's rusage, and wall photos/s), and each keeps its best round. Whether the int8
copy keeps the model's figures is not measured here but where it is decided: on the validation
split at training (``training.segmenter.quantised``, ``metadata.json``'s ``lite_int8``), which this
reports beside the speed. Without ``--regions`` (a segmenter trained with ``--set lite_int8=true``)
it builds the shipped shape with random weights and both copies (speed only: random weights
quantise badly). ``--against`` times a second segmenter's float32 (and int8, where it has one)
copies in the same rounds, such as another backbone's (issue 27: the night within 1.5x of the
MobileNetV2 one). Writes ``bench_out/int8.json``.

    python -m benchmarks.bench_int8 [--regions out/models/segmenter] [--against OTHER] [--photos 24] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

from benchmarks import bench_inference
from benchmarks.bench_night import REAL_SEGMENTERS, REPO, night_run
from corrosion.models import lite_runtime, serving

log = logging.getLogger("benchmarks.bench_int8")


def find_segmenter(work: Path, given: str | None) -> tuple[str, bool]:
    """(model dir, whether its int8 copy passed its validation check)."""
    candidates = [given] if given else [str(d) for d in REAL_SEGMENTERS]
    for found in candidates:
        if found and lite_runtime.has_lite(found, "segmenter_int8"):
            return found, True
    if given:
        raise SystemExit(f"{given} has no {lite_runtime.SEGMENTER_INT8_FILE}: train it with --set lite_int8=true")
    return bench_inference.export_bench_segmenter(work / "segmenter", lite=True, int8=True), False


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--regions", help="a segmenter with its int8 copy (default out/models/segmenter if it has one)")
    parser.add_argument("--against", help="a second segmenter whose LiteRT copies are timed in the same rounds")
    parser.add_argument("--classifier", help="exported classifier (default out/models/classifier, else MobileNetV2)")
    parser.add_argument("--photos", type=int, default=24)
    parser.add_argument("--small_photos", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--out", default=str(REPO / "bench_out" / "int8.json"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    work = Path(tempfile.mkdtemp(prefix="bench_int8_"))
    try:
        classifier = bench_inference.bench_classifier(args.classifier, work)
        segmenter, trained = find_segmenter(work, args.regions)
        runs = {k: (segmenter, k) for k in ("savedmodel", "litert", "litert_int8")}  # today's, float, int8
        if args.against:
            if not lite_runtime.has_lite(args.against, "segmenter"):
                raise SystemExit(f"{args.against} has no float32 LiteRT copy ({lite_runtime.SEGMENTER_LITE_FILE})")
            kept = ("litert", "litert_int8") if lite_runtime.has_lite(args.against, "segmenter_int8") else ("litert",)
            runs |= {f"against_{k}": (args.against, k) for k in kept}
        figures = run_rounds(work, classifier, runs, args)
        meta = serving.read_metadata(segmenter)
        if args.against:
            figures["against"] = serving.read_metadata(args.against).version
    finally:
        shutil.rmtree(work, ignore_errors=True)
    figures |= {"segmenter": meta.version, "trained": trained, "validation_check": meta.extra.get("lite_int8")}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))
    return figures


def run_rounds(work: Path, classifier: str, runs: dict[str, tuple[str, str]], args: argparse.Namespace) -> dict:
    """Each of ``runs`` (name: (segmenter, runtime)) interleaved ``--repeats`` times; the ratios."""
    paths = bench_inference.make_photos(work / "photos", args.photos, 4, (4000, 3000))
    small = work / "small"
    small.mkdir()
    for path in paths[: args.small_photos]:
        os.link(path, small / path.name)
    steady: dict[str, list[float]] = {k: [] for k in runs}
    cpu: dict[str, list[float]] = {k: [] for k in runs}
    extra = args.photos - args.small_photos
    for r in range(args.repeats):
        log.info("round %d of %d", r + 1, args.repeats)
        for name, (segmenter, runtime) in runs.items():
            large = night_run(work / "photos", classifier, segmenter, work / "out_l", args.workers, runtime)
            little = night_run(small, classifier, segmenter, work / "out_s", args.workers, runtime)
            if large["detector_runtime"] != runtime or large["scored"] != args.photos:
                raise RuntimeError(f"the {name} night ({runtime}) did not score every photo with it: {large}")
            steady[name].append(extra / (large["job_s"] - little["job_s"]))
            cpu[name].append((large["cpu_s"] - little["cpu_s"]) / extra)
    least = {k: min(v) for k, v in cpu.items()}
    log.info("CPU-s a photo (least of the rounds): %s", {k: round(v, 3) for k, v in least.items()})
    # The night is CPU-bound on every core, so CPU-seconds a photo is the steady figure; the marginal
    # wall rate (seconds between a small and a large run) is kept beside it, but is a difference of
    # two short runs' times and moves by 2x between rounds here.
    others = [k for k in least if k.startswith("against_")]  # as above: above 1, this segmenter's night is cheaper
    against = {f"{mine}_vs_{k}_cpu": round(least[k] / least[run], 3)
               for k in others for mine, run in (("int8", "litert_int8"), ("float32", "litert"))}  # fmt: skip
    return {
        "photos": args.photos,
        "small_photos": args.small_photos,
        "cpu_count": os.cpu_count(),
        "steady_photos_per_s": {k: [round(x, 3) for x in v] for k, v in steady.items()},
        "cpu_s_per_photo": {k: [round(x, 3) for x in v] for k, v in cpu.items()},
        "int8_vs_float32_cpu": round(least["litert"] / least["litert_int8"], 3),
        "int8_vs_savedmodel_cpu": round(least["savedmodel"] / least["litert_int8"], 3),
        "float32_vs_savedmodel_cpu": round(least["savedmodel"] / least["litert"], 3),
    } | against


if __name__ == "__main__":
    main()
