"""``make demo``: the whole chain on a generated survey (or a real labelled folder), DirectRunner.

generate labelled photos (VOC boxes, and rust masks) -> pipelines.build_dataset ->
training.train_classifier and training.train_segmenter (the rust-region model; short runs) ->
generate a fresh "survey night" -> pipelines.batch_inference -> print where the CSV, errors,
masks, previews and report are, with a one-line summary.

Every step is the real command a user would run (``python -m ...``), so the demo exercises
exactly the documented interfaces.

``--cloud`` (``make demo-cloud``) runs the same chain the way Dataflow runs it, against the local
GCS and BigQuery emulators (``corrosion.testing.emulators``): labelled photos, data set, models
and the night's photos on ``gs://``, every output written there, rows loaded into BigQuery.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import io
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import ExifTags, Image

from corrosion.core import io_utils, staging
from corrosion.core.config import config_path, load_config
from corrosion.models import weights
from corrosion.testing import emulators, synthetic

log = logging.getLogger("demo")
BUCKET = "demo-survey"  # --cloud: the bucket and BigQuery dataset the demo makes on the emulators
BIGQUERY_DATASET = "inspection"


@dataclass(frozen=True)
class DemoSize:
    labelled_rust: int
    labelled_clean: int
    labelled_sizes: tuple[tuple[int, ...], ...]
    night_images: int
    night_sizes: tuple[tuple[int, ...], ...]
    night_large: int
    classifier_head_epochs: int
    classifier_fine_tune_epochs: int
    classifier_input_size: int
    region_photos: int
    regions_head_epochs: int
    regions_input_size: int


@dataclass(frozen=True)
class DemoConfig:
    full: DemoSize
    tiny: DemoSize


def _step(name: str, module: str, *args: str) -> None:
    """Run one project command as a user would, failing the demo loudly if it fails."""
    cmd = [sys.executable, "-m", module, *args]
    log.info("[%s] %s", name, " ".join(cmd))
    started = time.monotonic()
    result = subprocess.run(cmd)
    if result.returncode != 0:
        raise SystemExit(f"demo step '{name}' failed (exit {result.returncode}): {' '.join(cmd)}")
    log.info("[%s] done in %.0f s", name, time.monotonic() - started)


def pick_weights(tiny: bool, backbone: str = "MobileNetV2") -> str:
    """ImageNet weights for ``backbone`` when they can be had, else random initialisation — saying which."""
    if tiny:
        return "none"
    try:
        weights.build_backbone(backbone, 224, weights.resolve_weights("imagenet"))
        log.info("using ImageNet %s weights from %s", backbone, weights.keras_cache_dir())
        return "imagenet"
    except weights.WeightsUnavailableError as exc:
        log.warning("ImageNet %s weights unavailable, training from scratch (expect weaker models): %s", backbone, exc)
        return "none"


def regions_backbone() -> str:
    """The rust-region model's backbone, as configs/segmenter.yaml ships it."""
    from training.segmenter.config import load_segmenter_config

    return load_segmenter_config(None, {}).backbone


def generate_labelled(root: Path, size: DemoSize, seed: int) -> None:
    """Labelled photos in labelImg's VOC layout, rust and clean (painted hard negatives too), a few broken files."""
    survey = synthetic.generate_survey(
        root, "voc", n_rust=size.labelled_rust, n_clean=size.labelled_clean,
        size=[tuple(s) for s in size.labelled_sizes], seed=seed, hard_negative_fraction=0.4,
        bad_files=("truncated", "not_image", "malformed_xml"),
    )  # fmt: skip
    log.info("generated %d labelled images (+%d broken files) in %s", len(survey.images), len(survey.bad_files), root)


