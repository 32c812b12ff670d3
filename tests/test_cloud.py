"""The jobs against real protocols: gs:// on the GCS emulator, BigQuery on bqemulator (local servers).

Both emulators are started once per test session on free ports (``local_cloud_servers`` in
conftest, ``corrosion.testing.emulators``; ``make test`` installs them in .venv-emulators) and
stopped by PID at the end; one test starts a pair of its own to stop them.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import apache_beam as beam
import pytest
from apache_beam.io.filesystems import FileSystems
from support import model_doubles as doubles

from corrosion.core import cloud_checks, io_utils, listing, staging
from corrosion.data import layout
from corrosion.inference import results
from corrosion.models import serving
from corrosion.testing import emulators, synthetic
from pipelines import batch_inference as bi
from pipelines import build_dataset
from training.common import records

BUCKET = "survey-bucket"


@pytest.fixture(scope="module")
def cloud(local_cloud_servers):
    """The session's emulators, with Google's clients sent to them while this module runs."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in local_cloud_servers.environment().items():
            patch.setenv(name, value)
        local_cloud_servers.create_bucket(BUCKET)
        yield local_cloud_servers


def upload(local: Path, prefix: str) -> list[str]:
    """Every file under ``local`` to ``prefix`` (through the GCS API, as gsutil would), sorted."""
    return sorted(staging.upload_folder(str(local), prefix))


def listed(prefix: str) -> list[str]:
    return sorted(m.path for m in FileSystems.match([prefix + "/**"])[0].metadata_list)


def test_build_dataset_reads_and_writes_gs_as_it_does_local_folders(cloud, tmp_path):
    local = tmp_path / "raw"  # the same folder name as on gs://: the records' source ids match
    synthetic.generate_survey(
        local / "voc", "voc", n_rust=3, n_clean=2, size=[(96, 72)], seed=0, bad_files=("truncated",)
    )
    synthetic.generate_survey(local / "folders", "folders", n_rust=2, n_clean=2, size=[(96, 72)], seed=1)
    upload(local, f"gs://{BUCKET}/raw")
    local_stats = build_dataset.run(["--input", str(local), "--output_dir", str(tmp_path / "local_out")])
    stats = build_dataset.run(["--input", f"gs://{BUCKET}/raw", "--output_dir", f"gs://{BUCKET}/dataset"])

    written = listed(f"gs://{BUCKET}/dataset")
    assert f"gs://{BUCKET}/dataset/{layout.MANIFEST}" in written and f"gs://{BUCKET}/dataset/{layout.STATS}" in written
    assert stats["records_total"] == local_stats["records_total"] == 9
    assert stats["rejects_by_reason"] == local_stats["rejects_by_reason"] == {"corrupt_image": 1}
    manifest = list(csv.DictReader(io.StringIO(io_utils.read_text(f"gs://{BUCKET}/dataset/{layout.MANIFEST}"))))
    local_manifest = list(csv.DictReader((tmp_path / "local_out" / layout.MANIFEST).open()))
    as_local = {r["path"].replace(f"gs://{BUCKET}/raw", str(local)): (r["status"], r["split"]) for r in manifest}
    assert as_local == {r["path"]: (r["status"], r["split"]) for r in local_manifest}
    rejects = [json.loads(line) for line in io_utils.read_text(f"gs://{BUCKET}/dataset/{layout.REJECTS}").splitlines()]
    assert [r["path"] for r in rejects] == [f"gs://{BUCKET}/raw/voc/bad_00_truncated.jpg"]
    shards = [uri for uri in written if uri.endswith(".tfrecord")]
    assert sorted(uri.rsplit("/", 1)[1] for uri in shards) == sorted(
        p.name for p in (tmp_path / "local_out").glob("*.tfrecord")
    )
    for uri in shards:  # byte for byte the shards of the local build
        assert io_utils.read_bytes(uri) == (tmp_path / "local_out" / uri.rsplit("/", 1)[1]).read_bytes(), uri

    # training reads it back (through its local copy) and finds what the local build holds
    splits = records.available_splits(f"gs://{BUCKET}/dataset")
    assert splits == records.available_splits(str(tmp_path / "local_out")) and layout.TRAIN in splits
    for split in splits:
        assert records.count_labels(f"gs://{BUCKET}/dataset", split) == records.count_labels(
            str(tmp_path / "local_out"), split
        )


