"""What ``tiling.skip_quiet_below`` saves and what it costs, on real photos at 12 MP (issue 29's coarse
pass: "off unless its loss on validation is below 0.01 pixel F1").

The shared photos are small (most at most 1,024 px), so one photo never tiles; a 12 MP survey photo
is made of twelve of them instead: a split's photos with a pixel mask (negatives count, with an
empty one), grouped by source (one structure per photo, as in a survey), twelve to a 4x3 mosaic of
1000x1000 cells, JPEG at quality 92, the masks laid out alike. Each mosaic is then scored by
``pipelines.inference.handlers.stitched_rust_map``, the night's own code, with the model's runtime
as the night resolves it (``auto``: the int8 copy where it has one), once with every tile and once
per ``--fractions`` value. Figures: pooled rust-pixel F1 and rusted-% MAE against the masks, views
scored a mosaic, and one thread's CPU-seconds a mosaic for the segmenter stage (decode, views,
network, stitch), each against the every-tile run of the same mosaics, and (where the night serves
the int8 copy) against the float32 copy's every-tile run: the speed-ups together. Writes ``bench_out/quiet_tiles.json``.

    python -m benchmarks.bench_quiet_tiles --regions out/models/segmenter [--data out/dataset_regions] [--split validation]
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import logging
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks.bench_night import REAL_SEGMENTERS, REPO

log = logging.getLogger("benchmarks.bench_quiet_tiles")
GRID = (4, 3)  # mosaic columns, rows
CELL = 1000  # px a photo takes in it: 4000 x 3000 in all


def masked_photos(data: str, split: str) -> dict[str, list[tuple[bytes, np.ndarray]]]:
    """Per source folder: (encoded photo, its 0/1 mask at the photo's size), photos without pixel truth left out."""
    from corrosion.data import layout, regions
    from training.segmenter.evaluate import split_records

    out: dict[str, list] = defaultdict(list)
    for r in split_records(data, (split,), [])[split]:
        if r.mask is not None:
            truth = regions.decode(r.mask) > 0
        elif r.image_label == 0 and not r.boxes:
            truth = np.zeros((r.height, r.width), bool)
        else:
            continue
        out[layout.source_folder(r.source_id)].append((r.encoded, truth))
    return out


def mosaic(photos: list[tuple[bytes, np.ndarray]]) -> tuple[bytes, np.ndarray]:
    """Twelve photos as one 4000x3000 JPEG, and its mask."""
    cols, rows = GRID
    pixels = np.zeros((rows * CELL, cols * CELL, 3), np.uint8)
    truth = np.zeros((rows * CELL, cols * CELL), bool)
    for i, (encoded, mask) in enumerate(photos):
        y, x = divmod(i, cols)
        img = Image.open(io.BytesIO(encoded)).convert("RGB").resize((CELL, CELL), Image.Resampling.BILINEAR)
        pixels[y * CELL : (y + 1) * CELL, x * CELL : (x + 1) * CELL] = np.asarray(img)
        cell = Image.fromarray(mask.astype(np.uint8)).resize((CELL, CELL), Image.Resampling.NEAREST)
        truth[y * CELL : (y + 1) * CELL, x * CELL : (x + 1) * CELL] = np.asarray(cell) > 0
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "JPEG", quality=92)
    return out.getvalue(), truth


def score(model, meta, config, mosaics: list[tuple[bytes, np.ndarray]]) -> dict:
    """Pooled pixel F1, rusted-% MAE, views and CPU-s a mosaic with ``config``."""
    from pipelines.inference.handlers import ImageRecord, stitched_rust_map
    from training.segmenter import metrics

    counts = np.zeros(3, np.int64)  # rust pixels: true positive, false positive, false negative
    errors, views, cpu = [], {True: [], False: []}, 0.0
    for i, (data, truth) in enumerate(mosaics):
        record = ImageRecord(f"mosaic-{i}.jpg", "", truth.shape[1], truth.shape[0], data)
        started = time.process_time()
        prob, n, _, _ = stitched_rust_map(model, record, meta, config)
        cpu += time.process_time() - started
        rust = prob >= meta.threshold
        small = np.asarray(Image.fromarray(truth).resize(rust.shape[::-1], Image.Resampling.NEAREST))
        counts += metrics.pixel_counts(prob, small, (meta.threshold,))[0]
        errors.append(abs(rust.mean() - small.mean()) * 100)
        views[bool(truth.any())].append(n)
    return {
        "pixel_f1": float(2 * counts[0] / max(2 * counts[0] + counts[1] + counts[2], 1)),
        "rusted_pct_mae": float(np.mean(errors)),
        "views_a_mosaic": float(np.mean(views[True] + views[False])),
        "views_a_rust_mosaic": float(np.mean(views[True])) if views[True] else None,
        "views_a_clean_mosaic": float(np.mean(views[False])) if views[False] else None,
        "cpu_s_a_mosaic": cpu / len(mosaics),
    }


