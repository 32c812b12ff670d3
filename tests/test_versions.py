"""Versioned model folders under a root and the atomic ``current`` pointer the nightly job follows."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import model_doubles as doubles
from support import races

from corrosion.models import serving, versions
from corrosion.testing import synthetic
from pipelines import batch_inference as bi
from training import versions as versions_cli


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict[str, str]:
    """Two classifiers as training leaves them (plain folders), different versions."""
    work = tmp_path_factory.mktemp("trained")
    return {
        v: doubles.export_tiny_classifier(str(work / v), version=v, seed=i)
        for i, v in enumerate(("classifier-20261201T0000-aaaaaa", "classifier-20261202T0000-bbbbbb"))
    }


def test_publish_promote_resolve_and_immutability(trained, tmp_path):
    root = str(tmp_path / "root")
    v1, v2 = sorted(trained)
    assert versions.resolve(trained[v1]) == trained[v1]  # a plain model folder is used as it is
    assert versions_cli.main(["publish", trained[v1], root, "--promote"]) == 0
    assert versions.current(root) == v1 and versions.resolve(root) == f"{root}/{v1}"
    assert versions.publish(trained[v2], root) == v2
    assert versions.current(root) == v1  # publishing never touches the version in use
    assert versions.promote(root, v2) == v1 and versions.resolve(root) == f"{root}/{v2}"
    assert versions.resolve(root, v1) == f"{root}/{v1}"  # an explicit version wins over the pointer
    assert versions.versions(root) == [v1, v2]
    assert serving.read_metadata(versions.resolve(root)).version == v2
    with pytest.raises(versions.VersionError, match="published versions are immutable"):
        versions.publish(trained[v1], root)
    Path(root, "classifier-incomplete").mkdir()  # a copy in progress: no metadata.json yet
    with pytest.raises(versions.VersionError, match="holds no complete model"):
        versions.promote(root, "classifier-incomplete")
    assert versions_cli.main(["promote", root, "no-such-version"]) == 2
    with pytest.raises(versions.VersionError, match="is not a version name"):
        versions.resolve(root, "../elsewhere")


def test_a_reader_during_promotions_sees_one_whole_version_never_a_mix(trained, tmp_path):
    root = str(tmp_path / "root")
    names = sorted(trained)
    for name in names:
        versions.publish(trained[name], root)
    versions.promote(root, names[0])
    seen, problems = races.read_during_promotions(root, names, 300)
    assert problems == [] and set(seen) <= set(names) and len(seen) > 10


def test_the_nightly_job_loads_the_current_version_fixed_at_launch(trained, tmp_path):
    root = str(tmp_path / "root")
    v1, v2 = sorted(trained)
    for name in (v1, v2):
        versions.publish(trained[name], root)
    versions.promote(root, v1)
    synthetic.generate_survey(tmp_path / "night", "flat", n_rust=1, n_clean=1, size=(64, 48))
    args = ["--input", str(tmp_path / "night" / "*"), "--classifier", root, "--survey_id", "s"]
    first = bi.run([*args, "--output", str(tmp_path / "out1")])
    assert first["classifier_version"] == v1
    versions.promote(root, v2)
    assert bi.run([*args, "--output", str(tmp_path / "out2")])["classifier_version"] == v2
    pinned = bi.run([*args, "--classifier_version", v1, "--output", str(tmp_path / "out3")])
    assert pinned["classifier_version"] == v1
    with pytest.raises(SystemExit, match="holds no complete model"):
        bi.run([*args, "--classifier_version", "classifier-missing", "--output", str(tmp_path / "out4")])


def test_a_training_run_into_a_model_root_publishes_a_new_version_and_leaves_the_current_one(trained, tmp_path):
    from support.datasets import write_dataset

    from training.classifier import train as train_classifier

    root = str(tmp_path / "root")
    in_use = sorted(trained)[0]
    versions.publish(trained[in_use], root)
    versions.promote(root, in_use)
    data = write_dataset(tmp_path / "data", {"train": (4, 4), "validation": (2, 2), "test": (2, 2)}, size=(64, 48))
    config = tmp_path / "classifier.yaml"
    config.write_text(
        "backbone: MobileNetV2\nbackbone_kwargs: {alpha: 0.35}\ninput_size: 32\nweights: none\nhead_epochs: 1\n"
        "fine_tune_epochs: 0\nbaseline: false\nfeature_augmented_copies: 0\nbatch_size: 8\nexport_lite: false\n"
    )
    assert train_classifier.main(["--data", str(data), "--model_root", root, "--config", str(config)]) == 0
    new = [v for v in versions.versions(root) if v != in_use]
    assert len(new) == 1 and new[0].startswith("classifier-")
    assert versions.current(root) == in_use  # the nightly job's model is untouched until promoted
    assert (Path(root) / new[0] / "model_card.md").is_file()
    with pytest.raises(SystemExit):  # one of --model_dir / --model_root, not both
        train_classifier.main(["--data", str(data), "--model_root", root, "--model_dir", str(tmp_path / "m")])
