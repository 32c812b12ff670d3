"""File access that works the same for local paths and ``gs://`` (Beam FileSystems)."""

from __future__ import annotations

import os
import posixpath

from apache_beam.io.filesystems import FileSystems

# Annotation files (VOC XML, YOLO txt, data.yaml, manifests) larger than this are refused unread.
MAX_ANNOTATION_BYTES = 16 * 2**20
MAX_COCO_BYTES = 256 * 2**20  # one COCO file holds a whole export's annotations
MAX_DATA_YAML_BYTES = 2**20


class FileTooLarge(OSError):
    """A file over the size a reader accepts; raised before more than the limit is read."""

    reason = "file_too_large"


def read_error_reason(exc: OSError) -> str:
    """The reject reason for a file that could not be read: ``file_too_large`` or ``read_error``."""
    return exc.reason if isinstance(exc, FileTooLarge) else "read_error"


def read_bytes(path: str, max_bytes: int | None = None) -> bytes:
    """Whole file as bytes; FileNotFoundError naming the path when it is missing.

    ``max_bytes`` bounds the read: one byte more than that is read at most, then FileTooLarge.
    """
    if not FileSystems.exists(path):
        raise FileNotFoundError(f"{path} does not exist")
    with FileSystems.open(path, compression_type="uncompressed") as handle:
        data = handle.read() if max_bytes is None else handle.read(max_bytes + 1)
    if max_bytes is not None and len(data) > max_bytes:
        raise FileTooLarge(f"{path}: larger than {max_bytes} bytes; refused")
    return data


def read_text(path: str, max_bytes: int | None = None, errors: str = "strict") -> str:
    """UTF-8 text (a leading byte-order mark dropped); ``errors="replace"`` for lenient readers."""
    return read_bytes(path, max_bytes).decode("utf-8-sig", errors)


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


def matching(pattern: str) -> list[str]:
    """The paths a glob matches, local or ``gs://``, sorted."""
    return sorted(m.path for m in FileSystems.match([pattern])[0].metadata_list)


def is_remote(path: str) -> bool:
    return "://" in path


def normalise(path: str) -> str:
    return path if is_remote(path) else posixpath.normpath(path)
