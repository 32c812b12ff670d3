"""The night users run (classifier + tiled rust-region model) on 12 MP JPEGs, against what they
would pick instead and against the machine's limits, all in one run (issue 29).

(a) the default night: ``python -m pipelines.batch_inference --classifier C --regions S`` with the
    shipped settings (``configs/inference.yaml``), in its own process as a user runs it; incl.
    start-up, and steady state (the marginal rate between a small and a large run);
(b) a SAHI-style loop with the same segmenter: full PIL decode, the same tile grid
    (``tiling.tile_grid``: 1024 px tiles, 192 px overlap, plus SAHI's whole-image pass), each tile
    resized to the model input and predicted one at a time (the SavedModel's pixels signature),
    the maps stitched onto the full-resolution photo (``tiling.stitch_maps``), thresholded;
(c) the article loop for the classifier alone (``bench_inference.article_way``): full decode,
    resize, Keras ``predict`` one photo at a time;
(d) ceilings: both of the night's decodes alone on all cores (one process per core), and the
    segmenter alone on pre-decoded tiles, batches of 32, on all cores (one process per core with one
    TensorFlow thread each, as the night runs it, and one process with TensorFlow on every core: the
    better of the two);
(e) CPU-seconds per photo of each stage, measured stage by stage on one thread in a process of its
    own (the night's own functions: ``classifier_pixels``, ``decode_for_detector``,
    ``detector_views``, the model, ``stitch_maps``, ``scored_regions``), beside the night's total
    CPU-seconds per photo (the job's own rusage, marginal between the small and the large run); the
    remainder is Beam, rows, writes and what the isolated stages do not see.

The machine is shared and noisy, so every figure is a ratio within this run: the rounds interleave
(a)-(d) ``--repeats`` times and each figure keeps its best round. Writes ``bench_out/night.json``.

    python -m benchmarks.bench_night [--photos 24] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from benchmarks import bench_inference
from corrosion.core.config import config_path, load_config
from corrosion.inference import tiling
from corrosion.models import serving
from corrosion.models.lite_runtime import has_lite
from pipelines.inference.config import InferenceConfig
from pipelines.local_runner import LOCAL_RUNNER

log = logging.getLogger("benchmarks.bench_night")
REPO = Path(__file__).resolve().parent.parent
REAL_SEGMENTERS = (REPO / "out" / "models" / "segmenter",)
TARGET_PHOTOS_PER_S = 10.0


def shipped_config() -> InferenceConfig:
    return load_config(InferenceConfig, config_path("inference.yaml"))


# ------------------------------------------------------------------ (a) the default night


def night_run(folder: Path, classifier: str, segmenter: str, out: Path, workers: int, runtime: str = "auto") -> dict:
    """One run of the job as a user runs it: wall seconds, its own seconds, CPU-seconds (rusage)."""
    if out.exists():
        shutil.rmtree(out)
    argv = [
        "--input", str(folder / "*.jpg"), "--classifier", classifier, "--regions", segmenter, "--output", str(out),
        f"--runner={LOCAL_RUNNER}", "--direct_running_mode=multi_threading", f"--direct_num_workers={workers}",
        f"--detector_runtime={runtime}",
    ]  # fmt: skip
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "pipelines.batch_inference", *argv], cwd=REPO, capture_output=True, text=True
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"batch_inference failed ({done.returncode}):\n{done.stderr[-4000:]}")
    summary = json.loads(done.stdout[done.stdout.index("{") :])
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {
        "wall_s": wall,
        "job_s": summary["seconds"],
        "cpu_s": cpu,
        "scored": summary["counters"]["images_scored"],
        "views": summary["counters"].get("detector_views", 0),
        "detector_runtime": summary.get("detector_runtime"),
        "classifier_runtime": summary.get("classifier_runtime"),
    }


# ------------------------------------------------------------------ (b) the SAHI-style loop


def sahi_rust_map(path: Path, model, input_size: int, tile_size: int, overlap: int) -> tuple[np.ndarray, int]:
    """SAHI's way with a segmenter: full decode, slice, predict tile by tile, stitch at full size.

    Returns the full-resolution rust probability map and the number of views (tiles + whole image).
    """
    img = ImageOps.exif_transpose(Image.open(path)).convert("RGB")
    width, height = img.size
    views = tiling.tile_grid(width, height, tile_size, overlap)
    if len(views) > 1:
        views.append(tiling.Tile(0, 0, width, height))  # SAHI's perform_standard_pred
    maps = []
    for view in views:
        crop = img.crop((view.x0, view.y0, view.x1, view.y1)).resize(
            (input_size, input_size), Image.Resampling.BILINEAR
        )
        maps.append(model(np.asarray(crop, np.float32)[None])[0])
    return tiling.stitch_maps(maps, views, width, height), len(views)


def sahi_loop(
    paths: list[Path], model, input_size: int, threshold: float, config: InferenceConfig
) -> tuple[float, float]:
    """Photos/s and CPU-seconds per photo (this process, all threads) of the SAHI-style loop (the
    model already loaded and traced)."""
    t = config.tiling
    start, cpu = time.perf_counter(), time.process_time()
    for path in paths:
        prob, _ = sahi_rust_map(path, model, input_size, t.tile_size, t.overlap)
        float((prob >= threshold).mean())
    return len(paths) / (time.perf_counter() - start), (time.process_time() - cpu) / len(paths)


# ------------------------------------------------------------------ (d) ceilings, (e) stages: worker processes


def _init_worker(threads: int | None) -> None:
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if threads:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)


def _night_decodes(path: str) -> None:
    """Both decodes the night makes of a photo: the classifier's reduced one and the segmenter's."""
    from corrosion.imaging import images
    from pipelines.inference.handlers import ImageRecord, decode_for_detector

    data = Path(path).read_bytes()
    config = shipped_config()
    info = images.probe(data, path)
    images.decode(data, path, reduce_to=(224, 224))
    decode_for_detector(ImageRecord(path, "", info.width, info.height, data), 256, config)


def decode_ceiling(paths: list[Path], workers: int) -> float:
    """Photos/s of the night's two decodes alone, one process per core (pool start not counted)."""
    with ProcessPoolExecutor(
        workers, mp_context=get_context("spawn"), initializer=_init_worker, initargs=(None,)
    ) as pool:
        list(pool.map(_night_decodes, [str(p) for p in paths[:workers]], chunksize=1))  # imports not counted
        start = time.perf_counter()
        list(pool.map(_night_decodes, [str(p) for p in paths], chunksize=1))
        return len(paths) / (time.perf_counter() - start)