def generate_region_labelled(root: Path, size: DemoSize, seed: int) -> None:
    """Photos with their rust masks (``images/`` + ``masks/``, as ballast-tank sets come), half clean
    steel with an empty mask: what the rust-region model learns its pixels from."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    sizes = [tuple(s) for s in size.labelled_sizes]
    for i in range(size.region_photos):
        w, h = sizes[i % len(sizes)]
        rust = i % 2 == 0
        background = str(rng.choice(synthetic.BACKGROUNDS if rust or rng.random() < 0.6 else synthetic.HARD_NEGATIVES))
        # small spots too (down to 3 % of the side): a 12 MP photo's tiles show rust that small
        patches = int(rng.integers(1, 5)) if rust else 0
        pixels, _, drawn = synthetic.render_with_mask(rng, w, h, patches, background, patch_scale=(0.03, 0.3))
        (root / "images" / f"region_{i:04d}.jpg").write_bytes(synthetic.encode_image(pixels, quality=92))
        (root / "masks" / f"region_{i:04d}.png").write_bytes(
            synthetic.encode_image(drawn.astype(np.uint8) * 255, "PNG")
        )
    log.info("generated %d photos with rust masks in %s", size.region_photos, root)


# The demo survey's assets: (latitude, longitude) of each one's middle, a few hundred metres apart
# in a harbour, and its zones; photos are filed as ASSET/ZONE/NAME.jpg (--asset_pattern below).
ASSETS = {
    "bridge-north": (53.5461, 9.9665, ("girder-east", "deck")),
    "tank-7": (53.5440, 9.9712, ("roof", "shell")),
    "jetty-2": (53.5425, 9.9640, ("piles", "fenders")),
}
ASSET_PATTERN = "{asset}/{zone}/..."
NIGHTS = ("2025-06-11", "2025-06-12")  # the previous night and tonight (--run_date)
WORSE_ZONE = ("bridge-north", "girder-east")  # the zone where tonight's photos show new rust


def exif_bytes(latitude: float, longitude: float, altitude: float, taken: dt.datetime) -> bytes:
    """A drone camera's EXIF: capture time (local, with its UTC offset), GPS position and altitude."""

    def dms(v: float) -> tuple[float, float, float]:
        v = abs(v)
        d, m = int(v), int(abs(v) * 60) % 60
        return float(d), float(m), round((v * 3600) % 60, 4)

    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = "DJI", "FC3411"
    sub = exif.get_ifd(ExifTags.IFD.Exif)
    sub[0x9003], sub[0x9011] = taken.strftime("%Y:%m:%d %H:%M:%S"), "+02:00"
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[1], gps[2] = "N" if latitude >= 0 else "S", dms(latitude)
    gps[3], gps[4] = "E" if longitude >= 0 else "W", dms(longitude)
    gps[5], gps[6] = b"\x00", float(altitude)
    return exif.tobytes()


def _with_exif(pixels: np.ndarray, exif: bytes, quality: int) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "JPEG", quality=quality, exif=exif)
    return out.getvalue()


def _place(rng: np.random.Generator, i: int, zones: list[tuple[str, str]]) -> tuple[str, str, float, float]:
    """The i-th photo's asset, zone and GPS position (a zone is a patch of its asset, a few metres wide)."""
    asset, zone = zones[i % len(zones)]
    lat, lon, names = ASSETS[asset]
    k = names.index(zone)
    return asset, zone, lat + 0.00025 * k + float(rng.normal(0, 0.00005)), lon + float(rng.normal(0, 0.0001))


