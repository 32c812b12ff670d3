"""Versioned model folders and the pointer that says which one the nightly job loads.

A model root holds one immutable folder per trained model, named by its version
(``ROOT/<metadata version>/``), and a one-line pointer file ``ROOT/current`` naming the version in
use. Publishing a new model writes a new folder and never touches the one in use; promoting it
rewrites the pointer in one step (a local rename over the old file; a single object write on
``gs://``, which readers see whole or not at all), so a job starting during a promotion loads
the old version or the new one, never a mix. The folder's ``metadata.json`` is copied last: a
version folder without it is incomplete and cannot be promoted.

A plain model folder (``metadata.json`` at its top, as training writes it) still works wherever a
root does: ``resolve`` returns it unchanged.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import uuid

from apache_beam.io.filesystems import FileSystems

from corrosion.core import io_utils, staging
from corrosion.models import serving

log = logging.getLogger(__name__)

POINTER_FILE = "current"


class VersionError(ValueError):
    """A version that does not exist, is incomplete, or would overwrite an existing one."""


def version_dir(root: str, version: str) -> str:
    if not version or "/" in version or version in (".", "..", POINTER_FILE):
        raise VersionError(f"{version!r} is not a version name")
    return io_utils.join(root, version)


def current(root: str) -> str | None:
    """The version ``ROOT/current`` names, None when the root has no pointer."""
    path = io_utils.join(root, POINTER_FILE)
    if not io_utils.exists(path):
        return None
    return io_utils.read_text(path, max_bytes=4096).strip() or None


def is_complete(root: str, version: str) -> bool:
    return io_utils.exists(io_utils.join(version_dir(root, version), serving.METADATA_FILE))


def resolve(path: str, version: str | None = None) -> str:
    """The model folder a job should load: ``path/version`` when a version is asked for, the version
    ``path/current`` names when ``path`` is a model root, else ``path`` itself (a plain model folder)."""
    if version is None:
        version = current(path)
        if version is None:
            return path
    if not is_complete(path, version):
        raise VersionError(f"{version_dir(path, version)} holds no complete model (no {serving.METADATA_FILE})")
    return version_dir(path, version)


def publish(model_dir: str, root: str) -> str:
    """Copy a trained model folder into ``ROOT/<its version>/`` (metadata.json last); the version.

    VersionError when that version is already there: a published version is never overwritten.
    """
    version = serving.read_metadata(model_dir).version
    target = version_dir(root, version)
    if io_utils.exists(io_utils.join(target, serving.METADATA_FILE)):
        raise VersionError(f"{target} exists: published versions are immutable; retrain to get a new version")
    if io_utils.is_remote(root):
        files = staging.upload_folder(model_dir, target, last=serving.METADATA_FILE)
        log.info("published %s to %s (%d files)", version, target, len(files))
        return version
    os.makedirs(root, exist_ok=True)
    partial = tempfile.mkdtemp(prefix=f".{version}.incomplete-", dir=root)
    shutil.copytree(model_dir, partial, dirs_exist_ok=True)
    os.rename(partial, target)  # the folder appears whole, under its final name
    log.info("published %s to %s", version, target)
    return version


def promote(root: str, version: str) -> str | None:
    """Point ``ROOT/current`` at ``version`` in one step; the version it named before (None)."""
    if not is_complete(root, version):
        raise VersionError(f"cannot promote {version}: {version_dir(root, version)} holds no complete model")
    before = current(root)
    pointer = io_utils.join(root, POINTER_FILE)
    if io_utils.is_remote(root):
        with FileSystems.create(pointer, mime_type="text/plain") as handle:  # one object write: whole or nothing
            handle.write(version.encode() + b"\n")
    else:
        tmp = f"{pointer}.{uuid.uuid4().hex[:8]}.tmp"
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(version + "\n")
        os.replace(tmp, pointer)
    log.info("%s now serves %s (was %s)", root, version, before or "nothing")
    return before


def versions(root: str) -> list[str]:
    """Complete versions under ``root``, sorted by name (training's versions sort by time)."""
    pattern = io_utils.join(root, "*", serving.METADATA_FILE)
    return sorted(io_utils.basename(io_utils.dirname(path)) for path in io_utils.matching(pattern))
