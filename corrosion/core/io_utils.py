"""File access that works the same for local paths and ``gs://`` (Beam FileSystems), and the one
way a tool says it cannot write its outputs (a folder refused at launch, a disk that fills or turns
read-only during the run): one line naming the folder and what to do, never a traceback."""

from __future__ import annotations

import errno
import os
import posixpath
import re
import uuid
from collections.abc import Iterator, Sequence

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


# ---------------------------------------------------------------- outputs that cannot be written

WRITE_ERRORS = {
    errno.ENOSPC: "free space there or give another folder",
    errno.EDQUOT: "free space in your quota or give another folder",
    errno.EROFS: "it is on a read-only file system: give a writable folder",
    errno.EACCES: "give a folder this user may write to (or change its permissions)",
    errno.EPERM: "give a folder this user may write to (or change its permissions)",
}
_ERRNO_TEXT = re.compile(r"\[Errno (\d+)\] ([^:\n]+)(?::\s*'([^'\n]+)')?")


class OutputNotWritable(SystemExit):
    """An output folder the tool cannot write: one line naming it and what to do (exit status 1)."""


def check_writable(folder: str | None, flag: str) -> None:
    """Create ``folder`` and a probe file in it, then remove the probe, so a folder the job cannot
    write (read-only, full, under a file, forbidden) is refused at launch, not after the night's
    work. Local folders only: ``gs://`` locations are checked by ``cloud_checks``."""
    if not folder or is_remote(folder):
        return
    probe = os.path.join(folder, f".write-probe-{uuid.uuid4().hex[:12]}")
    try:
        os.makedirs(folder, exist_ok=True)
        with open(probe, "wb") as handle:
            handle.write(b"probe")
            handle.flush()
            os.fsync(handle.fileno())
        os.remove(probe)
    except OSError as exc:
        advice = WRITE_ERRORS.get(exc.errno, "give a folder the tool can create and write")
        raise OutputNotWritable(f"{flag} {folder}: cannot write there ({exc.strerror}); {advice}") from exc


def write_failure(exc: BaseException, folders: Sequence[str | None]) -> str | None:
    """The one-line message for ``exc`` when it is a write that failed for want of space or
    permission (ENOSPC, EDQUOT, EROFS, EACCES, EPERM), naming the folder it was writing; None for
    anything else. Beam re-raises a worker's error as text, so the text is read too."""
    found = [(e.errno, e.strerror or str(e), e.filename) for e in _chain(exc) if isinstance(e, OSError)]
    found += [(int(n), text.strip(), name or None) for n, text, name in _ERRNO_TEXT.findall(str(exc))]
    for number, strerror, filename in found:
        if number in WRITE_ERRORS and (message := _write_message(number, strerror, filename, folders)):
            return message
    return None


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def _write_message(number: int, strerror: str, filename: object, folders: Sequence[str | None]) -> str | None:
    """None for a permission error on a path outside the outputs (an input or a model: not a write)."""
    path = os.fsdecode(filename) if isinstance(filename, str | bytes) else ""
    owners = [f for f in folders if f and path and _absolute(path).startswith(_absolute(f).rstrip("/") + "/")]
    if number in (errno.EACCES, errno.EPERM) and not owners:
        return None
    folder = max(owners, key=len) if owners else (dirname(path) if path else ", ".join(f for f in folders if f))
    return f"cannot write into {folder} ({strerror}{f': {path}' if path else ''}); {WRITE_ERRORS[number]}"


def _absolute(path: str) -> str:
    return path if is_remote(path) else os.path.abspath(path)