@pytest.fixture(scope="module")
def models_on_gs(cloud, tmp_path_factory) -> dict[str, str]:
    """A tiny classifier and the colour-rule detector, exported locally and uploaded as a user would."""
    local = tmp_path_factory.mktemp("models")
    doubles.export_tiny_classifier(str(local / "classifier"), lite=True)
    doubles.export_colour_rule_detector(str(local / "detector"), input_size=64)
    upload(local, f"gs://{BUCKET}/models")
    return {
        "local": str(local),
        "classifier": f"gs://{BUCKET}/models/classifier",
        "detector": f"gs://{BUCKET}/models/detector",
    }


def night_args(photos: str, models: dict[str, str], out: str, *extra: str) -> list[str]:
    return [
        "--input", photos, "--classifier", models["classifier"], "--detector", models["detector"],
        "--output", out, "--survey_id", "hull-7", "--run_date", "2026-12-01", *extra,
    ]  # fmt: skip


def shard_paths(pattern: str) -> list[str]:
    return sorted(m.path for m in FileSystems.match([pattern])[0].metadata_list)


def comparable(rows: list[dict], prefix: str) -> list[dict]:
    """Rows keyed by the photo's name, the folder it was read from left out."""
    return sorted(({**r, "image_uri": r["image_uri"].removeprefix(prefix)} for r in rows), key=lambda r: r["image_uri"])


def test_batch_inference_reads_photos_and_models_from_gs_and_writes_every_output_there(cloud, models_on_gs, tmp_path):
    local = tmp_path / "night"
    survey = synthetic.generate_survey(
        local, "flat", n_rust=2, n_clean=2, size=(160, 120), hard_negative_fraction=0.0, bad_files=("truncated",)
    )
    upload(local, f"gs://{BUCKET}/night")
    local_models = {k: str(Path(models_on_gs["local"]) / k) for k in ("classifier", "detector")}
    home = bi.run(
        night_args(str(local / "*"), local_models, str(tmp_path / "out"), "--report", str(tmp_path / "r.html"))
    )
    report = f"gs://{BUCKET}/report/survey.html"
    summary = bi.run(night_args(f"gs://{BUCKET}/night/*", models_on_gs, f"gs://{BUCKET}/results", "--report", report))

    assert summary["counters"] == home["counters"] and summary["all_inputs_accounted_for"]
    assert summary["counters"]["images_scored"] == len(survey.images) and summary["counters"]["images_failed"] == 1
    rows = results.read_csv_rows(shard_paths(summary["results"]))
    home_rows = results.read_csv_rows(shard_paths(home["results"]))
    assert comparable(rows, f"gs://{BUCKET}/night/") == comparable(home_rows, f"{local}/")
    errors = list(csv.DictReader(io.StringIO(io_utils.read_text(shard_paths(summary["errors"])[0]))))
    assert [(e["image_uri"], e["reason"]) for e in errors] == [
        (f"gs://{BUCKET}/night/bad_00_truncated.jpg", "corrupt_image")
    ]
    night = f"gs://{BUCKET}/results/date=2026-12-01"
    assert json.loads(io_utils.read_text(f"{night}/hull-7-summary.json"))["counters"] == summary["counters"]
    previews = listed(f"gs://{BUCKET}/report/previews")
    assert len(previews) == summary["counters"]["previews_written"] == 4
    html = io_utils.read_text(report)
    assert all(p.rsplit("/", 1)[1] in html for p in previews)


def warehouse_rows(client, table: str) -> list[dict]:
    """The table's rows as the job wrote them (timestamps in the CSV's text form), by photo."""
    out = []
    for row in client.query(f"SELECT * FROM `{table}`").result():
        values = dict(row.items())
        values["processed_at"] = results.format_timestamp(values["processed_at"])
        out.append(values)
    return sorted(out, key=lambda r: (r["processed_at"], r["image_uri"]))


