"""Finding input files, local or ``gs://``, without hanging, globbing literals or losing anything.

Beam's local ``FileSystems.match`` walks without following symlinked folders and silently drops
what it cannot stat (a dangling symlink); it also lists FIFOs and devices, which a reader then
blocks on forever. Every tool lists its inputs here instead: local trees are walked with
symlinks followed while they stay inside the input folder (a link to ``/`` once made a data set
build walk the whole machine), every name found is either a regular file to read (``Found``) or
a ``Problem`` with a stable reason (a loop or a link out of the input folder is one, naming the
link), and literal paths (``--input_list`` entries, folders named ``site[1]``) are never treated
as glob patterns. ``decode_list`` reads an ``--input_list`` file whatever its byte-order mark and
line ends.
"""

from __future__ import annotations

import codecs
import logging
import os
import posixpath
import re
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace

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
LINK_OUTSIDE = "link_outside_input"
LINK_LOOP = "link_loop"
SYSTEM_FOLDERS = ("/proc", "/sys", "/dev")  # pseudo-files there block (/proc/kmsg) or never end (/dev/zero)


@dataclass(frozen=True)
class Found:
    """A regular file that can be read: ``path`` opens it, ``size`` bounds the read."""

    path: str
    size: int
    via_link: bool = field(default=False, compare=False)  # reached through a symlinked folder
    # sha256 of the bytes earlier runs scored at this path (batch inference's --skip_processed join)
    scored: frozenset[str] = field(default=frozenset(), compare=False)


@dataclass(frozen=True)
class Problem:
    """A name that cannot be read as a file; ``path`` is printable (``paths.display``), ``raw`` the
    name as the OS gave it (it may hold undecodable bytes as surrogate escapes)."""

    path: str
    reason: str
    detail: str
    raw: str = field(default="", compare=False)
    folder: bool = field(default=False, compare=False)  # a folder (or link to one) not walked
    via_link: bool = field(default=False, compare=False)  # reached through a symlinked folder


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
            try:
                target = paths.display(os.readlink(path))
            except OSError:  # removed meanwhile (a process's /proc entry, say)
                target = "a name"
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


def _within(real: str, real_root: str) -> bool:
    return real_root == "/" or real == real_root or real.startswith(real_root.rstrip("/") + "/")


@dataclass(frozen=True)
class _Walk:
    """What one walk keeps fixed: the root's real path and whether links may leave it."""

    real_root: str
    follow_outside: bool
    inside_system: bool


def _link_problem(path: str, real: str, ancestors: tuple[str, ...], walk: _Walk) -> Problem | None:
    """Why the symlink ``path`` (to the real path ``real``) is not followed, or None when it is: a
    link to a folder on its own path loops; one out of the input root escapes, unless asked for;
    one into /proc, /sys or /dev is never walked (pseudo-files there block or never end)."""
    shown, target = paths.display(path), paths.display(real)
    if real in ancestors:
        detail = f"{shown}: symbolic link to {target}, a folder on its own path (a loop); not followed"
        return Problem(shown, LINK_LOOP, detail, path, folder=True)
    if _system_folder(real) and not walk.inside_system:
        return Problem(shown, SYSTEM_FOLDER, f"{shown}: links to the system folder {target}; not listed", path, True)
    if not walk.follow_outside and not _within(real, walk.real_root):
        detail = (
            f"{shown}: symbolic link to {target}, outside the input folder {paths.display(walk.real_root)}; not "
            "followed (give --follow_links_outside to follow links out of the input folder)"
        )
        return Problem(shown, LINK_OUTSIDE, detail, path, folder=os.path.isdir(real))
    return None


def _system_problem(path: str, real: str, walk: _Walk) -> Problem | None:
    """A plain folder under /proc, /sys or /dev reached through a followed link (to ``/``, say)."""
    if not _system_folder(real) or walk.inside_system:
        return None
    shown = paths.display(path)
    return Problem(shown, SYSTEM_FOLDER, f"{shown}: is the system folder {real}; not listed", path, True)


