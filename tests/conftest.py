"""Shared fixtures: generated surveys, and the real shared data (skipped cleanly when absent)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("CORROSION_SHARED", REPO.parent / "shared"))
SHARED_DATA = SHARED / "data"
SHARED_WEIGHTS = SHARED / "weights" / "keras" / "models"

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real corrosion photos not found at {SHARED_DATA} (set CORROSION_SHARED to the shared folder)")
    return SHARED_DATA


@pytest.fixture
def shared_weights_file() -> Path:
    path = SHARED_WEIGHTS / "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"
    if not path.is_file():
        pytest.skip(f"offline ImageNet weights not found at {path}")
    return path


@pytest.fixture(scope="session")
def local_cloud_servers(tmp_path_factory):
    """The GCS and BigQuery emulators (``make emulators``) on free ports, once per session, stopped by PID."""
    from corrosion.testing import emulators

    cloud = emulators.start(tmp_path_factory.mktemp("local-cloud"))
    try:
        yield cloud
    finally:
        cloud.stop()
