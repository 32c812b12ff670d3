"""Hostile masks and pixels (``corrosion.testing.hostile_pixels``): every file ends as a record, a
result row or a reject / error row with its own reason, in the data set, evaluation and batch
inference; masks are refused from their headers; a strip stays within the memory budget.

The corpus is read in process (build_dataset on the local runner, evaluation's raw-folder reader,
batch inference's own decode and model-handler steps with stand-in models); one subprocess runs the
real batch-inference job for the memory bound. ``HOSTILE_SEED=N`` tries another corpus.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile, ImageOps

from corrosion.core.labels import load_labels
from corrosion.data import discovery, regions
from corrosion.data.dataset_config import ValidationConfig, load_dataset_config
from corrosion.imaging import images
from corrosion.models import serving
from corrosion.testing import hostile_pixels as hp
from corrosion.testing import synthetic
from pipelines.inference.config import InferenceConfig
from pipelines.inference.handlers import DetectorHandler
from pipelines.inference.transforms import ERRORS, PrepareForClassifier

REPO = Path(__file__).resolve().parent.parent
SEED = int(os.environ.get("HOSTILE_SEED", "0"))
BUDGET_MB = 1536  # any single input of at most 100 MP: within 1.5 GB over the job's baseline


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> hp.Corpus:
    return hp.generate_corpus(tmp_path_factory.mktemp("pixels") / "corpus", SEED)


def _path(corpus: hp.Corpus, case: hp.Case) -> str:
    return str(corpus.root / case.path)


# ---------------------------------------------------------------- masks


def test_flat_png_decodes_to_the_pixels_it_claims():
    grey = Image.open(io.BytesIO(hp.flat_png(300, 200, b"\x07")))
    assert grey.size == (300, 200) and np.asarray(grey).min() == np.asarray(grey).max() == 7
    strip = Image.open(io.BytesIO(hp.strip_png(70_000, grey=33)))
    assert strip.size == (70_000, 1) and np.asarray(strip.convert("RGB")).max() == 33


def test_a_mask_of_another_size_is_refused_from_its_header_without_decoding(monkeypatch):
    data = hp.flat_png(40_000, 40_000)
    assert len(data) < 2 * 2**20  # 1.6 GB of pixels in a 1.6 MB file

    def no_decode(self, *args, **kwargs):
        raise AssertionError("the mask's pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decode)
    with pytest.raises(regions.MaskError) as err:
        regions.read_mask(data, "masks/a.png", (96, 72))
    assert err.value.reason == "mask_size_mismatch"
    assert "masks/a.png" in str(err.value) and "40000x40000" in str(err.value) and "96x72" in str(err.value)


def test_a_lossy_mask_is_refused_where_its_artefacts_would_invent_rust():
    _, _, drawn = synthetic.render_with_mask(np.random.default_rng(SEED), 96, 72, 1, "steel")
    as_jpeg = hp.lossy_mask_jpeg(drawn)
    invented = int((np.asarray(Image.open(io.BytesIO(as_jpeg))) > 0).sum()) - int(drawn.sum())
    assert invented > 0  # the premise: read as "any non-zero pixel is rust", the JPEG holds more rust
    with pytest.raises(regions.MaskError) as err:
        regions.read_mask(as_jpeg, "masks/a.jpg", (96, 72))
    assert err.value.reason == "lossy_mask" and "masks/a.jpg" in str(err.value) and "JPEG" in str(err.value)
    assert regions.read_mask(hp.mask_png(drawn), "masks/a.png", (96, 72)).sum() == drawn.sum()  # lossless: exact


@pytest.mark.parametrize(
    ("fmt", "options", "lossy"),
    [("WEBP", {"quality": 90}, "lossy WebP"), ("WEBP", {"lossless": True}, None), ("TIFF", {}, None)],
)
def test_only_lossy_codings_of_other_formats_are_refused(fmt, options, lossy):
    out = io.BytesIO()
    Image.fromarray(np.eye(8, dtype=np.uint8) * 255).convert("RGB").save(out, format=fmt, **options)
    assert regions.lossy_compression(Image.open(io.BytesIO(out.getvalue())), out.getvalue()) == lossy


def test_two_masks_of_one_image_are_a_reject_naming_both_never_an_image(tmp_path):
    labels = load_dataset_config().load_labels()
    mask = np.zeros((72, 96), np.uint8)
    mask[10:30, 10:40] = 255
    (tmp_path / "unit" / "images").mkdir(parents=True)
    (tmp_path / "unit" / "masks").mkdir()
    pixels, _ = synthetic.render(np.random.default_rng(SEED), 96, 72, 1, "steel")
    (tmp_path / "unit" / "images" / "a.jpg").write_bytes(synthetic.encode_image(pixels))
    for name in ("a.png", "a.PNG", "a.bmp"):
        Image.fromarray(mask).save(tmp_path / "unit" / "masks" / name, format="BMP" if name.endswith("bmp") else "PNG")
    result = discovery.scan(str(tmp_path), labels)
    assert [(Path(i.image_path).name, Path(i.mask_path).name) for i in result.images] == [("a.jpg", "a.png")]
    rows = {Path(r.path).name: r for r in result.rejects}
    assert set(rows) == {"a.PNG", "a.bmp"}
    for name, row in rows.items():
        assert row.reason == "duplicate_annotation" and name in row.detail and "a.png" in row.detail


# ---------------------------------------------------------------- pixels


def test_a_valid_png_with_a_big_icc_profile_is_read_and_one_inflating_past_the_bound_is_too_large():
    pixels, _ = synthetic.render(np.random.default_rng(SEED), 96, 72, 1, "steel")
    kept = hp.png_with_profile(pixels, np.random.default_rng(SEED).bytes(8 << 20))
    assert np.array_equal(np.asarray(images.decode(kept, "icc.png")), pixels)
    with pytest.raises(images.ImageError) as err:
        images.probe(hp.png_with_profile(pixels, bytes(65 << 20)), "bomb.png")
    assert err.value.reason == "too_large" and "bomb.png" in str(err.value) and "ICC" in str(err.value)


def test_a_strip_is_reduced_along_its_length_alone_and_refused_by_max_side():
    data = hp.strip_png(20_000_000)
    assert images.decode(data, "strip.png", reduce_to=(224, 224)).size == (225, 1)  # not 20,000,000 x 1
    with pytest.raises(images.ImageError) as err:
        images.probe(data, "strip.png", max_side=100_000)
    assert err.value.reason == "extreme_aspect_ratio"
    assert "strip.png" in str(err.value) and "20,000,000:1" in str(err.value) and "max_side=100,000" in str(err.value)
    assert images.probe(hp.strip_png(70_000), "wide.png", max_side=100_000).width == 70_000  # wide, still kept


def test_max_side_is_a_setting_that_tensorflow_can_decode():
    assert ValidationConfig().max_side == InferenceConfig().max_side == 100_000
    with pytest.raises(ValueError, match="1,000,000"):
        ValidationConfig(max_side=2_000_000)


def test_real_jpegs_decode_as_pillow_decodes_them_whole(shared_data):
    """Decoding a JPEG's scan without its end marker changes no pixel of a real photo."""
    found = sorted(shared_data.rglob("*.jpg"))
    assert found
    for path in found[:: max(1, len(found) // 150)]:
        data = path.read_bytes()
        whole = ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB")
        assert images.decode(data, str(path)).tobytes() == whole.tobytes(), path


# ---------------------------------------------------------------- the corpus in the three tools


def test_evaluate_reads_every_corpus_image_as_expected(corpus):
    from training.common import raw_folder

    rejects = []
    kept = {str(labelled.image_path) for labelled, _ in raw_folder.raw_records(str(corpus.root), _labels(), rejects)}
    reasons = {(r.path, r.reason) for r in rejects}
    for case in corpus.cases:
        path = _path(corpus, case)
        if case.dataset == hp.KEPT:
            assert path in kept, case.kind
        elif case.dataset == hp.USED:
            assert path not in kept and not any(p == path for p, _ in reasons), case.kind
        else:
            assert (path, case.dataset) in reasons, (case.kind, [r for r in reasons if r[0] == path])
    assert len(kept) == sum(c.dataset == hp.KEPT for c in corpus.cases)


def test_build_dataset_gives_every_corpus_file_its_row(corpus, tmp_path_factory):
    from pipelines import build_dataset

    out = tmp_path_factory.mktemp("dataset")
    build_dataset.run(["--input", str(corpus.root), "--output_dir", str(out)])
    with open(out / "manifest.csv", newline="", encoding="utf-8") as handle:
        manifest = {row["path"]: row for row in csv.DictReader(handle)}
    rejects = [json.loads(line) for line in (out / "rejects.jsonl").read_text().splitlines()]
    images_ = [c for c in corpus.cases if not c.is_mask]
    assert sorted(manifest) == sorted(_path(corpus, c) for c in images_)  # no mask taken for an image
    for case in images_:
        row = manifest[_path(corpus, case)]
        if case.dataset == hp.KEPT:
            assert row["status"] == "kept", (case.kind, row)
        else:
            assert (row["status"], row["reason"]) == ("rejected", case.dataset), (case.kind, row)
    for case in (c for c in corpus.cases if c.is_mask):
        own = [r for r in rejects if r["path"] == _path(corpus, case)]
        assert [r["reason"] for r in own] == ([] if case.dataset == hp.USED else [case.dataset]), case.kind


def _labels():
    return load_labels(str(REPO / "configs" / "labels.yaml"))


def _segmenter(pixels: np.ndarray) -> np.ndarray:
    return np.zeros(pixels.shape[:3], np.float32)  # a stride-1 rust map: no rust anywhere


def _detector(pixels: np.ndarray) -> dict[str, np.ndarray]:
    n = len(pixels)
    return {
        "detection_boxes": np.zeros((n, 1, 4), np.float32),
        "detection_scores": np.zeros((n, 1), np.float32),
        "detection_classes": np.ones((n, 1), np.float32),
        "num_detections": np.zeros(n, np.float32),
    }


@pytest.mark.parametrize("kind", ["segmenter", "detector"])
def test_batch_inference_steps_give_every_corpus_file_its_outcome(corpus, kind):
    """The job's own decode step (PrepareForClassifier) and model handler on each file, the models
    stood in for: a result, or an error row with the case's reason, with and without the detector."""
    config, size = InferenceConfig(), 64
    prepare = PrepareForClassifier(size, config.max_pixels, keep_data=True, max_side=config.max_side)
    prepare.setup()
    extra = {"region_merge_radius": 0.02, "min_region_area": 0.002}
    meta = serving.ModelMetadata(kind, "fake", size, 0.5, ("rust",), "fake", "none", extra=extra)
    handler = DetectorHandler("unused", meta, config)
    model = _segmenter if kind == "segmenter" else _detector
    for case in corpus.cases:
        path = _path(corpus, case)
        (out,) = prepare.process((path, Path(path).read_bytes()))
        if getattr(out, "tag", None) == ERRORS:
            assert out.value["reason"] == case.inference, case.kind
            assert path in out.value["message"]
            continue
        assert case.inference == hp.SCORED, case.kind
        ((_, prediction),) = handler.run_inference([(case.kind, out[0])], model)
        found = prediction.inference
        assert (found.error_reason or hp.SCORED) == case.inference, (case.kind, found.error_message)
        assert found.error_message is None or path in found.error_message


# ---------------------------------------------------------------- memory, in the real job

MEASURE = """
import sys
from pipelines import batch_inference
def hwm():
    return int(next(l for l in open('/proc/self/status') if l.startswith('VmHWM:')).split()[1]) // 1024
small, strip, classifier, segmenter, out = sys.argv[1:]
for name, folder in (("baseline", small), ("strip", strip)):
    batch_inference.run(["--input", folder + "/*", "--classifier", classifier, "--detector", segmenter,
                         "--output", out + "/" + name])
    print("PEAK_MB", name, hwm(), flush=True)
"""


def test_a_strip_stays_within_the_memory_budget_of_the_job_with_a_rust_region_model(tmp_path):
    """The whole job (classifier, then a rust-region model) on a 1 MP photo, then on a 20 MP strip, in
    one interpreter: the strip's peak over the photo's. It took the job past 6 GB with no row."""
    from tests.support import model_doubles as doubles

    pixels, _ = synthetic.render(np.random.default_rng(SEED), 1200, 900, 1, "steel")
    (tmp_path / "small").mkdir()
    (tmp_path / "small" / "photo.jpg").write_bytes(synthetic.encode_image(pixels))
    (tmp_path / "strip").mkdir()
    (tmp_path / "strip" / "strip.png").write_bytes(hp.strip_png(20_000_000))
    classifier = doubles.export_tiny_classifier(str(tmp_path / "classifier"), input_size=64)
    segmenter = doubles.export_colour_rule_segmenter(str(tmp_path / "segmenter"), input_size=64)
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2"}
    args = [str(tmp_path / "small"), str(tmp_path / "strip"), classifier, segmenter, str(tmp_path / "out")]
    done = subprocess.run(
        [sys.executable, "-c", MEASURE, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    peaks = {line.split()[1]: int(line.split()[2]) for line in done.stdout.splitlines() if line.startswith("PEAK_MB")}
    assert peaks["strip"] - peaks["baseline"] < BUDGET_MB, peaks
    errors = [row for f in (tmp_path / "out" / "strip").rglob("*errors*.csv") for row in csv.DictReader(open(f))]
    assert [(Path(r["image_uri"]).name, r["reason"]) for r in errors] == [("strip.png", "extreme_aspect_ratio")]