def _scan_folder(folder: str, ancestors: tuple[str, ...], via_link: bool, walk: _Walk):
    """One folder's entries, sorted: (subfolders to walk, names found here as Found or Problem)."""
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError as exc:
        shown = paths.display(folder)
        detail = f"{shown}: folder cannot be listed ({exc.strerror})"
        return [], [Problem(shown, UNREADABLE_FOLDER, detail, folder, folder=True)]
    subfolders, found = [], []
    for entry in entries:
        path = posixpath.join(folder, entry.name)
        link = entry.is_symlink()
        try:
            is_dir = entry.is_dir()  # follows symlinks
        except OSError:
            is_dir = False
        problem, real = None, ""
        if (link or is_dir) and os.path.exists(path) and _problem_for_name(path) is None:
            real = os.path.realpath(path)
            problem = _link_problem(path, real, ancestors, walk) if link else _system_problem(path, real, walk)
        if problem is None and is_dir and real:
            subfolders.append((path, (*ancestors, real), via_link or link))
            continue
        item = problem or _classify(path, via_link)
        found.append(replace(item, via_link=True) if via_link and isinstance(item, Problem) else item)
    return subfolders, found


def _walk_local(root: str, follow_outside: bool = False) -> Iterator[Found | Problem]:
    """Every name under ``root``, depth first, sorted per folder. Symlinks are followed (a linked
    folder under its link name too: ``latest -> 2024-06-01`` is matched by ``latest/*``), except
    those ``_link_problem`` refuses, each a Problem naming the link: a loop, a link out of
    ``root`` (unless ``follow_outside``), a link into a system folder."""
    real_root = os.path.realpath(root)
    walk = _Walk(real_root, follow_outside, _system_folder(real_root))
    stack: list[tuple[str, tuple[str, ...], bool]] = [(root, (real_root,), False)]
    while stack:
        folder, ancestors, via_link = stack.pop()
        subfolders, found = _scan_folder(folder, ancestors, via_link, walk)
        yield from found
        stack.extend(reversed(subfolders))


def _without_link_aliases(items: list[Found | Problem]) -> list[Found | Problem]:
    """Drop names reached through a symlinked folder that are also listed under their own folder, so
    ``survey/**`` with ``survey/latest -> survey/2024-06-01`` scores each photo once (and reports
    each loop or FIFO in it once)."""
    aliased = [f for f in items if f.via_link]
    if not aliased:
        return items
    real_names = {_real_name(f) for f in items if not f.via_link}
    dropped = {id(f) for f in aliased if _real_name(f) in real_names}
    if dropped:
        log.info(
            "%d name(s) reached through a symlinked folder are listed under their own folder instead", len(dropped)
        )
    return [f for f in items if id(f) not in dropped]


def _real_name(item: Found | Problem) -> str:
    """A file's real path; for a name that is no file (a link not followed), its folder's real path and its name."""
    if isinstance(item, Found):
        return os.path.realpath(item.path)
    name = _name(item)
    return posixpath.join(os.path.realpath(posixpath.dirname(name)), posixpath.basename(name))


def walk(root: str, exclude: Iterable[str] = (), follow_outside: bool = False) -> list[Found | Problem]:
    """Every file under a folder (local or ``gs://``) but those under ``exclude`` (a tool's own
    output folder inside its input); a missing local folder is FileNotFoundError. Links out of
    ``root`` are Problems unless ``follow_outside``."""
    root = paths.normalise(root)
    if io_utils.is_remote(root):
        found = [Found(m.path, m.size_in_bytes) for m in _match_remote(paths.join(escape_glob(root), "**"))]
    elif not os.path.isdir(root):
        raise FileNotFoundError(f"input folder {root} does not exist")
    else:
        found = sorted(_without_link_aliases(list(_walk_local(root, follow_outside))), key=_name)
    return _excluding(found, exclude)


