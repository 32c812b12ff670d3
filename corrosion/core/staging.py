"""Local copies of remote folders (an exported model, a built data set) for code that reads local disk.

TensorFlow's own ``gs://`` client is a second path to storage, configured apart from the one every
other part of the product uses (Beam ``FileSystems`` over google-cloud-storage): it ignores
``STORAGE_EMULATOR_HOST``, proxies set for the Google clients, and the credentials Beam was given.
So a ``gs://`` model or data set is copied once per process through ``FileSystems`` into a local
temporary folder, and TensorFlow reads that: one storage client for the whole product, and a
worker reads a model's files from its own disk rather than over the network at every load. A copy
is removed when a fresh one replaces it (a model reloaded) and when the process exits: a loaded
SavedModel holds its weights in memory and no longer needs its files.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import tempfile
import threading

from apache_beam.io.filesystems import FileSystems

from corrosion.core import io_utils

log = logging.getLogger(__name__)

_lock = threading.Lock()
_copies: dict[str, str] = {}


def staging_root() -> str:
    """``$CORROSION_STAGING_DIR``, else the system's temporary folder."""
    return os.environ.get("CORROSION_STAGING_DIR") or tempfile.gettempdir()


def copy_folder(uri: str, destination: str) -> int:
    """Every object under ``uri`` into ``destination`` (relative names kept); the number copied.

    FileNotFoundError naming ``uri`` when it holds nothing.
    """
    prefix = uri.rstrip("/") + "/"
    found = FileSystems.match([prefix + "**"])[0].metadata_list
    if not found:
        raise FileNotFoundError(f"{uri} holds no files (a missing bucket or folder?)")
    for meta in found:
        relative = meta.path[len(prefix) :]
        target = os.path.join(destination, *relative.split("/"))
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with FileSystems.open(meta.path, compression_type="uncompressed") as src, open(target, "wb") as dst:
            while chunk := src.read(8 * 2**20):
                dst.write(chunk)
    return len(found)


def local_folder(uri: str, refresh: bool = False) -> str:
    """``uri`` itself when local; else a local copy, made once per process (again with ``refresh``)."""
    if not io_utils.is_remote(uri):
        return uri
    key = uri.rstrip("/")
    with _lock:
        if key in _copies and not refresh:
            return _copies[key]
        destination = tempfile.mkdtemp(prefix="corrosion-", dir=staging_root())
        try:
            count = copy_folder(key, destination)
        except BaseException:
            shutil.rmtree(destination, ignore_errors=True)
            raise
        log.info("copied %s (%d files) to %s", key, count, destination)
        replaced, _copies[key] = _copies.get(key), destination
        if replaced:
            shutil.rmtree(replaced, ignore_errors=True)
        return destination


@atexit.register
def remove_copies() -> None:
    """Every local copy this process made (also run at exit)."""
    with _lock:
        for folder in _copies.values():
            shutil.rmtree(folder, ignore_errors=True)
        _copies.clear()


def upload_folder(local: str, uri: str, last: str | None = None) -> list[str]:
    """Every file under the local folder ``local`` to ``uri`` (as ``gsutil cp -r`` would): the URIs
    written. ``last``: a top-level file name uploaded after all the others (a completeness marker)."""
    files = sorted(
        os.path.relpath(os.path.join(folder, name), local).replace(os.sep, "/")
        for folder, _, names in os.walk(local)
        for name in names
    )
    files.sort(key=lambda name: name == last)  # stable: ``last`` moves to the end
    written = []
    for name in files:
        target = io_utils.join(uri, name)
        with (
            open(os.path.join(local, name), "rb") as src,
            FileSystems.create(target, compression_type="uncompressed") as dst,
        ):
            while chunk := src.read(8 * 2**20):
                dst.write(chunk)
        written.append(target)
    return written
