"""Typed configuration: YAML files in ``configs/`` read into frozen dataclasses, the one way in.

Unknown keys and wrong types are errors naming the file and the key, so a typo in a config
never silently falls back to a default. Every job takes ``--config FILE`` and any number of
``--set dotted.key=value`` (``add_arguments`` / ``from_arguments``); a job's own shortcut flags
(``--epochs``) are dotted keys too, so nested settings need no rewritten YAML file.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"


class ConfigError(ValueError):
    """A configuration file is missing, malformed or has a wrong key or value."""


def config_path(name: str) -> Path:
    """Path of a file shipped in ``configs/`` (installed beside the packages by setup.py)."""
    return CONFIG_DIR / name


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping from a local or ``gs://`` path."""
    from corrosion.core import io_utils

    try:
        text = io_utils.read_text(str(path))
    except FileNotFoundError as exc:
        raise ConfigError(f"config file {path} does not exist") from exc
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level")
    return data


def load_config(cls: type[T], path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> T:
    """Build dataclass ``cls`` from the YAML at ``path`` (defaults when None), then ``overrides``.

    Override keys are dotted paths into the mapping (``model.input_size``); None values are ignored
    (an unset command-line flag).
    """
    data = read_yaml(path) if path is not None else {}
    for key, value in (overrides or {}).items():
        if value is not None:
            set_dotted(data, key, value)
    return from_dict(cls, data, where=str(path or cls.__name__))


def set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    """``data["a"]["b"] = value`` for key ``a.b``, creating the inner mappings a YAML file left out."""
    *parents, last = key.split(".")
    node = data
    for i, part in enumerate(parents):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"--set {key}: {'.'.join(parents[: i + 1])} is {child!r}, not a mapping")
        node = child
    node[last] = value


def parse_set(items: list[str] | None) -> dict[str, Any]:
    """``["a.b=3", "c=x"]`` -> ``{"a.b": 3, "c": "x"}``; each value is read as YAML (``3``, ``true``, ``[1, 2]``)."""
    overrides = {}
    for item in items or ():
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. --set model.input_size=128")
        try:
            overrides[key.strip()] = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"--set {item!r}: the value is not valid YAML ({exc})") from exc
    return overrides


def add_arguments(
    parser: argparse.ArgumentParser, default_file: str, shortcuts: dict[str, tuple[str, type, str]]
) -> None:
    """``--config``, ``--set`` and the job's shortcut flags: ``{flag: (dotted key, type, help)}``."""
    parser.add_argument("--config", default=None, help=f"YAML config (default configs/{default_file})")
    parser.add_argument(
        "--set",
        dest="set_items",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override any setting by its dotted key, e.g. --set model.input_size=128 (repeatable)",
    )
    for flag, (key, kind, help_text) in shortcuts.items():
        names = [f"--{name}" for name in flag.split("|")]
        parser.add_argument(
            *names, dest=flag.split("|")[0], type=kind, default=None, help=f"{help_text} (= --set {key})"
        )


def from_arguments(
    cls: type[T], args: argparse.Namespace, default_file: str, shortcuts: dict[str, tuple[str, type, str]]
) -> T:
    """The config the command line asks for: the file, then the shortcut flags, then ``--set`` (last wins)."""
    overrides = {key: getattr(args, flag.split("|")[0]) for flag, (key, _, _) in shortcuts.items()}
    overrides.update(parse_set(args.set_items))
    return load_config(cls, args.config or config_path(default_file), overrides)


def from_dict(cls: type[T], data: dict[str, Any], where: str = "") -> T:
    """Recursively build a dataclass from a mapping, checking keys and basic types."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping for {cls.__name__}, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    renamed = {k: v for k, v in getattr(cls, "RENAMED", {}).items() if k in unknown}
    if renamed:
        moves = ", ".join(f"{old} is now {new}" for old, new in renamed.items())
        raise ConfigError(f"{where}: renamed key(s) for {cls.__name__}: {moves}")
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown} for {cls.__name__}; known: {sorted(fields)}")
    hints = typing.get_type_hints(cls)
    kwargs = {name: _coerce(hints[name], value, f"{where}.{name}") for name, value in data.items()}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from exc


def _coerce(hint: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, where)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(arg, value, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(f"{where}: {value!r} matches none of {args}: {errors}")
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        item = args[0] if args else Any
        return tuple(_coerce(item, v, f"{where}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        key_t, val_t = args if args else (Any, Any)
        return {_coerce(key_t, k, where): _coerce(val_t, v, f"{where}.{k}") for k, v in value.items()}
    if hint is Any:
        return value
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint in (int, float, str, bool) and not (
        isinstance(value, hint) and not (hint is int and isinstance(value, bool))
    ):
        raise ConfigError(f"{where}: expected {hint.__name__}, got {value!r}")
    return value
