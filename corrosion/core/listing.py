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
from dataclasses import dataclass, field

from apache_beam.io.filesystems import FileSystems

from corrosion.core import io_utils, paths

log = logging.getLogger(__name__)

GLOB_CHARS = re.compile(r"[*?\[]")

# Problem reasons (stable codes for reject and error rows).
DANGLING_SYMLINK = "dangling_symlink"
NOT_REGULAR = "not_a_regular_file"
UNDECODABLE_NAME = "undecodable_name"
INVALID_NAME = "invalid_name"
UNREADABLE_FOLDER = "unreadable_folder"
MISSING = "missing_file"
IS_FOLDER = "is_a_folder"
MATCH_FAILED = "match_failed"
SYSTEM_FOLDER = "system_folder"
SYSTEM_FOLDERS = ("/proc", "/sys", "/dev")  # pseudo-files there block (/proc/kmsg) or never end (/dev/zero)


@dataclass(frozen=True)
class Found:
    """A regular file that can be read: ``path`` opens it, ``size`` bounds the read."""

    path: str
    size: int
    via_link: bool = field(default=False, compare=False)  # reached through a symlinked folder


@dataclass(frozen=True)
class Problem:
    """A name that cannot be read as a file; ``path`` is printable (``paths.display``), ``raw`` the
    name as the OS gave it (it may hold undecodable bytes as surrogate escapes)."""

    path: str
    reason: str
    detail: str
    raw: str = field(default="", compare=False)


def key(item: Found | Problem) -> bytes:
    """One input's identity, safe for any Beam coder: the raw name's bytes (two files whose printable
    names agree, ``caf\\xe9.jpg`` and a Latin-1 ``café.jpg``, stay two inputs)."""
    return _name(item).encode("utf-8", "surrogateescape")


def escape_glob(path: str) -> str:
    """``path`` as a pattern that matches only itself (``[`` ``*`` ``?`` as one-character classes)."""
    return re.sub(r"([*?\[])", r"[\1]", path)


def has_glob(pattern: str) -> bool:
    return bool(GLOB_CHARS.search(pattern))


def glob_regex(pattern: str) -> re.Pattern:
    """Beam's glob syntax as a regex over whole paths: ``**`` any characters, ``*`` and ``?`` any
    within one folder, ``[...]`` a class (``[!...]`` negated). Unlike Beam's own translation, ``*``
    may match a backslash: on a local disk it is an ordinary character in a name."""
    out, i, n = [], 0, len(pattern)
    while i < n:
        c = pattern[i]
        i += 1
        if c == "*" and i < n and pattern[i] == "*":
            out.append(".*")
            i += 1
        elif c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            j = i + (1 if i < n and pattern[i] == "!" else 0)
            j += 1 if j < n and pattern[j] == "]" else 0
            while j < n and pattern[j] != "]":
                j += 1
            if j >= n:
                out.append(re.escape(c))
                continue
            body = pattern[i:j].replace("\\", "\\\\").replace("[", "\\[")
            i = j + 1
            body = "^" + body[1:] if body.startswith("!") else ("\\" + body if body.startswith("^") else body)
            out.append(f"[{body}]")
        else:
            out.append(re.escape(c))
    return re.compile("".join(out) + r"\Z", re.DOTALL)


def _problem_for_name(path: str) -> Problem | None:
    if "\x00" in path:  # no file system allows it: from a list or a crafted name, and os.stat would raise
        shown = paths.display(path)
        return Problem(shown, INVALID_NAME, f"{shown}: a file name cannot hold a NUL byte", raw=path)
    if paths.is_undecodable(path):
        shown = paths.display(path)
        return Problem(
            shown,
            UNDECODABLE_NAME,
            f"{shown}: the file name is not valid UTF-8 (undecodable bytes shown as \\xNN), so it "
            "cannot be carried through the pipeline or its outputs; rename it to UTF-8 (e.g. convmv -f latin1 "
            "-t utf8) and run again",
            raw=path,
        )
    return None


def _classify(path: str, via_link: bool = False) -> Found | Problem:
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
            return Problem(shown, DANGLING_SYMLINK, f"{shown}: symbolic link to {target}, which does not exist", path)
        return Problem(shown, MISSING, f"{shown}: does not exist (removed while listing?)", path)
    except OSError as exc:
        return Problem(shown, NOT_REGULAR, f"{shown}: cannot be examined ({exc.strerror})", path)
    if stat.S_ISDIR(st.st_mode):
        return Problem(shown, IS_FOLDER, f"{shown}: is a folder, not a file", path)
    if not stat.S_ISREG(st.st_mode):
        kind = "FIFO" if stat.S_ISFIFO(st.st_mode) else "device or socket"
        detail = f"{shown}: is a {kind}, not a regular file; refused (reading it could block forever)"
        return Problem(shown, NOT_REGULAR, detail, path)
    return Found(path, st.st_size, via_link)


def _system_folder(real: str) -> bool:
    return any(real == s or real.startswith(s + "/") for s in SYSTEM_FOLDERS)