def match_glob(pattern: str, exclude: Iterable[str] = (), follow_outside: bool = False) -> list[Found | Problem]:
    """Files matching a Beam glob (``*`` within a folder, ``**`` across folders, a trailing ``/``
    meaning every file in that folder); names under any ``exclude`` prefix (the job's own outputs)
    are left out and logged. The folder before the first glob character is the input root: links
    out of it are Problems unless ``follow_outside``, as is a folder link the pattern reaches into."""
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
        listed = _walk_local(base or "/", follow_outside) if os.path.isdir(base) else []
        kept = [f for f in listed if (_reaches_into(pattern, f) if _is_folder(f) else regex.match(_name(f)))]
        found = sorted(_without_link_aliases(kept), key=_name)
    return _excluding(found, exclude)


def _is_folder(item: Found | Problem) -> bool:
    return isinstance(item, Problem) and item.folder


def _reaches_into(pattern: str, item: Found | Problem) -> bool:
    """Whether ``pattern`` could match files under ``item``, a folder that was not walked (a loop, a
    link out of the input): its row then says why nothing there was listed. A folder is never a
    match itself (``dir/*`` means the files in ``dir``)."""
    segments, parts = pattern.strip("/").split("/"), _name(item).strip("/").split("/")
    for i, part in enumerate(parts):
        if i >= len(segments) or "**" in segments[i]:
            return i < len(segments)
        if i == len(segments) - 1 or not glob_regex(segments[i]).match(part):
            return False
    return True


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


# ---------------------------------------------------------------- --input_list files

# Byte-order marks, longest first: the UTF-32-LE mark begins with the UTF-16-LE one.
BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
LINE_END = re.compile(r"\r\n|\r|\n")  # not str.splitlines: \x0c, \x1c, \x85, \u2028 may be in names
WIDE_NUL_SHARE = 0.3  # UTF-16 text is ~50 % NUL bytes, UTF-32 ~75 %; one crafted NUL in a UTF-8 list is not


class ListError(ValueError):
    """An ``--input_list`` file that cannot be read as a list of names; the message says what to do."""


def decode_list(data: bytes, name: str) -> list[str]:
    """The lines of a list file, without their line ends (CR, LF or CRLF) or byte-order mark.

    UTF-8 (undecodable bytes kept as surrogate escapes: a Latin-1 name names that file, which
    then gets its ``undecodable_name`` row), or UTF-16 / UTF-32 when a byte-order mark says so.
    ListError for wide text without a mark or text its mark does not fit: a UTF-16 list read as
    UTF-8 would name nothing, each line a NUL-ridden error."""
    encoding, body = next(((enc, data[len(bom) :]) for bom, enc in BOMS if data.startswith(bom)), ("", data))
    if not encoding:
        nuls = data.count(0)
        if nuls >= 2 and nuls >= WIDE_NUL_SHARE * len(data):
            raise ListError(
                f"{paths.display(name)}: {nuls} of its {len(data)} bytes are NUL, so it is probably UTF-16 or UTF-32 "
                "without a byte-order mark; save it as UTF-8 (e.g. iconv -f UTF-16LE -t UTF-8 LIST > LIST.utf8), "
                "or with a byte-order mark, and give that file"
            )
        encoding = "utf-8"
    try:
        text = body.decode(encoding, "surrogateescape" if encoding == "utf-8" else "strict")
    except UnicodeDecodeError as exc:
        raise ListError(
            f"{paths.display(name)}: starts with a {encoding} byte-order mark but byte {exc.start} does not "
            f"fit {encoding}; save the list as UTF-8 and give that file"
        ) from exc
    lines = LINE_END.split(text)
    return lines[:-1] if lines and lines[-1] == "" else lines


def literal_name(entry: str) -> str:
    """The name ``match_literal(entry)`` lists ``entry`` under (its row's identity), without touching the disk."""
    return entry if io_utils.is_remote(entry) else os.path.abspath(entry)