def test_nights_land_in_a_partitioned_clustered_bigquery_table_replacing_a_rerun_night(cloud, models_on_gs, tmp_path):
    from google.cloud import bigquery

    client = bigquery.Client(project=cloud.project)
    client.create_dataset("surveys", exists_ok=True)
    table, archive, out = f"{cloud.project}.surveys.rust", f"gs://{BUCKET}/archive", f"gs://{BUCKET}/nightly"
    first = synthetic.generate_survey(tmp_path / "a", "flat", n_rust=2, n_clean=2, size=(160, 120), seed=3)
    upload(tmp_path / "a", archive)
    beam_flags = ("--temp_location", f"gs://{BUCKET}/tmp", "--project", cloud.project)
    common = ("--bigquery_table", f"{cloud.project}:surveys.rust", "--skip_processed", out, *beam_flags)

    def night(date: str) -> tuple[dict, list[dict]]:
        args = night_args(f"{archive}/*.jpg", models_on_gs, out, *common)
        summary = bi.run([a if a != "2026-12-01" else date for a in args])
        return summary, results.read_csv_rows(shard_paths(summary["results"]))

    s1, rows1 = night("2026-12-01")
    landed = warehouse_rows(client, table)
    assert len(landed) == len(rows1) == len(first.images) == s1["counters"]["images_scored"]
    assert landed == sorted(rows1, key=lambda r: r["image_uri"])  # field by field, as the CSV holds them
    schema = results.load_schema()
    assert all(results.validate_row(r, schema) == [] for r in landed)
    created = client.get_table(table)
    assert [(f.name, f.field_type, f.mode) for f in created.schema] == [(f.name, f.type, f.mode) for f in schema]
    loads = [  # this table's (the emulator is the session's: other tests load other tables into it)
        j for j in client.list_jobs(all_users=True) if j.job_type == "load" and j.destination.table_id == "rust"
        and j.destination.dataset_id == "surveys"
    ]  # fmt: skip
    assert loads and all(  # asked of the load job that creates the table (the emulator does not apply them)
        j.time_partitioning.type_ == "DAY" and j.time_partitioning.field == "processed_at" for j in loads
    )
    assert all(j.clustering_fields == ["survey_id"] and j.create_disposition == "CREATE_IF_NEEDED" for j in loads)

    # the same night again (its photos are not skipped: the night itself is being redone) replaces its rows
    again, rows_again = night("2026-12-01")
    assert again["counters"]["images_scored"] == len(first.images)
    assert warehouse_rows(client, table) == landed

    # the next night: two new photos in the archive, and only they are scored and loaded
    new = synthetic.generate_survey(tmp_path / "b", "flat", n_rust=1, n_clean=1, size=(160, 120), seed=11)
    for image in new.images:
        io_utils.write_bytes(f"{archive}/new_{Path(image.path).name}", (tmp_path / "b" / image.path).read_bytes())
    s2, rows2 = night("2026-12-02")
    assert s2["counters"]["images_scored"] == 2 and s2["counters"]["images_skipped"] == len(first.images)
    everything = warehouse_rows(client, table)
    assert len(everything) == len({r["image_sha256"] for r in everything}) == len(first.images) + 2
    assert [r for r in everything if r["processed_at"].startswith("2026-12-02")] == sorted(
        rows2, key=lambda r: r["image_uri"]
    )


def test_a_gs_model_folder_re_exported_under_a_running_job_is_refused(cloud, models_on_gs):
    """The worker loads its local copy of the gs:// folder; a re-export since launch fails the load."""
    import dataclasses

    from pipelines.inference.handlers import ClassifierHandler, ModelChangedError

    model_dir = f"gs://{BUCKET}/models/moving-classifier"
    upload(Path(models_on_gs["local"]) / "classifier", model_dir)
    at_launch = serving.read_metadata(model_dir)
    assert ClassifierHandler(model_dir, at_launch, 8, runtime="litert").load_model() is not None
    serving.write_metadata(model_dir, dataclasses.replace(at_launch, version="retrained-meanwhile"))
    for runtime in ("litert", "savedmodel"):
        with pytest.raises(
            ModelChangedError, match=f"held classifier {at_launch.version} at launch and holds retrained"
        ):
            ClassifierHandler(model_dir, at_launch, 8, runtime=runtime).load_model()


