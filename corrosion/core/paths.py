"""Path arithmetic that treats local paths and ``gs://`` URLs alike (no file access)."""

from __future__ import annotations

import os
import posixpath
import re

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")


def split_scheme(path: str) -> tuple[str, str]:
    """('gs://', 'bucket/a/b') or ('', '/a/b')."""
    if "://" in path:
        scheme, rest = path.split("://", 1)
        return scheme + "://", rest
    return "", path


def normalise(path: str) -> str:
    """Collapse ``.``/``..``; local paths become absolute so listing and annotations agree."""
    scheme, rest = split_scheme(path)
    if scheme:
        return scheme + posixpath.normpath(rest)
    return posixpath.normpath(os.path.abspath(rest))


def parent(path: str) -> str:
    scheme, rest = split_scheme(path)
    return scheme + posixpath.dirname(rest.rstrip("/"))


def name(path: str) -> str:
    return posixpath.basename(split_scheme(path)[1].rstrip("/"))


def stem(path: str) -> str:
    return posixpath.splitext(name(path))[0]


def ext(path: str) -> str:
    return posixpath.splitext(name(path))[1].lower()


def join(base: str, *parts: str) -> str:
    scheme, rest = split_scheme(base)
    return scheme + posixpath.join(rest, *parts)


def is_within(path: str, root: str) -> bool:
    """Whether normalised ``path`` lies inside ``root`` (no escaping with ``..``)."""
    path, root = normalise(path), normalise(root).rstrip("/")
    return path == root or path.startswith(root + "/")


def relative(path: str, root: str) -> str:
    path, root = normalise(path), normalise(root).rstrip("/")
    return path[len(root) + 1 :] if path.startswith(root + "/") else path


def is_image(path: str) -> bool:
    return ext(path) in IMAGE_EXTENSIONS


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def is_undecodable(path: str) -> bool:
    """A name read from disk with bytes that are not UTF-8 (Python keeps them as surrogate escapes)."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def display(path: str) -> str:
    """``path`` printable on one line: undecodable bytes as ``\\xNN``, control characters escaped.

    Result rows, CSVs and logs carry this form, so a name holding a newline cannot split a row and
    a Latin-1 name cannot crash a UTF-8 coder; ordinary names are returned unchanged.
    """
    if is_undecodable(path):
        try:
            raw = path.encode("utf-8", "surrogateescape")  # the bytes the OS gave
        except UnicodeEncodeError:  # a lone surrogate that came from elsewhere (JSON, a user)
            raw = path.encode("utf-8", "backslashreplace")
        path = raw.decode("utf-8", "backslashreplace")
    if _CONTROL.search(path):
        path = _CONTROL.sub(lambda m: repr(m.group())[1:-1], path)
    return path
