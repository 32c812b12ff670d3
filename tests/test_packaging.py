import subprocess
import sys
import tarfile

from conftest import REPO


def test_sdist_contains_all_packages_and_configs(tmp_path):
    subprocess.run(
        [sys.executable, "setup.py", "-q", "sdist", "--dist-dir", str(tmp_path)],
        cwd=REPO,
        check=True,
        capture_output=True,
    )
    (archive,) = tmp_path.glob("*.tar.gz")
    names = tarfile.open(archive).getnames()
    for needed in (
        "corrosion/__init__.py",
        "pipelines/__init__.py",
        "training/__init__.py",
        "configs/labels.yaml",
        "requirements.lock",
    ):
        assert any(n.endswith(needed) for n in names), needed