def test_a_photo_deleted_between_listing_and_reading_is_an_error_row_naming_it(cloud, tmp_path):
    from pipelines.inference.transforms import ERRORS, ReadImage

    synthetic.generate_survey(tmp_path / "s", "flat", n_rust=1, n_clean=1, size=(64, 48), seed=2)
    uris = upload(tmp_path / "s", f"gs://{BUCKET}/vanishing")
    found = listing.match_glob(f"gs://{BUCKET}/vanishing/*.jpg")
    assert sorted(f.path for f in found) == uris
    FileSystems.delete([uris[0]])
    reader = ReadImage(max_file_bytes=2**20, progress_every=0)
    reader.setup()
    out = [o for item in found for o in reader.process(item)]
    errors = [o.value for o in out if isinstance(o, beam.pvalue.TaggedOutput) and o.tag == ERRORS]
    read = [o for o in out if not isinstance(o, beam.pvalue.TaggedOutput)]
    assert [(e["image_uri"], e["reason"]) for e in errors] == [(uris[0], "missing_file")]
    assert "deleted between listing and reading" in errors[0]["message"]
    assert [uri for uri, _ in read] == [uris[1]]


def test_missing_buckets_datasets_and_silent_services_are_refused_at_launch_naming_them(tmp_path):
    """One quick request per location, no retries: seconds, not the clients' 120 s of retrying."""
    import time

    from google.api_core import exceptions as api
    from google.cloud import storage

    photos = tmp_path / "photos"
    synthetic.generate_survey(photos, "flat", n_rust=1, n_clean=1, size=(64, 48))
    clf = doubles.export_tiny_classifier(str(tmp_path / "clf"))
    args = ["--input", str(photos / "*"), "--classifier", clf, "--output"]
    with emulators.local_cloud(tmp_path / "cloud") as own, pytest.MonkeyPatch.context() as patch:
        for name, value in own.environment().items():
            patch.setenv(name, value)
        own.create_bucket("present")
        with pytest.raises(cloud_checks.CloudLocationError, match="gs://absent/out: the bucket absent does not exist"):
            bi.run([*args, "gs://absent/out"])
        with pytest.raises(
            cloud_checks.CloudLocationError, match="gs://absent/night: the bucket absent does not exist"
        ):
            build_dataset.run(["--input", "gs://absent/night", "--output_dir", str(tmp_path / "ds")])
        table = ["--bigquery_table", f"{own.project}:nowhere.rust"]
        with pytest.raises(cloud_checks.CloudLocationError, match=f"dataset {own.project}:nowhere does not exist"):
            bi.run([*args, "gs://present/out", *table])

        own.bigquery.stop()
        started = time.monotonic()
        with pytest.raises(cloud_checks.CloudLocationError, match=f"BigQuery at {own.bigquery.url} did not answer"):
            bi.run([*args, "gs://present/out", *table])
        own.gcs.stop()
        with pytest.raises(cloud_checks.CloudLocationError, match=f"Cloud Storage at {own.gcs.url} did not answer"):
            bi.run([*args, "gs://present/out"])
        assert time.monotonic() - started < 30

        # during a run: a read whose connection fails stops the job, naming the service
        client = storage.Client()
        with pytest.raises(Exception) as refused:
            list(client.list_blobs("present", max_results=1, retry=None, timeout=5))
        wrapped = api.RetryError("Timeout of 120.0s exceeded", refused.value)
        assert cloud_checks.unreachable(wrapped) == f"Cloud Storage at {own.gcs.url}"
        assert cloud_checks.unreachable(FileNotFoundError("gs://present/x.jpg")) is None
        patch.setattr(io_utils, "read_bytes", lambda *a, **k: (_ for _ in ()).throw(wrapped))
        from pipelines.inference.transforms import ReadImage

        reader = ReadImage(max_file_bytes=2**20, progress_every=0)
        reader.setup()
        item = listing.Found("gs://present/a.jpg", 10)
        with pytest.raises(cloud_checks.ServiceUnreachable, match="stopped answering while reading gs://present/a.jpg"):
            list(reader.process(item))


