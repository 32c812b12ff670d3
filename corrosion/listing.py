"""Finding input files, local or ``gs://``, without hanging, globbing literals or losing anything.

Beam's local ``FileSystems.match`` walks without following symlinked folders and silently drops
what it cannot stat (a dangling symlink); it also lists FIFOs and devices, which a reader then
blocks on forever. Every tool lists its inputs here instead: local trees are walked with
symlinked folders followed (each real folder once, so a link to an ancestor is no loop), every
name found is either a regular file to read
(``Found``) or a ``Problem`` with a stable reason, and literal paths (``--input_list`` entries,
folders named ``site[1]``) are never treated as glob patterns.
"""

from __future__ import annotations

import logging
import os
import posixpath
import re
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from apache_beam.io.filesystem import FileSystem
from apache_beam.io.filesystems import FileSystems

from corrosion import io_utils, paths

log = logging.getLogger(__name__)

GLOB_CHARS = re.compile(r"[*?\[]")

# Problem reasons (stable codes for reject and error rows).
DANGLING_SYMLINK = "dangling_symlink"
NOT_REGULAR = "not_a_regular_file"
UNDECODABLE_NAME = "undecodable_name"
UNREADABLE_FOLDER = "unreadable_folder"
MISSING = "missing_file"
IS_FOLDER = "is_a_folder"
MATCH_FAILED = "match_failed"


@dataclass(frozen=True)
class Found:
    """A regular file that can be read: ``path`` opens it, ``size`` bounds the read."""

    path: str
    size: int


@dataclass(frozen=True)
class Problem:
    """A name that cannot be read as a file; ``path`` is printable (``paths.display``)."""

    path: str
    reason: str
    detail: str


def escape_glob(path: str) -> str:
    """``path`` as a pattern that matches only itself (``[`` ``*`` ``?`` as one-character classes)."""
    return re.sub(r"([*?\[])", r"[\1]", path)


def has_glob(pattern: str) -> bool:
    return bool(GLOB_CHARS.search(pattern))


def _problem_for_name(path: str) -> Problem | None:
    if paths.is_undecodable(path):
        return Problem(
            paths.display(path),
            UNDECODABLE_NAME,
            f"{paths.display(path)}: the file name is not valid UTF-8 (undecodable bytes shown as \\xNN), so it "
            "cannot be carried through the pipeline or its outputs; rename it to UTF-8 (e.g. convmv -f latin1 "
            "-t utf8) and run again",
        )
    return None


def _classify(path: str) -> Found | Problem:
    """One local name: a regular file (symlinks followed) or why it is not one. Never opens it."""
    problem = _problem_for_name(path)
    if problem is not None:
        return problem
    shown = paths.display(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            target = paths.display(os.readlink(path))
            return Problem(shown, DANGLING_SYMLINK, f"{shown}: symbolic link to {target}, which does not exist")
        return Problem(shown, MISSING, f"{shown}: does not exist (removed while listing?)")
    except OSError as exc:
        return Problem(shown, NOT_REGULAR, f"{shown}: cannot be examined ({exc.strerror})")
    if stat.S_ISDIR(st.st_mode):
        return Problem(shown, IS_FOLDER, f"{shown}: is a folder, not a file")
    if not stat.S_ISREG(st.st_mode):
        kind = "FIFO" if stat.S_ISFIFO(st.st_mode) else "device or socket"
        return Problem(
            shown, NOT_REGULAR, f"{shown}: is a {kind}, not a regular file; refused (reading it could block forever)"
        )
    return Found(path, st.st_size)


def _walk_local(root: str) -> Iterator[Found | Problem]:
    """Every name under ``root``, symlinked folders followed once each, sorted per folder."""
    seen: set[str] = set()
    stack = [root]
    while stack:
        folder = stack.pop()
        real = os.path.realpath(folder)
        if real in seen:  # a link to a folder listed already (or to an ancestor): its files are listed once
            log.info("%s: links to %s, listed already; not listed twice", paths.display(folder), real)
            continue
        seen.add(real)
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            shown = paths.display(folder)
            yield Problem(shown, UNREADABLE_FOLDER, f"{shown}: folder cannot be listed ({exc.strerror})")
            continue
        subfolders = []
        for entry in entries:
            path = posixpath.join(folder, entry.name)
            try:
                is_dir = entry.is_dir()  # follows symlinks
            except OSError:
                is_dir = False
            if is_dir and not paths.is_undecodable(path):
                subfolders.append((entry.is_symlink(), path))
            else:
                yield _classify(path)
        # real folders before links to them, so a file is listed under its own folder's name
        stack.extend(path for _, path in sorted(subfolders, reverse=True))


def walk(root: str) -> list[Found | Problem]:
    """Every file under a folder (local or ``gs://``); a missing local folder is FileNotFoundError."""
    root = paths.normalise(root)
    if io_utils.is_remote(root):
        return [Found(m.path, m.size_in_bytes) for m in _match_remote(paths.join(escape_glob(root), "**"))]
    if not os.path.isdir(root):
        raise FileNotFoundError(f"input folder {root} does not exist")
    return sorted(_walk_local(root), key=lambda f: f.path)


def match_glob(pattern: str, exclude: Iterable[str] = ()) -> list[Found | Problem]:
    """Files matching a Beam glob (``*`` within a folder, ``**`` across folders); names under any
    ``exclude`` prefix (the job's own outputs) are left out and logged."""
    exclude = tuple(paths.normalise(e) for e in exclude if e)
    if io_utils.is_remote(pattern):
        found: list[Found | Problem] = [Found(m.path, m.size_in_bytes) for m in _match_remote(pattern)]
    elif not has_glob(pattern):
        found = [match_literal(pattern)]
    else:
        pattern = os.path.abspath(pattern)
        base = GLOB_CHARS.split(pattern, maxsplit=1)[0]
        base = base if base.endswith("/") else posixpath.dirname(base)
        regex = re.compile(FileSystem.translate_pattern(pattern))
        listed = _walk_local(base or "/") if os.path.isdir(base) else []
        found = sorted((f for f in listed if regex.match(f.path)), key=lambda f: f.path)
    kept = [f for f in found if not any(paths.is_within(f.path, e) for e in exclude)]
    if len(kept) < len(found):
        log.info("left out %d file(s) under this job's own output folders %s", len(found) - len(kept), exclude)
    return kept


def match_literal(path: str) -> Found | Problem:
    """One named file, never globbed: what it is, or why it cannot be read."""
    if io_utils.is_remote(path):
        try:
            matched = _match_remote(escape_glob(path))
        except Exception as exc:  # permissions, malformed URI
            return Problem(path, MATCH_FAILED, f"{path}: cannot be looked up ({exc})")
        exact = [m for m in matched if m.path == path]
        if not exact:
            return Problem(path, MISSING, f"{path}: does not exist")
        return Found(exact[0].path, exact[0].size_in_bytes)
    return _classify(os.path.abspath(path))


def _match_remote(pattern: str):
    return FileSystems.match([pattern])[0].metadata_list
