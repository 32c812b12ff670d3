"""Peak memory of the nightly job on the largest photos it accepts: a 100 MP PNG, a 60 MP JPEG.

Each run is ``pipelines.batch_inference`` (classifier + detector at the production detector input,
320 px, with its tiles, previews and report) in a fresh interpreter that reports its own peak RSS.
The baseline is the same job on one 1 MP JPEG in the same session, so the figure that matters is the
increment a huge photo adds. Also the dataset pipeline on the 100 MP PNG. Writes
``bench_out/memory.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--output", default=str(REPO / "bench_out" / "memory.json"))
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        result = measure(Path(tmp))
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    sys.exit(main())
