"""File access that works the same for local paths and ``gs://`` (Beam FileSystems)."""

from __future__ import annotations

import os
import posixpath

from apache_beam.io.filesystems import FileSystems


def read_bytes(path: str) -> bytes:
    """Whole file as bytes; FileNotFoundError naming the path when it is missing."""
    if not FileSystems.exists(path):
        raise FileNotFoundError(f"{path} does not exist")
    with FileSystems.open(path, compression_type="uncompressed") as handle:
        return handle.read()


def read_text(path: str) -> str:
    return read_bytes(path).decode("utf-8")


def write_bytes(path: str, data: bytes) -> None:
    make_dirs(dirname(path))
    with FileSystems.create(path, compression_type="uncompressed") as handle:
        handle.write(data)


def write_text(path: str, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def exists(path: str) -> bool:
    return FileSystems.exists(path)


def remove_if_exists(path: str) -> bool:
    """Delete one file; False when there was none."""
    if not FileSystems.exists(path):
        return False
    FileSystems.delete([path])
    return True


def join(base: str, *parts: str) -> str:
    return FileSystems.join(base, *parts)


def dirname(path: str) -> str:
    return FileSystems.split(path)[0]


def basename(path: str) -> str:
    return FileSystems.split(path)[1]


def make_dirs(path: str) -> None:
    """Create a local directory tree; object stores have no directories, so nothing to do there.

    ``os.makedirs(exist_ok=True)`` rather than Beam's ``mkdirs``: several worker threads writing
    previews into one new folder race, and Beam's local mkdirs fails on a folder that exists.
    """
    if path and not is_remote(path):
        os.makedirs(path, exist_ok=True)


def is_remote(path: str) -> bool:
    return "://" in path


def normalise(path: str) -> str:
    return path if is_remote(path) else posixpath.normpath(path)