def generate_night(root: Path, size: DemoSize, seed: int) -> synthetic.Survey:
    """Tonight's survey: ordinary photos, a few 12 MP ones with small spots, a few unreadable files.

    Photos lie in ASSET/ZONE folders and carry EXIF capture times and GPS, as a drone survey's do;
    the unreadable files stay at the top (no asset). Truth: ``<root>_truth.json`` by file name.
    """
    survey = synthetic.generate_survey(
        root, "flat", n_rust=size.night_images // 2, n_clean=size.night_images - size.night_images // 2,
        size=[tuple(s) for s in size.night_sizes], seed=seed, hard_negative_fraction=0.4,
        bad_files=("truncated", "empty", "not_image", "huge"),
    )  # fmt: skip
    rng = np.random.default_rng(seed)
    for i in range(size.night_large):
        pixels, boxes = synthetic.render(rng, 4000, 3000, 2, "steel", patch_scale=(0.02, 0.05))
        name = f"large_{i:02d}.jpg"
        (root / name).write_bytes(synthetic.encode_image(pixels, quality=90))
        survey.images.append(synthetic.SyntheticImage(name, 4000, 3000, "rust", boxes, "steel"))
    zones = [(a, z) for a, (_, _, names) in ASSETS.items() for z in names]
    tonight = dt.datetime.fromisoformat(NIGHTS[1] + "T21:00")
    for i, image in enumerate(survey.images):
        asset, zone, lat, lon = _place(rng, i, zones)
        src, dst = root / image.path, root / asset / zone / image.path
        dst.parent.mkdir(parents=True, exist_ok=True)
        pixels = np.asarray(Image.open(src).convert("RGB"))
        dst.write_bytes(_with_exif(pixels, exif_bytes(lat, lon, 30.0, tonight + dt.timedelta(seconds=20 * i)), 92))
        src.unlink()
    (root.parent / f"{root.name}_truth.json").write_text(survey.truth_json())
    log.info(
        "generated survey night: %d images (%d of 12 MP) on %d assets, %d unreadable files",
        len(survey.images), size.night_large, len(ASSETS), len(survey.bad_files),
    )  # fmt: skip
    return survey


def previous_night(root: Path, survey: synthetic.Survey, seed: int) -> dict[Path, bytes | None]:
    """Turn tonight's folder into the previous night's: WORSE_ZONE's rust photos clean, one more photo.

    Returns what to put back for tonight (the bytes, or None for the photo that goes missing), so
    both nights lie at the same paths, as an archive re-surveyed in place does.
    """
    rng = np.random.default_rng(seed)
    yesterday = dt.datetime.fromisoformat(NIGHTS[0] + "T21:00")
    lat, lon, _ = ASSETS[WORSE_ZONE[0]]
    folder = root.joinpath(*WORSE_ZONE)
    rust = {i.path for i in survey.rust_images}
    restore: dict[Path, bytes | None] = {}
    for k, photo in enumerate(sorted(p for p in folder.iterdir() if p.name in rust)):  # all: the zone was sound
        restore[photo] = photo.read_bytes()
        w, h = Image.open(photo).size
        pixels, _ = synthetic.render(rng, w, h, 0, "steel")
        photo.write_bytes(_with_exif(pixels, exif_bytes(lat, lon, 30.0, yesterday + dt.timedelta(seconds=20 * k)), 92))
    gone = root / "tank-7" / "shell" / "gone_00.jpg"  # photographed last night, not tonight
    pixels, _ = synthetic.render(rng, 640, 480, 0, "steel")
    tank_lat, tank_lon, _ = ASSETS["tank-7"]
    gone.write_bytes(_with_exif(pixels, exif_bytes(tank_lat + 0.00025, tank_lon, 30.0, yesterday), 92))
    restore[gone] = None
    log.info(
        "previous night: %d rust photos of %s clean, %s present", len(restore) - 1, "/".join(WORSE_ZONE), gone.name
    )
    return restore


def restore_tonight(restore: dict[Path, bytes | None]) -> None:
    for path, data in restore.items():
        if data is None:
            path.unlink()
        else:
            path.write_bytes(data)


@dataclass(frozen=True)
class Places:
    """Where the demo keeps each thing: local folders, or gs:// on the local emulators (--cloud)."""

    root: str  # workdir, or gs://BUCKET
    cloud: emulators.LocalCloud | None = None

    def at(self, *parts: str) -> str:
        return io_utils.join(self.root, *parts)

    def publish(self, local: Path, *parts: str) -> str:
        """``local`` where the night's job will read it: itself, or uploaded (gsutil cp -r)."""
        if self.cloud is None:
            return str(local)
        staging.upload_folder(str(local), self.at(*parts))
        log.info("uploaded %s to %s", local, self.at(*parts))
        return self.at(*parts)

    def job_flags(self) -> list[str]:
        """Batch inference's BigQuery load and the Beam flags it needs (as on Dataflow)."""
        if self.cloud is None:
            return []
        return [
            "--bigquery_table", f"{self.cloud.project}:{BIGQUERY_DATASET}.rust",
            "--temp_location", self.at("tmp"), "--project", self.cloud.project,
        ]  # fmt: skip


