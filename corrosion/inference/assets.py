"""Which asset and zone a photo shows, from where it lies under the survey root.

Surveys are filed by what was photographed (``hull-7/port-side/frame-112.jpg``), so the folder
layout is the asset register most archives already have. ``asset_pattern`` names it:
``{asset}/{zone}/...`` reads ``hull-7`` and ``port-side`` from that path. A pattern is a ``/``-
separated list of segments, matched against the path relative to the survey root:

- ``{asset}`` / ``{zone}``: one folder (or part of one, e.g. ``{asset}-{zone}``), taken as the value;
- ``*``: one folder, ignored; ``...``: one or more segments, the rest of the path (only last);
- anything else: literal text the segment must hold.

Where folders do not say it, ``--asset_map FILE.csv`` does (columns ``image``, ``asset``, ``zone``;
``image`` is the path relative to the survey root, or a bare file name that names every photo of
that name); the map wins over the pattern. A photo neither names gets null asset and zone, never
an error row; a map that cannot be read is refused at launch, naming the file and the line.
"""

from __future__ import annotations

import csv
import io
import posixpath
import re
from dataclasses import dataclass, field

from corrosion.core import io_utils, listing, paths

FIELDS = ("asset", "zone")
MAP_COLUMNS = ("image", "asset", "zone")
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")


class AssetError(ValueError):
    """A pattern or map that cannot be used; the message names the file, line and reason."""


def compile_pattern(pattern: str) -> re.Pattern:
    """The pattern as a regex over relative paths, with named groups ``asset`` and ``zone``."""
    segments = pattern.strip("/").split("/")
    if not pattern.strip("/") or "" in segments:
        raise AssetError(f"asset_pattern {pattern!r}: empty segment (write e.g. '{{asset}}/{{zone}}/...')")
    out, seen = [], set()
    for i, segment in enumerate(segments):
        if segment == "...":
            if i != len(segments) - 1:
                raise AssetError(f"asset_pattern {pattern!r}: '...' may only be the last segment")
            out.append(r".+")
            continue
        if segment == "*":
            out.append(r"[^/]+")
            continue
        if "{" in _PLACEHOLDER.sub("", segment) or "}" in _PLACEHOLDER.sub("", segment):
            raise AssetError(f"asset_pattern {pattern!r}: unbalanced brace in {segment!r}")
        parts, last = [], 0
        for m in _PLACEHOLDER.finditer(segment):
            name = m[1]
            if name not in FIELDS:
                raise AssetError(f"asset_pattern {pattern!r}: unknown placeholder {{{name}}} (use {{asset}}, {{zone}})")
            if name in seen:
                raise AssetError(f"asset_pattern {pattern!r}: {{{name}}} appears twice")
            seen.add(name)
            parts += [re.escape(segment[last : m.start()]), f"(?P<{name}>[^/]+?)"]
            last = m.end()
        out.append("".join(parts) + re.escape(segment[last:]))
    if not seen:
        raise AssetError(f"asset_pattern {pattern!r}: names neither {{asset}} nor {{zone}}")
    return re.compile("/".join(out) + r"\Z", re.DOTALL)


def survey_root(input_glob: str | None, input_list: str | None) -> str:
    """The folder photo paths are taken relative to: the ``--input`` pattern's folder before its
    first glob character (as ``listing.match_glob`` walks it), a single file's folder, else the
    ``--input_list``'s folder (its relative entries are relative to it)."""
    if input_glob:
        pattern = input_glob if io_utils.is_remote(input_glob) else paths.normalise(input_glob)
        if input_glob.endswith("/"):
            return pattern.rstrip("/")
        base = listing.GLOB_CHARS.split(pattern, maxsplit=1)[0]
        if not listing.has_glob(pattern):
            return paths.parent(pattern)
        return base.rstrip("/") if base.endswith("/") else paths.parent(base)
    if input_list:
        return paths.parent(input_list if io_utils.is_remote(input_list) else paths.normalise(input_list))
    return ""


def relative_path(uri: str, root: str) -> str:
    """``uri`` relative to ``root`` (``/``-separated); the URI itself when it is not under it."""
    if not root:
        return uri
    root = root.rstrip("/")
    return uri[len(root) + 1 :] if uri.startswith(root + "/") else uri