def _walk_local(root: str) -> Iterator[Found | Problem]:
    """Every name under ``root``, depth first, sorted per folder. Symlinked folders are followed
    (under their link name too: ``latest -> 2024-06-01`` is matched by ``latest/*``) except a link
    back to a folder on its own path (a loop) and links into /proc, /sys or /dev, whose files block
    or never end."""
    stack: list[tuple[str, tuple[str, ...], bool]] = [(root, (), False)]
    inside_system = _system_folder(os.path.realpath(root))
    while stack:
        folder, ancestors, via_link = stack.pop()
        real = os.path.realpath(folder)
        if real in ancestors:
            log.info("%s links back to %s, a folder on its own path; not followed", paths.display(folder), real)
            continue
        if _system_folder(real) and not inside_system:
            shown = paths.display(folder)
            yield Problem(shown, SYSTEM_FOLDER, f"{shown}: links to the system folder {real}; not listed", folder)
            continue
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            shown = paths.display(folder)
            yield Problem(shown, UNREADABLE_FOLDER, f"{shown}: folder cannot be listed ({exc.strerror})", folder)
            continue
        subfolders = []
        for entry in entries:
            path = posixpath.join(folder, entry.name)
            try:
                is_dir = entry.is_dir()  # follows symlinks
            except OSError:
                is_dir = False
            if is_dir and not paths.is_undecodable(path):
                subfolders.append((path, (*ancestors, real), via_link or entry.is_symlink()))
            else:
                yield _classify(path, via_link)
        stack.extend(reversed(subfolders))


def _without_link_aliases(items: list[Found | Problem]) -> list[Found | Problem]:
    """Drop files reached through a symlinked folder that are also listed under their own folder, so
    ``survey/**`` with ``survey/latest -> survey/2024-06-01`` scores each photo once."""
    aliased = [f for f in items if isinstance(f, Found) and f.via_link]
    if not aliased:
        return items
    real_names = {os.path.realpath(f.path) for f in items if isinstance(f, Found) and not f.via_link}
    dropped = {f.path for f in aliased if os.path.realpath(f.path) in real_names}
    if dropped:
        log.info(
            "%d file(s) reached through a symlinked folder are listed under their own folder instead", len(dropped)
        )
    return [f for f in items if not (isinstance(f, Found) and f.path in dropped)]


def walk(root: str, exclude: Iterable[str] = ()) -> list[Found | Problem]:
    """Every file under a folder (local or ``gs://``) but those under ``exclude`` (a tool's own
    output folder inside its input); a missing local folder is FileNotFoundError."""
    root = paths.normalise(root)
    if io_utils.is_remote(root):
        found = [Found(m.path, m.size_in_bytes) for m in _match_remote(paths.join(escape_glob(root), "**"))]
    elif not os.path.isdir(root):
        raise FileNotFoundError(f"input folder {root} does not exist")
    else:
        found = sorted(_without_link_aliases(list(_walk_local(root))), key=_name)
    return _excluding(found, exclude)


def match_glob(pattern: str, exclude: Iterable[str] = ()) -> list[Found | Problem]:
    """Files matching a Beam glob (``*`` within a folder, ``**`` across folders, a trailing ``/``
    meaning every file in that folder); names under any ``exclude`` prefix (the job's own outputs)
    are left out and logged."""
    if pattern.endswith("/"):
        pattern += "*"
    if io_utils.is_remote(pattern):
        found: list[Found | Problem] = [Found(m.path, m.size_in_bytes) for m in _match_remote(pattern)]
    elif not has_glob(pattern):
        found = [match_literal(pattern)]
    else:
        pattern = os.path.abspath(pattern)
        base = GLOB_CHARS.split(pattern, maxsplit=1)[0]
        base = base if base.endswith("/") else posixpath.dirname(base)
        regex = glob_regex(pattern)
        listed = _walk_local(base or "/") if os.path.isdir(base) else []
        found = sorted(_without_link_aliases([f for f in listed if regex.match(_name(f))]), key=_name)
    return _excluding(found, exclude)


def _excluding(found: list[Found | Problem], exclude: Iterable[str]) -> list[Found | Problem]:
    """``found`` without the names under any ``exclude`` folder (the job's own outputs), logged."""
    exclude = tuple(paths.normalise(e) for e in exclude if e)
    kept = [f for f in found if not any(paths.is_within(_name(f), e) for e in exclude)]
    if len(kept) < len(found):
        log.info("left out %d file(s) under this job's own output folders %s", len(found) - len(kept), exclude)
    return kept


def _name(item: Found | Problem) -> str:
    """The name as listed (raw), for matching, sorting and exclusion."""
    return item.path if isinstance(item, Found) else (item.raw or item.path)


def match_literal(path: str) -> Found | Problem:
    """One named file, never globbed: what it is, or why it cannot be read."""
    if io_utils.is_remote(path):
        try:
            matched = _match_remote(escape_glob(path))
        except Exception as exc:  # permissions, malformed URI
            return Problem(path, MATCH_FAILED, f"{path}: cannot be looked up ({exc})", path)
        exact = [m for m in matched if m.path == path]
        if not exact:
            return Problem(path, MISSING, f"{path}: does not exist", path)
        return Found(exact[0].path, exact[0].size_in_bytes)
    return _classify(os.path.abspath(path))


def _match_remote(pattern: str):
    return FileSystems.match([pattern])[0].metadata_list