def run_demo(workdir: Path, data: str | None, tiny: bool, seed: int = 7, cloud: bool = False) -> dict:
    size = getattr(load_config(DemoConfig, config_path("demo.yaml")), "tiny" if tiny else "full")
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    if not cloud:
        return run_chain(workdir, Places(str(workdir)), data, tiny, size, seed)
    with emulators.local_cloud(workdir / "local-cloud") as local_cloud, _environment(local_cloud.environment()):
        local_cloud.create_bucket(BUCKET)
        from google.cloud import bigquery

        bigquery.Client(project=local_cloud.project).create_dataset(BIGQUERY_DATASET, exists_ok=True)
        log.info("local GCS at %s, BigQuery at %s (files under %s)", local_cloud.gcs.url, local_cloud.bigquery.url,
                 local_cloud.gcs_files)  # fmt: skip
        return run_chain(workdir, Places(f"gs://{BUCKET}", local_cloud), data, tiny, size, seed)


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """``values`` in os.environ (the steps are subprocesses: they inherit it), restored afterwards."""
    before = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run_chain(workdir: Path, places: Places, data: str | None, tiny: bool, size: DemoSize, seed: int) -> dict:
    started = time.monotonic()
    if data is None:
        generate_labelled(workdir / "labelled", size, seed)
        generate_region_labelled(workdir / "labelled_regions", size, seed + 2)
    folders = [Path(data)] if data else [workdir / "labelled", workdir / "labelled_regions"]
    sources = [places.publish(folder, folder.name) for folder in folders]
    dataset, models = places.at("dataset"), workdir / "models"
    _step("build data set", "pipelines.build_dataset", *(a for s in sources for a in ("--input", s)),
          "--output_dir", dataset)  # fmt: skip
    w = pick_weights(tiny)
    _step(
        "train classifier", "training.train_classifier", "--data", dataset, "--model_dir", str(models / "classifier"),
        "--set", f"input_size={size.classifier_input_size}", "--head_epochs", str(size.classifier_head_epochs),
        "--fine_tune_epochs", str(size.classifier_fine_tune_epochs), "--weights", w,
    )  # fmt: skip
    _step(
        "train rust-region model", "training.train_segmenter", "--data", dataset, "--model_dir", str(models / "regions"),
        "--input_size", str(size.regions_input_size), "--head_epochs", str(size.regions_head_epochs),
        "--weights", pick_weights(tiny, regions_backbone()),
    )  # fmt: skip
    results, report = places.at("results"), places.at("report", "index.html")
    classifier = places.publish(models / "classifier", "models", "classifier")
    regions = places.publish(models / "regions", "models", "regions")
    night_flags = ["--classifier", classifier, "--regions", regions, "--output", results, "--survey_id", "demo-night"]
    if data is None:
        night = workdir / "survey_night"
        survey = generate_night(night, size, seed + 1)
        where = ["--asset_pattern", ASSET_PATTERN]
        if places.cloud is None:  # the previous night first, at the same paths, so tonight has changes
            restore = previous_night(night, survey, seed + 3)
            _step("batch inference, previous night", "pipelines.batch_inference", "--input", f"{night}/**",
                  *night_flags, *where, "--run_date", NIGHTS[0])  # fmt: skip
            restore_tonight(restore)
        inputs = ["--input", places.publish(night, "survey_night") + "/**", *where]
    else:  # a real folder: score its held-out test split, which no model saw in training
        inputs = ["--input_list", test_split_list(dataset, places.at("test_images.txt"))]
    _step(
        "batch inference", "pipelines.batch_inference", *inputs, *night_flags,
        "--previews", places.at("report", "previews"), "--masks", places.at("report", "masks"),
        "--report", report, "--run_date", NIGHTS[1], *places.job_flags(),
    )  # fmt: skip
    return summarise(workdir, places, results, report, time.monotonic() - started)