@dataclass(frozen=True)
class AssetResolver:
    """Asset and zone of a photo by its URI: the map first, then the pattern (pickled to workers)."""

    root: str = ""
    pattern: str | None = None
    by_path: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)  # relative path -> (asset, zone)
    by_name: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)  # file name -> (asset, zone)

    def __post_init__(self) -> None:
        if self.pattern:
            compile_pattern(self.pattern)  # refused when the job is built, not on a worker

    @property
    def active(self) -> bool:
        return bool(self.pattern or self.by_path or self.by_name)

    def resolve(self, uri: str) -> tuple[str | None, str | None]:
        """(asset, zone) of the photo at ``uri``; (None, None) where nothing names it."""
        rel = relative_path(uri, self.root)
        mapped = self.by_path.get(rel) or self.by_name.get(posixpath.basename(rel))
        if mapped:
            return mapped
        if self.pattern:
            match = _compiled(self.pattern).match(rel)
            if match:
                groups = match.groupdict()
                return groups.get("asset"), groups.get("zone")
        return None, None


_CACHE: dict[str, re.Pattern] = {}


def _compiled(pattern: str) -> re.Pattern:
    if pattern not in _CACHE:
        _CACHE[pattern] = compile_pattern(pattern)
    return _CACHE[pattern]


def _cell(value: str | None) -> str | None:
    text = (value or "").strip()
    return text or None


def read_map(path: str) -> tuple[dict[str, tuple[str | None, str | None]], dict[str, tuple[str | None, str | None]]]:
    """(by relative path, by bare file name) from an ``--asset_map`` CSV; AssetError naming the
    file and line for a missing column, an empty or absolute or globbing ``image``, a row naming
    neither asset nor zone, or one photo mapped twice to different places."""
    try:
        text = io_utils.read_text(path).lstrip("\ufeff")
    except FileNotFoundError as exc:
        raise AssetError(f"--asset_map {path}: no such file") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise AssetError(f"--asset_map {path}: cannot be read as UTF-8 text ({exc})") from exc
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = [h.strip() for h in reader.fieldnames or ()]
    missing = [c for c in ("image", "asset") if c not in header]
    if missing:
        raise AssetError(f"--asset_map {path}, line 1: the header needs columns {MAP_COLUMNS} (missing {missing})")
    reader.fieldnames = header
    by_path: dict[str, tuple[str | None, str | None]] = {}
    by_name: dict[str, tuple[str | None, str | None]] = {}
    first_line: dict[str, int] = {}
    for record in reader:
        line = reader.line_num
        if None in record:
            raise AssetError(f"--asset_map {path}, line {line}: more fields than the header's {len(header)}")
        image = (record.get("image") or "").strip().replace("\\", "/")
        where = f"--asset_map {path}, line {line}"
        if not image:
            raise AssetError(f"{where}: empty image")
        if image.startswith("/") or "://" in image or ".." in image.split("/"):
            raise AssetError(f"{where}: image {image!r} must be relative to the survey root (no '/', '..' or scheme)")
        if listing.has_glob(image):
            raise AssetError(f"{where}: image {image!r} holds a glob character ('*', '?', '['); name one photo")
        value = (_cell(record.get("asset")), _cell(record.get("zone")))
        if value == (None, None):
            raise AssetError(f"{where}: {image!r} names neither an asset nor a zone")
        target = by_path if "/" in image else by_name
        if image in target and target[image] != value:
            raise AssetError(
                f"{where}: {image!r} is mapped to {value} here and to {target[image]} on line {first_line[image]}"
            )
        target[image] = value
        first_line.setdefault(image, line)
    return by_path, by_name


def resolver(root: str, pattern: str | None, map_path: str | None) -> AssetResolver:
    """The job's resolver, checked at launch (AssetError naming the pattern, or the map's file and line)."""
    by_path, by_name = read_map(map_path) if map_path else ({}, {})
    return AssetResolver(root=root, pattern=pattern or None, by_path=by_path, by_name=by_name)
