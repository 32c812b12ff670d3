"""Peak memory of the nightly job on the largest photos it accepts: a 100 MP PNG, a 60 MP JPEG.

Each run is ``pipelines.batch_inference`` (classifier + detector at the production detector input,
320 px, with its tiles, previews and report) in a fresh interpreter that reports its own peak RSS.
The baseline is the same job on one 1 MP JPEG in the same session, so the figure that matters is the
increment a huge photo adds. Also the dataset pipeline on the 100 MP PNG.

Then memory against archive size (issue 29): peak RSS over ``--archive_sizes`` (default 100 and
1,000; ``--archive_sizes 100,1000,10000`` for the full figure) small generated photos (96x72, every
file distinct), each in a fresh interpreter:
- ``night``: batch inference, classifier + rust-region model (test doubles: the models' own memory
  is constant, the figure is what grows with the archive) with ``--report``;
- ``history``: the same job on a fixed 100 new photos with ``--skip_processed`` over the night of N
  photos above: the history joined with the listing by path (a side input of every scored sha256 on
  every worker before 2026-12-07);
- ``build_dataset``: the dataset pipeline on N labelled photos (VOC, half rust).
Per size, the peak and its increment per photo (KB) over the previous size. Writes
``bench_out/memory.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from corrosion.testing import hostile, synthetic

log = logging.getLogger("benchmarks.bench_memory")
REPO = Path(__file__).resolve().parent.parent
# VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss over fork and exec, so a child would
# report its parent's peak (this benchmark's own, after it wrote the 100 MP images).
MEASURE = (
    "import importlib, sys\n"
    "module, argv = sys.argv[1], sys.argv[2:]\n"
    "code = importlib.import_module(module).main(argv)\n"
    "hwm = next(l for l in open('/proc/self/status') if l.startswith('VmHWM:')).split()[1]\n"
    "print('PEAK_RSS_KB', hwm, flush=True)\n"
    "sys.exit(code)\n"
)


def peak_rss_mb(module: str, *args: str, timeout: int = 600) -> float:
    """Peak resident memory (MB) of ``python -m module args`` run in its own interpreter."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run(
        [sys.executable, "-c", MEASURE, module, *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{module} failed:\n{done.stderr[-3000:]}")
    line = next(x for x in done.stdout.splitlines() if x.startswith("PEAK_RSS_KB"))
    return int(line.split()[1]) / 1024


def models(folder: Path) -> tuple[str, str]:
    from tests.support import model_doubles as doubles

    return (
        doubles.export_tiny_classifier(str(folder / "classifier"), lite=True),
        doubles.export_colour_rule_detector(str(folder / "detector"), input_size=320),
    )


def night_peak_mb(folder: Path, photos: Path, classifier: str, detector: str) -> float:
    out = folder / f"out_{photos.name}"
    return peak_rss_mb(
        "pipelines.batch_inference",
        "--input", f"{photos}/*",
        "--classifier", classifier,
        "--detector", detector,
        "--output", str(out),
        "--report", str(out / "report.html"),
    )  # fmt: skip


def write_photos(folder: Path) -> dict[str, Path]:
    """One folder per run: the 1 MP baseline (``small``), a 100 MP PNG (``png100``), a 60 MP JPEG (``jpeg60``)."""
    pixels, _ = synthetic.render(np.random.default_rng(0), 1200, 900, 1, "steel")
    (folder / "small").mkdir(parents=True)
    (folder / "small" / "photo.jpg").write_bytes(synthetic.encode_image(pixels))
    hostile.write_large_png(folder / "png100" / "big.png")
    hostile.write_large_jpeg(folder / "jpeg60" / "big.jpg")
    return {name: folder / name for name in ("small", "png100", "jpeg60")}


def measure(folder: Path) -> dict:
    classifier, detector = models(folder)
    photos = write_photos(folder)
    hostile.write_large_png(folder / "png100x2" / "a.png")  # two at once: one per worker thread
    hostile.write_large_png(folder / "png100x2" / "b.png", 10_000, 9_999)
    result = {"baseline_1mp_jpeg_mb": night_peak_mb(folder, photos["small"], classifier, detector)}
    for name in ("png100", "jpeg60", "png100x2"):
        result[f"{name}_mb"] = night_peak_mb(folder, folder / name, classifier, detector)
        result[f"{name}_increment_mb"] = result[f"{name}_mb"] - result["baseline_1mp_jpeg_mb"]
        log.info(
            "%s: peak %.0f MB (+%.0f MB over the 1 MP baseline)",
            name,
            result[f"{name}_mb"],
            result[f"{name}_increment_mb"],
        )
    result["build_dataset_png100_mb"] = peak_rss_mb(
        "pipelines.build_dataset", "--input", str(folder / "png100"), "--output_dir", str(folder / "dataset")
    )
    return result


def write_small_photos(folder: Path, count: int, seed: int = 0, size: tuple[int, int] = (96, 72)) -> Path:
    """``count`` small JPEGs, every file distinct (a few renders, each copy stamped with its index)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    bases = [synthetic.render(rng, *size, i % 3, synthetic.BACKGROUNDS[i % 5])[0] for i in range(8)]
    for i in range(count):
        pixels = bases[i % len(bases)].copy()
        bits = np.array([(i >> b) & 1 for b in range(16)], np.uint8) * 255
        pixels[:4, : 16 * 4] = np.repeat(bits, 4)[None, :, None]
        (folder / f"photo_{seed}_{i:05d}.jpg").write_bytes(synthetic.encode_image(pixels, quality=90))
    return folder


def archive_models(folder: Path) -> tuple[str, str]:
    from tests.support import model_doubles as doubles

    return (
        doubles.export_tiny_classifier(str(folder / "classifier"), lite=True),
        doubles.export_colour_rule_segmenter(str(folder / "segmenter"), input_size=96),
    )


def measure_archive(folder: Path, sizes: list[int]) -> dict:
    """Peak RSS (MB) of the night, of --skip_processed history and of build_dataset against archive size."""
    classifier, segmenter = archive_models(folder)
    fixed = write_small_photos(folder / "fixed_100", 100, seed=1)
    out: dict = {"sizes": sizes, "night_mb": {}, "history_mb": {}, "build_dataset_mb": {}, "seconds": {}}
    for n in sizes:
        photos = write_small_photos(folder / f"night_{n}", n)
        night_out = folder / f"out_{n}"
        started = time.perf_counter()
        out["night_mb"][n] = peak_rss_mb(
            "pipelines.batch_inference",
            "--input", f"{photos}/*.jpg", "--classifier", classifier, "--regions", segmenter,
            "--output", str(night_out), "--report", str(folder / f"report_{n}.html"),
            timeout=3600,
        )  # fmt: skip
        out["seconds"][f"night_{n}"] = round(time.perf_counter() - started, 1)
        out["history_mb"][n] = peak_rss_mb(
            "pipelines.batch_inference",
            "--input", f"{fixed}/*.jpg", "--classifier", classifier, "--regions", segmenter,
            "--output", str(folder / f"out_fixed_{n}"), "--skip_processed", str(night_out),
            timeout=3600,
        )  # fmt: skip
        shutil.rmtree(photos)
        survey = folder / f"survey_{n}"
        synthetic.generate_survey(survey, "voc", n_rust=n // 2, n_clean=n - n // 2, size=(96, 72), seed=n)
        started = time.perf_counter()
        out["build_dataset_mb"][n] = peak_rss_mb(
            "pipelines.build_dataset", "--input", str(survey), "--output_dir", str(folder / f"dataset_{n}"),
            timeout=3600,
        )  # fmt: skip
        out["seconds"][f"build_dataset_{n}"] = round(time.perf_counter() - started, 1)
        shutil.rmtree(survey)
        shutil.rmtree(folder / f"dataset_{n}")
        log.info(
            "%d photos: night %.0f MB, 100 photos over its history %.0f MB, build_dataset %.0f MB",
            n, out["night_mb"][n], out["history_mb"][n], out["build_dataset_mb"][n],
        )  # fmt: skip
    for name in ("night_mb", "history_mb", "build_dataset_mb"):
        peaks = out[name]
        out[name.replace("_mb", "_kb_per_photo")] = {
            f"{a}->{b}": round((peaks[b] - peaks[a]) * 1024 / (b - a), 3)
            for a, b in zip(sizes, sizes[1:], strict=False)
        }
        out[name.replace("_mb", "_growth")] = {
            f"{a}->{b}": round(peaks[b] / peaks[a] - 1, 3) for a, b in zip(sizes, sizes[1:], strict=False)
        }
    out["target"] = "flat within 10 % from 1,000 to 10,000 photos"
    return out


def signature_join(count: int) -> dict:
    """Memory and time of build_dataset's one global step (``assign_groups``: the near-duplicate join
    over every unique image's ``dedup.Signature``) on ``count`` realistic signatures (random hashes,
    16x16 thumbnails, sha256 and source strings as a build makes them), measured with tracemalloc."""
    import hashlib
    import tracemalloc

    from corrosion.data import dedup
    from corrosion.data.dataset_config import load_dataset_config

    cfg = load_dataset_config().dedup
    rng = np.random.default_rng(0)
    tracemalloc.start()
    sigs = [
        dedup.Signature(
            key=hashlib.sha1(i.to_bytes(8, "little")).hexdigest(),
            shas=(hashlib.sha256(i.to_bytes(8, "little")).hexdigest(),),
            dhash=int(rng.integers(0, 2**63)) << 1 | int(rng.integers(0, 2)),
            thumb=rng.integers(0, 256, cfg.thumb_size * cfg.thumb_size, np.uint8).tobytes(),
            image_class="rust" if i % 2 else "no_rust",
            source_splits=("train",),
            stratum=f"source-{i % 8}/boxes/rust",
        )
        for i in range(count)
    ]
    held = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    seconds = {}
    for n in (count // 2, count):  # timed without tracemalloc (it slows Python several-fold)
        started = time.perf_counter()
        groups = dedup.near_duplicate_groups(sigs[:n], cfg)
        seconds[n] = time.perf_counter() - started
    exponent = float(np.log(seconds[count] / seconds[count // 2]) / np.log(2))
    return {
        "signatures": count,
        "held_mb": round(held / 2**20, 1),
        "bytes_per_signature": round(held / count),
        "join_seconds": {n: round(t, 2) for n, t in seconds.items()},
        "join_time_exponent": round(exponent, 2),
        "groups": len(groups),
        "at_1e6_signatures_held_mb_estimate": round(held / count * 1e6 / 2**20),
        "at_1e6_signatures_join_seconds_estimate": round(seconds[count] * (1e6 / count) ** max(exponent, 1.0)),
        "note": "random 64-bit dHashes (uniform buckets: the kindest case); one process, this machine",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--output", default=str(REPO / "bench_out" / "memory.json"))
    parser.add_argument("--archive_sizes", default="100,1000", help="comma-separated archive sizes (photos)")
    parser.add_argument("--no_large_photos", action="store_true", help="skip the 100 MP / 60 MP runs")
    parser.add_argument("--signatures", type=int, default=20_000, help="signatures of the near-duplicate join probe")
    args = parser.parse_args(argv)
    sizes = [int(v) for v in args.archive_sizes.split(",") if v]
    result: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        if not args.no_large_photos:
            result = measure(Path(tmp) / "large")
        if sizes:
            result["archive_size"] = measure_archive(Path(tmp) / "archive", sizes)
    if args.signatures:
        result["near_duplicate_join"] = signature_join(args.signatures)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    sys.exit(main())
