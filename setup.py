"""Installs the corrosion-inspection project; Dataflow workers use it via --setup_file ./setup.py."""

from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent


def _requirements() -> list[str]:
    """Runtime requirements: the lock file's pins minus developer tools (the lock is the one truth)."""
    dev_only = {"pytest", "ruff", "iniconfig", "pluggy", "pygments", "hypothesis"}
    # the report's browser test drives Chromium through selenium; workers never need it
    dev_only |= {"selenium", "trio", "trio-websocket", "outcome", "wsproto", "websocket-client", "pysocks"}
    lock = HERE / "requirements.lock"
    if not lock.exists():  # an sdist unpacked on a worker carries the lock via MANIFEST.in
        return []
    pins = []
    for line in lock.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and line.split("==")[0].lower() not in dev_only:
            pins.append(line)
    return pins


setup(
    name="corrosion-inspection",
    version="0.1.0",
    description="Rust detection on steel survey photos: Beam dataset and inference pipelines, Keras training",
    python_requires=">=3.11,<3.12",
    packages=find_packages(
        include=["corrosion", "corrosion.*", "pipelines", "pipelines.*", "training", "training.*", "configs"]
    ),
    package_data={"configs": ["*.yaml", "*.json", "*.pbtxt"], "corrosion.inference": ["report_static/*"]},
    include_package_data=True,
    install_requires=_requirements(),
    entry_points={"console_scripts": ["corrosion=corrosion.cli:main"]},
)