def _ceiling_worker(segmenter: str, tiles_file: str, batches: int, barrier, results, runtime: str) -> None:
    """One 1-thread process: load and trace the model, wait for the others, run its batches."""
    _init_worker(1)
    from corrosion.models.lite_runtime import LiteSegmenter
    from pipelines.inference.handlers import SavedSegmenter

    tiles = np.load(tiles_file)
    model = LiteSegmenter.from_model_dir(segmenter, 1) if runtime == "litert" else SavedSegmenter(segmenter)
    model(tiles)  # tracing not counted
    barrier.wait()
    start = time.time()
    for _ in range(batches):
        model(tiles)
    results.put((start, time.time(), batches * len(tiles)))


def compute_ceiling_processes(
    segmenter: str, tiles_file: str, batches: int, workers: int, runtime: str = "savedmodel"
) -> float:
    """Tiles/s of the segmenter alone on pre-decoded batches, one 1-thread process per core, all
    starting together once every one has loaded its model."""
    ctx = get_context("spawn")
    barrier, results = ctx.Barrier(workers), ctx.Queue()
    share = [batches // workers + (i < batches % workers) for i in range(workers)]
    procs = [
        ctx.Process(target=_ceiling_worker, args=(segmenter, tiles_file, n, barrier, results, runtime)) for n in share
    ]
    for proc in procs:
        proc.start()
    done = [results.get(timeout=600) for _ in procs]
    for proc in procs:
        proc.join()
    return sum(n for _, _, n in done) / (max(e for _, e, _ in done) - min(s for s, _, _ in done))


def compute_ceiling_in_process(model, tiles: np.ndarray, batches: int) -> float:
    """Tiles/s of the segmenter alone, one process, TensorFlow's default threads (every core)."""
    model(tiles)
    start = time.perf_counter()
    for _ in range(batches):
        model(tiles)
    return batches * len(tiles) / (time.perf_counter() - start)


def stage_seconds(paths: list[str], classifier: str, segmenter: str) -> dict[str, float]:
    """CPU-seconds per photo of each stage of the night, on one thread (run in a 1-thread worker)."""
    import hashlib

    from corrosion.data import regions
    from corrosion.imaging import images, preprocess
    from corrosion.models.lite_runtime import LiteClassifier, LiteSegmenter, has_lite
    from pipelines.inference import handlers

    config = shipped_config()
    meta = serving.read_metadata(segmenter)
    cmeta = serving.read_metadata(classifier)
    seg = handlers.SavedSegmenter(segmenter)
    lite = LiteSegmenter.from_model_dir(segmenter, 1) if has_lite(segmenter, "segmenter") else None
    agreement = {"tp": 0, "fp": 0, "fn": 0, "rusted_pct_abs_diff": []}
    cls = (
        LiteClassifier.from_model_dir(classifier, 1) if has_lite(classifier) else handlers._SavedClassifier(classifier)
    )
    resize = preprocess.resize_one(cmeta.input_size)
    totals: dict[str, float] = {}

    def timed(name: str, fn, *args):
        start = time.process_time()
        out = fn(*args)
        totals[name] = totals.get(name, 0.0) + time.process_time() - start
        return out

    for warm in (True, False):  # a first pass traces every function; only the second is counted
        for path in paths[:1] if warm else paths:
            data = timed("read_and_sha256", Path(path).read_bytes)
            timed("read_and_sha256", hashlib.sha256, data)
            info = timed("classifier_decode", images.probe, data, path)
            small = timed("classifier_decode", images.decode, data, path, images.DEFAULT_MAX_PIXELS, (224, 224))
            pixels = timed("classifier_resize", lambda img: resize(np.asarray(img)).numpy(), small)
            timed("classifier_model", cls, pixels[None])
            record = handlers.ImageRecord(path, "", info.width, info.height, data)
            img = timed("segmenter_decode", handlers.decode_for_detector, record, meta.input_size, config)
            views, tiles, _, _ = timed("segmenter_tiles_resize", handlers.detector_views, img, record, 256, config)
            maps = timed("segmenter_model", seg, tiles)
            prob = timed("stitch", tiling.stitch_maps, maps, views, *img.size)
            extra = meta.extra
            timed(
                "regions_and_mask",
                regions.scored_regions,
                prob,
                meta.threshold,
                extra.get("region_merge_radius", 0.02),
                extra.get("min_region_area", 0.002),
            )
            timed("regions_and_mask", lambda p: float((p >= meta.threshold).mean()), prob)
            if (
                lite is not None
            ):  # the LiteRT copy on the same views: its time (apart) and its mask against the float one
                lite_maps = timed("segmenter_model_litert", lite, tiles)
                rust, lite_rust = (
                    prob >= meta.threshold,
                    tiling.stitch_maps(lite_maps, views, *img.size) >= meta.threshold,
                )
                agreement["tp"] += int((rust & lite_rust).sum())
                agreement["fp"] += int((lite_rust & ~rust).sum())
                agreement["fn"] += int((rust & ~lite_rust).sum())
                agreement["rusted_pct_abs_diff"].append(abs(float(rust.mean() - lite_rust.mean())) * 100)
        if warm:
            totals.clear()
    out = {k: v / len(paths) for k, v in totals.items()}
    if lite is not None:
        tp, fp, fn = agreement["tp"], agreement["fp"], agreement["fn"]
        out["litert_vs_float_pixel_f1"] = 2 * tp / max(1, 2 * tp + fp + fn)
        out["litert_vs_float_rusted_pct_mae"] = float(np.mean(agreement["rusted_pct_abs_diff"]))
    return out


def run_stages(paths: list[Path], classifier: str, segmenter: str) -> dict[str, float]:
    with ProcessPoolExecutor(1, mp_context=get_context("spawn"), initializer=_init_worker, initargs=(1,)) as pool:
        return pool.submit(stage_seconds, [str(p) for p in paths], classifier, segmenter).result()


# ------------------------------------------------------------------ main


def find_segmenter(work: Path, given: str | None) -> str:
    if given:
        return given
    found = [str(d) for d in REAL_SEGMENTERS if (d / serving.METADATA_FILE).exists()]
    return found[0] if found else bench_inference.export_bench_segmenter(work / "segmenter", lite=True)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=int, default=16, help="photos of the large night run (and the ceilings)")
    parser.add_argument("--small_photos", type=int, default=4, help="photos of the small night run (steady state)")
    parser.add_argument("--loop_photos", type=int, default=6, help="photos the SAHI-style loop scores a round")
    parser.add_argument("--article_photos", type=int, default=12, help="photos the article classifier loop scores")
    parser.add_argument("--stage_photos", type=int, default=4, help="photos timed stage by stage")
    parser.add_argument("--unique", type=int, default=4, help="distinct renders (copied: rendering is slow)")
    parser.add_argument("--repeats", type=int, default=2, help="interleaved rounds; each figure keeps its best")
    parser.add_argument("--width", type=int, default=4000)
    parser.add_argument("--height", type=int, default=3000)
    parser.add_argument("--classifier", help="exported classifier (default out/models/classifier, else MobileNetV2)")
    parser.add_argument("--regions", help="segmenter (default out/models/segmenter, else its shape, random weights)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--out", default=str(REPO / "bench_out" / "night.json"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = shipped_config()
    work = Path(tempfile.mkdtemp(prefix="bench_night_"))
    try:
        classifier = bench_inference.bench_classifier(args.classifier, work)
        segmenter = find_segmenter(work, args.regions)
        lite = has_lite(segmenter, "segmenter")
        seg_meta = serving.read_metadata(segmenter)
        size = seg_meta.input_size
        log.info("classifier %s, segmenter %s; rendering %d photos", classifier, segmenter, args.unique)
        paths = bench_inference.make_photos(work / "photos", args.photos, args.unique, (args.width, args.height))
        small = work / "small"
        small.mkdir()
        for path in paths[: args.small_photos]:
            os.link(path, small / path.name)

        # pre-decoded tiles for the compute ceiling: one photo's views as the night cuts them, to 32
        from pipelines.inference import handlers

        record_info = Image.open(paths[0]).size
        record = handlers.ImageRecord(str(paths[0]), "", *record_info, paths[0].read_bytes())
        views, tiles, _, _ = handlers.detector_views(
            handlers.decode_for_detector(record, size, config), record, size, config
        )
        views_per_photo = len(views)
        batch = config.tile_batch_size
        tiles = np.concatenate([tiles] * math.ceil(batch / len(tiles)))[:batch]
        tiles_file = work / "tiles.npy"
        np.save(tiles_file, tiles)
        ceiling_batches = max(args.workers, math.ceil(args.photos * views_per_photo / batch))

        model = handlers.SavedSegmenter(segmenter)  # this process: TensorFlow's default threads, as a user's loop
        model(tiles[:1])
        rounds = []
        for r in range(args.repeats):
            log.info("round %d of %d", r + 1, args.repeats)
            one = {}
            one["night_large"] = night_run(
                work / "photos", classifier, segmenter, work / "out_l", args.workers, "savedmodel"
            )
            one["sahi"], one["sahi_cpu_per_photo"] = sahi_loop(
                paths[: args.loop_photos], model, size, seg_meta.threshold, config
            )
            one["night_small"] = night_run(small, classifier, segmenter, work / "out_s", args.workers, "savedmodel")
            if lite:
                one["lite_large"] = night_run(
                    work / "photos", classifier, segmenter, work / "out_ll", args.workers, "litert"
                )
                one["lite_small"] = night_run(small, classifier, segmenter, work / "out_ls", args.workers, "litert")
                one["compute_tiles_litert"] = compute_ceiling_processes(
                    segmenter, str(tiles_file), ceiling_batches, args.workers, "litert"
                )
            one["article"] = bench_inference.article_way(paths[: args.article_photos], classifier, 224)
            one["decode_ceiling"] = decode_ceiling(paths, args.workers)
            one["compute_tiles_processes"] = compute_ceiling_processes(
                segmenter, str(tiles_file), ceiling_batches, args.workers
            )
            one["compute_tiles_in_process"] = compute_ceiling_in_process(model, tiles, ceiling_batches)
            large, sm = one["night_large"], one["night_small"]
            one["night_rate"] = large["scored"] / large["wall_s"]
            one["night_steady"] = (args.photos - args.small_photos) / (large["job_s"] - sm["job_s"])
            one["night_cpu_per_photo"] = (large["cpu_s"] - sm["cpu_s"]) / (args.photos - args.small_photos)
            one["compute_ceiling"] = (
                max(one["compute_tiles_processes"], one["compute_tiles_in_process"]) / views_per_photo
            )
            one["tighter_ceiling"] = min(one["decode_ceiling"], one["compute_ceiling"])
            one["night_vs_sahi"] = one["night_steady"] / one["sahi"]
            if lite:
                ll, ls = one["lite_large"], one["lite_small"]
                one["lite_steady"] = (args.photos - args.small_photos) / (ll["job_s"] - ls["job_s"])
                one["lite_cpu_per_photo"] = (ll["cpu_s"] - ls["cpu_s"]) / (args.photos - args.small_photos)
                one["lite_compute_ceiling"] = min(one["decode_ceiling"], one["compute_tiles_litert"] / views_per_photo)
                one["lite_vs_today"] = one["lite_steady"] / one["night_steady"]
                one["lite_vs_sahi"] = one["lite_steady"] / one["sahi"]
                one["lite_vs_its_ceiling"] = one["lite_steady"] / one["lite_compute_ceiling"]
            one["night_vs_tighter_ceiling"] = one["night_steady"] / one["tighter_ceiling"]
            log.info(
                "night %.2f (steady %.2f) photos/s, SAHI %.2f, article %.2f, ceilings decode %.2f compute %.2f",
                one["night_rate"], one["night_steady"], one["sahi"], one["article"], one["decode_ceiling"],
                one["compute_ceiling"],
            )  # fmt: skip
            rounds.append(one)
        stages = run_stages(paths[: args.stage_photos], classifier, segmenter)
        lite_keys = ("segmenter_model_litert", "litert_vs_float_pixel_f1", "litert_vs_float_rusted_pct_mae")
        lite_stage = {k: stages.pop(k) for k in lite_keys if k in stages}
        classifier_version = serving.read_metadata(classifier).version
    finally:
        shutil.rmtree(work, ignore_errors=True)

    def best(key: str) -> float:
        return max(r[key] for r in rounds)

    def per_round(key: str) -> dict[str, float]:
        values = sorted(r[key] for r in rounds)
        return {"median": round(float(np.median(values)), 3), "min": round(values[0], 3), "max": round(values[-1], 3)}

    steady, sahi, tighter = best("night_steady"), best("sahi"), best("tighter_ceiling")
    stage_total = sum(stages.values())
    night_cpu = min(r["night_cpu_per_photo"] for r in rounds)
    figures = {
        "photos": args.photos,
        "small_photos": args.small_photos,
        "image_size": [args.width, args.height],
        "cpu_count": os.cpu_count(),
        "classifier": classifier_version,
        "segmenter": seg_meta.version,
        "classifier_runtime": rounds[0]["night_large"]["classifier_runtime"],
        "segmenter_runtime": "today: savedmodel (shipped segmenters have no LiteRT copy); candidate: litert",
        "views_per_photo": views_per_photo,
        "settings": {
            "tile_size": config.tiling.tile_size,
            "overlap": config.tiling.overlap,
            "tile_batch_size": config.tile_batch_size,
            "detector_images_per_batch": config.detector_images_per_batch,
            "tf_threads_per_call": config.tf_threads_per_call,
            "workers": args.workers,
        },
        "photos_per_s": {
            "night_incl_startup": round(best("night_rate"), 3),
            "night_steady": round(steady, 3),
            "sahi_loop_same_segmenter": round(sahi, 3),
            "article_loop_classifier_only": round(best("article"), 3),
            "decode_ceiling_all_cores": round(best("decode_ceiling"), 3),
            "compute_ceiling_segmenter_all_cores": round(best("compute_ceiling"), 3),
        },
        "segmenter_tiles_per_s": {
            "processes_1_thread_each": round(best("compute_tiles_processes"), 2),
            "one_process_all_threads": round(best("compute_tiles_in_process"), 2),
        },
        # the least disturbed figures: what the cores would do at full use, from CPU-seconds a photo
        "photos_per_s_from_cpu_s_all_cores": {
            "night": round(args.workers / night_cpu, 3),
            "compute_ceiling": round(args.workers / stages["segmenter_model"], 3),
            "night_vs_compute_ceiling": round(stages["segmenter_model"] / night_cpu, 3),
        },
        "ratios_per_round": {
            "night_steady_vs_sahi_loop": per_round("night_vs_sahi"),
            "night_steady_vs_tighter_ceiling": per_round("night_vs_tighter_ceiling"),
        },
        "ratios": {
            "sahi_cpu_s_per_photo_vs_night": round(min(r["sahi_cpu_per_photo"] for r in rounds) / night_cpu, 3),
            "night_steady_vs_sahi_loop": round(steady / sahi, 2),
            "night_steady_vs_tighter_ceiling": round(steady / tighter, 3),
            "night_steady_vs_article_classifier_loop": round(steady / best("article"), 3),
            "night_steady_vs_target_10_per_s": round(steady / TARGET_PHOTOS_PER_S, 3),
        },
        "targets": {
            "night_photos_per_s": f">= min({TARGET_PHOTOS_PER_S}, 2x today's rate)",
            "night_vs_sahi": ">= 3",
            "night_vs_tighter_ceiling": ">= 0.7",
        },
        "cpu_s_per_photo": {
            "stages_one_thread": {k: round(v, 4) for k, v in stages.items()},
            "stages_sum": round(stage_total, 4),
            "night_total_marginal": round(night_cpu, 4),
            "sahi_loop": round(min(r["sahi_cpu_per_photo"] for r in rounds), 4),
            "night_remainder_beam_rows_writes": round(night_cpu - stage_total, 4),
        },
        "litert_candidate": {
            "night_steady_photos_per_s": round(best("lite_steady"), 3),
            "vs_today_per_round": per_round("lite_vs_today"),
            "vs_sahi_loop_per_round": per_round("lite_vs_sahi"),
            "vs_its_tighter_ceiling_per_round": per_round("lite_vs_its_ceiling"),
            "cpu_s_per_photo": round(min(r["lite_cpu_per_photo"] for r in rounds), 4),
            "today_cpu_s_per_photo_vs_litert": round(night_cpu / min(r["lite_cpu_per_photo"] for r in rounds), 3),
            "photos_per_s_from_cpu_s_all_cores": round(args.workers / min(r["lite_cpu_per_photo"] for r in rounds), 3),
            "compute_ceiling_photos_per_s": round(best("lite_compute_ceiling"), 3),
            "segmenter_model_cpu_s_per_photo_one_thread": round(lite_stage["segmenter_model_litert"], 4),
            "segmenter_model_vs_savedmodel": round(stages["segmenter_model"] / lite_stage["segmenter_model_litert"], 2),
            "pixel_f1_vs_float": round(lite_stage["litert_vs_float_pixel_f1"], 5),
            "rusted_pct_mae_vs_float": round(lite_stage["litert_vs_float_rusted_pct_mae"], 4),
            "tolerance": "pixel F1 within 0.005 and rusted-% MAE within 0.1 points of the float model",
        }
        if lite
        else None,
        "stage_share_of_night_cpu": {k: round(v / night_cpu, 3) for k, v in stages.items()}
        | {"beam_rows_writes_other": round((night_cpu - stage_total) / night_cpu, 3)},
        "rounds": [
            {k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items() if not isinstance(v, dict)}
            | {
                "night_large_wall_s": round(r["night_large"]["wall_s"], 2),
                "night_small_wall_s": round(r["night_small"]["wall_s"], 2),
            }
            for r in rounds
        ],
        "note": "ratios within one run on a shared machine; photos_per_s and ratios: each figure the best of the "
        "interleaved rounds; ratios_per_round: the ratio within each round (the same load for both); CPU-seconds "
        "are the least disturbed by other jobs (photos_per_s_from_cpu_s_all_cores: cores / CPU-s a photo); "
        "the steady rates (a difference of two short runs) are the most disturbed; "
        "stage CPU-seconds measured stage by stage on one thread in a process of its own (the night's own "
        "functions), the night's total from its process's rusage, marginal between the small and the large run",
    }
    print(json.dumps(figures, indent=2))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(figures, indent=2) + "\n")
    return figures


if __name__ == "__main__":
    main()