def test_split_list(dataset: str, out: str) -> str:
    """The data set's kept test-split images, one path a line, for --input_list."""
    rows = csv.DictReader(io.StringIO(io_utils.read_text(io_utils.join(dataset, "manifest.csv"))))
    paths = [r["path"] for r in rows if r["status"] == "kept" and r["split"] == "test"]
    io_utils.write_text(out, "\n".join(paths) + "\n")
    log.info("scoring the %d held-out test images of %s", len(paths), dataset)
    return out


def warehouse_rows(places: Places) -> int | None:
    """Rows of the demo night in the BigQuery table (None without --cloud)."""
    if places.cloud is None:
        return None
    from google.cloud import bigquery

    table = f"{places.cloud.project}.{BIGQUERY_DATASET}.rust"
    return next(iter(bigquery.Client(project=places.cloud.project).query(f"SELECT COUNT(*) FROM `{table}`").result()))[
        0
    ]


def summarise(workdir: Path, places: Places, results: str, report: str, seconds: float) -> dict:
    tonight = io_utils.join(results, f"date={NIGHTS[1]}")  # the previous night's rows are the comparison's
    result_files = io_utils.matching(io_utils.join(tonight, "*-results-*.csv"))
    error_files = io_utils.matching(io_utils.join(tonight, "*-errors-*.csv"))
    change_files = io_utils.matching(io_utils.join(tonight, "*-changes*.csv"))
    changes = [r for f in change_files for r in csv.DictReader(io.StringIO(io_utils.read_text(f)))]
    rows = [r for f in result_files for r in csv.DictReader(io.StringIO(io_utils.read_text(f)))]
    errors = [r for f in error_files for r in csv.DictReader(io.StringIO(io_utils.read_text(f)))]
    rust = [r for r in rows if r["is_rust"].lower() == "true"]
    summary = {
        "results_csv": result_files,
        "errors_csv": error_files,
        "changes_csv": change_files,
        "previews": places.at("report", "previews"),
        "masks": places.at("report", "masks"),
        "report": report,
        "images": len(rows) + len(errors),
        "scored": len(rows),
        "rust_images": len(rust),
        "errors": len(errors),
        "changes": len(changes),
        "bigquery_rows": warehouse_rows(places),
        "seconds": round(seconds),
    }
    (workdir / "demo_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"\nDemo finished in {seconds:.0f} s. Outputs:")
    print(f"  results CSV : {', '.join(result_files)}")
    print(f"  errors CSV  : {', '.join(error_files)}")
    print(f"  changes CSV : {', '.join(change_files) or '(no earlier night)'}")
    print(f"  previews    : {summary['previews']}")
    print(f"  rust masks  : {summary['masks']}")
    print(f"  HTML report : {report}  (open it in a browser: worst rust, what got worse, what to look at first)")
    if places.cloud is not None:
        print(f"  BigQuery    : {summary['bigquery_rows']} rows in {places.cloud.project}:{BIGQUERY_DATASET}.rust")
        on_disk = places.cloud.gcs_files / report.removeprefix("gs://")
        print(f"  report file : {on_disk} (the emulator keeps objects as files; it is stopped now)")
    print(
        f"Summary: {summary['images']} images, {summary['rust_images']} rust images, {summary['errors']} errors "
        f"(unreadable files), {summary['changes']} changes since {NIGHTS[0]}"
    )
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--data", help="a real labelled folder (VOC, YOLO or class folders) instead of generated photos"
    )
    parser.add_argument("--workdir", default="demo_out", help="where everything goes (wiped first)")
    parser.add_argument("--tiny", action="store_true", help="tiny sizes and random weights (the CI test)")
    parser.add_argument(
        "--cloud", action="store_true", help="data, models and outputs on gs:// and rows into BigQuery, both emulated"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s demo: %(message)s")
    run_demo(Path(args.workdir), args.data, args.tiny, cloud=args.cloud)
    return 0


if __name__ == "__main__":
    sys.exit(main())