def load_model(model_dir: str, config, runtime: str = "auto"):
    """The segmenter as the night loads it (``DetectorHandler.load_model``), its metadata and runtime."""
    from corrosion.models import lite_runtime, serving
    from pipelines.inference.handlers import DetectorHandler

    meta = serving.read_metadata(model_dir)
    runtime = lite_runtime.resolve_runtime(model_dir, runtime, "detector")
    return DetectorHandler(model_dir, meta, config, runtime).load_model(), meta, runtime


def main(argv: list[str] | None = None) -> dict:
    from corrosion.core.config import config_path, load_config
    from corrosion.models import lite_runtime
    from pipelines.inference.config import InferenceConfig
    from training.common import records

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--regions", help="a trained rust-region model (default out/models/segmenter)")
    parser.add_argument("--data", default=str(REPO / "out" / "dataset_regions"))
    parser.add_argument("--split", default="validation")
    parser.add_argument("--fractions", default="0.25,0.5,1.0", help="skip_quiet_below values to try")
    parser.add_argument("--out", default=str(REPO / "bench_out" / "quiet_tiles.json"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args.regions = args.regions or next((str(d) for d in REAL_SEGMENTERS if (d / "metadata.json").exists()), None)
    if args.regions is None or not records.available_splits(args.data):
        log.warning(
            "skipped: needs a trained rust-region model (--regions) and a built data set (--data %s)", args.data
        )
        return {}
    base = dataclasses.replace(load_config(InferenceConfig, config_path("inference.yaml")), tf_threads_per_call=1)
    model, meta, runtime = load_model(args.regions, base)
    per_mosaic = GRID[0] * GRID[1]
    mosaics, photos, left_out = [], 0, 0
    for source, found in sorted(masked_photos(args.data, args.split).items()):
        whole = len(found) // per_mosaic * per_mosaic
        mosaics += [mosaic(found[i : i + per_mosaic]) for i in range(0, whole, per_mosaic)]
        photos, left_out = photos + whole, left_out + len(found) - whole
        log.info("%s: %d of %d photos in mosaics", source, whole, len(found))
    every = score(model, meta, base, mosaics)
    figures = {"model": meta.version, "runtime": runtime, "split": args.split, "mosaics": len(mosaics),
               "photos": photos, "photos_left_out": left_out, "every_tile": every, "skipping": {}}  # fmt: skip
    if runtime != "litert" and lite_runtime.has_lite(args.regions, "segmenter"):  # the float model, for reference
        figures["float32_every_tile"] = score(load_model(args.regions, base, "litert")[0], meta, base, mosaics)
    for f in (float(x) for x in args.fractions.split(",")):
        config = dataclasses.replace(base, tiling=dataclasses.replace(base.tiling, skip_quiet_below=f))
        got = score(model, meta, config, mosaics)
        got |= {
            "pixel_f1_drop": every["pixel_f1"] - got["pixel_f1"],
            "rusted_pct_mae_rise": got["rusted_pct_mae"] - every["rusted_pct_mae"],
            "cpu_ratio": every["cpu_s_a_mosaic"] / got["cpu_s_a_mosaic"],
        }
        if "float32_every_tile" in figures:  # the speed-ups together, against the float model's every-tile night
            ref = figures["float32_every_tile"]
            got["vs_float32_pixel_f1_drop"] = ref["pixel_f1"] - got["pixel_f1"]
            got["vs_float32_rusted_pct_mae_rise"] = got["rusted_pct_mae"] - ref["rusted_pct_mae"]
        figures["skipping"][str(f)] = got
        log.info("skip_quiet_below %.2f: %s", f, got)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))
    return figures


if __name__ == "__main__":
    main()
