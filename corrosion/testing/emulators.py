"""Local Google Cloud: the GCS and BigQuery emulators as servers, for the cloud tests and demo-cloud.

``gcp-storage-emulator`` speaks the GCS JSON API (google-cloud-storage, hence Beam's ``gs://``
FileSystem, follow ``STORAGE_EMULATOR_HOST``); ``bqemulator`` speaks BigQuery's REST API
(google-cloud-bigquery follows ``BIGQUERY_EMULATOR_HOST``; the batch job points Beam's BigQuery
client at it too, ``corrosion.core.gcp``). Both run from their own virtual environment
(``make emulators``), on free local ports, and share one folder: GCS objects are files under
``<root>/.cloudstorage/<bucket>/<name>``, where bqemulator's load jobs resolve ``gs://`` URIs.

Without credentials Google's clients probe the metadata server and retry ``google.auth.default()``
for ~20 s; a fake ``authorized_user`` file whose token expires in 2099 plus ``NO_GCE_CHECK`` makes
them go straight to the emulators.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

PROJECT = "local-project"
VENV = Path(__file__).resolve().parents[2] / ".venv-emulators"
START_TIMEOUT_S = 90.0


class EmulatorError(RuntimeError):
    """An emulator that is not installed, did not start, or stopped."""


@dataclass
class Server:
    name: str
    url: str  # http://127.0.0.1:PORT
    process: subprocess.Popen
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def running(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        """SIGTERM to the server's process group, SIGKILL after 10 s: no server outlives its owner."""
        if not self.running():
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)


@dataclass
class LocalCloud:
    """Both servers and the environment that sends Google's clients to them."""

    root: Path
    gcs: Server
    bigquery: Server
    project: str = PROJECT

    @property
    def gcs_files(self) -> Path:
        """Where the GCS emulator keeps objects: ``<bucket>/<name>`` below it."""
        return self.root / ".cloudstorage"

    def environment(self) -> dict[str, str]:
        return {
            "STORAGE_EMULATOR_HOST": self.gcs.url,
            "BIGQUERY_EMULATOR_HOST": self.bigquery.url,
            "GOOGLE_CLOUD_PROJECT": self.project,
            "GOOGLE_APPLICATION_CREDENTIALS": str(fake_credentials(self.root)),
            "NO_GCE_CHECK": "true",
        }

    def create_bucket(self, name: str) -> None:
        body = json.dumps({"name": name}).encode()
        request = urllib.request.Request(
            f"{self.gcs.url}/storage/v1/b?project={self.project}", body, {"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            response.read()

    def stop(self) -> None:
        for server in (self.bigquery, self.gcs):
            server.stop()


def installed() -> bool:
    return (VENV / "bin" / "bqemulator").exists() and (VENV / "bin" / "gcp-storage-emulator").exists()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def fake_credentials(root: Path) -> Path:
    """An ``authorized_user`` credentials file with a token valid until 2099: clients never refresh it."""
    path = root / "fake-credentials.json"
    if not path.exists():
        info = {
            "type": "authorized_user",
            "client_id": "local",
            "client_secret": "local",
            "refresh_token": "local",
            "token": "local-token",
            "expiry": "2099-01-01T00:00:00Z",
        }
        path.write_text(json.dumps(info))
    return path


def _wait_ready(server: Server, probe: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not server.running():
            raise EmulatorError(f"{server.name} exited at start-up; its log {server.log_path}:\n{_tail(server)}")
        try:
            with urllib.request.urlopen(server.url + probe, timeout=2) as response:
                response.read()
            return
        except urllib.error.HTTPError:
            return  # it answered
        except OSError:
            time.sleep(0.2)
    server.stop()
    raise EmulatorError(f"{server.name} did not answer on {server.url} within {timeout:.0f} s:\n{_tail(server)}")


def _tail(server: Server, chars: int = 2000) -> str:
    return server.log_path.read_text(errors="replace")[-chars:] if server.log_path.exists() else ""


def _start(name: str, argv: list[str], env: Mapping[str, str], root: Path, probe: str, port: int) -> Server:
    log_path = root / f"{name}.log"
    with log_path.open("wb") as out:
        process = subprocess.Popen(
            argv,
            cwd=root,
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: stop() ends any worker it spawns
        )
    server = Server(name, f"http://127.0.0.1:{port}", process, log_path)
    _wait_ready(server, probe, START_TIMEOUT_S)
    log.info("%s listening on %s (pid %d)", name, server.url, server.pid)
    return server


def start_gcs(root: Path) -> Server:
    port = free_port()
    argv = [str(VENV / "bin" / "gcp-storage-emulator"), "start", "--host", "127.0.0.1", "--port", str(port), "-q"]
    return _start("gcs-emulator", argv, {"STORAGE_BASE": str(root)}, root, "/storage/v1/b", port)


def start_bigquery(root: Path, project: str = PROJECT) -> Server:
    port = free_port()
    argv = [
        str(VENV / "bin" / "bqemulator"),
        "start",
        "--rest-port",
        str(port),
        "--grpc-port",
        str(free_port()),
        "--project",
        project,
        "--log-level",
        "warning",
    ]
    # HOME: DuckDB's extension folder, where `make emulators` put the spatial extension (no download)
    env = {"BQEMU_GCS_LOCAL_ROOT": str(root / ".cloudstorage"), "HOME": str(VENV / "home")}
    return _start("bigquery-emulator", argv, env, root, f"/bigquery/v2/projects/{project}/datasets", port)


def start(root: Path) -> LocalCloud:
    """Both emulators over one folder ``root``; EmulatorError saying what to run when they are missing."""
    if not installed():
        raise EmulatorError(f"the emulators are not installed in {VENV}: run `make emulators`")
    root.mkdir(parents=True, exist_ok=True)
    (root / ".cloudstorage").mkdir(exist_ok=True)
    gcs = start_gcs(root)
    try:
        bigquery = start_bigquery(root)
    except Exception:
        gcs.stop()
        raise
    return LocalCloud(root, gcs, bigquery)


@contextmanager
def local_cloud(root: Path) -> Iterator[LocalCloud]:
    cloud = start(root)
    try:
        yield cloud
    finally:
        cloud.stop()