def test_no_credentials_for_bigquery_is_a_message_saying_how_to_get_them(monkeypatch, tmp_path):
    for name in ("GOOGLE_APPLICATION_CREDENTIALS", "BIGQUERY_EMULATOR_HOST", "GOOGLE_CLOUD_PROJECT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_GCE_CHECK", "true")  # no metadata server probe
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path))  # no gcloud login of this machine's user
    with pytest.raises(cloud_checks.CloudLocationError, match="no Google credentials found; run `gcloud auth"):
        cloud_checks.check_bigquery("proj:surveys.rust")


def test_training_on_a_gs_folder_without_shards_is_a_data_error_naming_it(cloud):
    with pytest.raises(records.DatasetError, match=f"no train shards match gs://{BUCKET}/no-such-dataset/train-"):
        records.shard_files(f"gs://{BUCKET}/no-such-dataset", layout.TRAIN)


def test_a_permission_refusal_is_refused_at_launch_naming_the_location_and_the_permission(monkeypatch, tmp_path):
    """The emulators grant everything, so a stand-in server answers every request 403 as GCS does."""
    import http.server
    import threading

    class Forbidden(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's naming)
            body = json.dumps({"error": {"code": 403, "message": "caller does not have storage.objects.list"}})
            self.send_response(403)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Forbidden)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{server.server_port}")
        monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(emulators.fake_credentials(tmp_path)))
        monkeypatch.setenv("NO_GCE_CHECK", "true")
        with pytest.raises(
            cloud_checks.CloudLocationError, match=r"gs://locked/night/: the job's account may not list"
        ):
            cloud_checks.check_storage(["gs://locked/night/*.jpg"])
    finally:
        server.shutdown()


def test_model_versions_on_gs_publish_promote_and_a_reader_never_sees_a_mix(cloud, models_on_gs, tmp_path):
    from support import races

    from corrosion.models import versions

    root = f"gs://{BUCKET}/model-root"
    names = ("classifier-20261203T0000-cccccc", "classifier-20261204T0000-dddddd")
    for i, name in enumerate(names):
        versions.publish(doubles.export_tiny_classifier(str(tmp_path / name), version=name, seed=i), root)
    assert versions.versions(root) == list(names) and versions.current(root) is None
    versions.promote(root, names[0])
    seen, problems = races.read_during_promotions(root, list(names), 40)
    assert problems == [] and set(seen) <= set(names) and versions.current(root) == names[1]
    synthetic.generate_survey(tmp_path / "night", "flat", n_rust=1, n_clean=1, size=(64, 48))
    args = ["--input", str(tmp_path / "night" / "*"), "--classifier", root, "--output", str(tmp_path / "out")]
    assert bi.run(args)["classifier_version"] == names[1]


def test_a_staged_copy_is_removed_when_a_fresh_one_replaces_it_and_at_exit(cloud, tmp_path, monkeypatch):
    model = tmp_path / "model"
    model.mkdir()
    (model / "metadata.json").write_text("{}")
    upload(model, f"gs://{BUCKET}/models/staged")
    monkeypatch.setenv("CORROSION_STAGING_DIR", str(tmp_path / "staging"))
    (tmp_path / "staging").mkdir()
    first = staging.local_folder(f"gs://{BUCKET}/models/staged")
    assert staging.local_folder(f"gs://{BUCKET}/models/staged") == first  # once per process
    second = staging.local_folder(f"gs://{BUCKET}/models/staged", refresh=True)  # a model reloaded
    assert second != first and (Path(second) / "metadata.json").read_text() == "{}"
    assert sorted(p.name for p in (tmp_path / "staging").iterdir()) == [Path(second).name]
    with pytest.raises(FileNotFoundError, match="holds no files"):
        staging.local_folder(f"gs://{BUCKET}/models/missing")
    assert sorted(p.name for p in (tmp_path / "staging").iterdir()) == [Path(second).name]  # no empty leftover
    staging.remove_copies()
    assert list((tmp_path / "staging").iterdir()) == []
