import argparse
from dataclasses import dataclass, field
from typing import ClassVar

import pytest

from corrosion.core.config import ConfigError, add_arguments, from_arguments, load_config, parse_set
from corrosion.core.labels import UnknownLabelError, load_labels


@dataclass(frozen=True)
class Inner:
    size: int = 3


@dataclass(frozen=True)
class Outer:
    name: str = "x"
    ratio: float = 0.5
    inner: Inner = field(default_factory=Inner)
    items: tuple[str, ...] = ()


def test_yaml_into_nested_dataclass(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("name: y\nratio: 1\ninner: {size: 7}\nitems: [a, b]\n")
    cfg = load_config(Outer, path)
    assert cfg == Outer("y", 1.0, Inner(7), ("a", "b"))


def test_unknown_key_is_an_error_naming_file_and_key(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("inner: {sise: 7}\n")
    with pytest.raises(ConfigError, match=r"c.yaml.inner: unknown key\(s\) \['sise'\]"):
        load_config(Outer, path)


def test_wrong_type_is_an_error(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("ratio: fast\n")
    with pytest.raises(ConfigError, match="ratio: expected float"):
        load_config(Outer, path)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(Outer, tmp_path / "absent.yaml")


def test_label_aliases_from_configs():
    labels = load_labels()
    assert [labels.image_class(n) for n in ("rust", "corrosion", "CORROSION", "norust", "NOCORROSION")] == [
        "rust",
        "rust",
        "rust",
        "no_rust",
        "no_rust",
    ]
    assert labels.box_class("corrosion") == "rust" and labels.box_label_id("rust") == 1
    assert labels.image_label_id("rust") == 1 and labels.image_label_id("no_rust") == 0
    with pytest.raises(UnknownLabelError, match="'scratch'"):
        labels.box_class("scratch")
    assert "id: 1\n  name: 'rust'" in labels.label_map_pbtxt()


@dataclass(frozen=True)
class Renamed:
    RENAMED: ClassVar[dict[str, str]] = {"frozen_epochs": "head_epochs"}
    head_epochs: int = 1


def test_dotted_overrides_reach_nested_keys_and_keep_the_rest(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("name: y\ninner: {size: 7}\n")
    assert load_config(Outer, path, {"inner.size": 9, "ratio": None}) == Outer("y", 0.5, Inner(9))
    # a nested mapping the file left out is created
    assert load_config(Outer, None, {"inner.size": 2}) == Outer(inner=Inner(2))


def test_dotted_override_into_a_wrong_key_or_a_scalar_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['sise'\]"):
        load_config(Outer, None, {"inner.sise": 2})
    with pytest.raises(ConfigError, match="name is 'x', not a mapping"):
        load_config(Outer, None, {"name": "x", "name.size": 2})


def test_set_values_are_read_as_yaml():
    assert parse_set(["inner.size=12", "name=abc", "items=[a, b]", "ratio=0.25", "flag=true", "none=null"]) == {
        "inner.size": 12,
        "name": "abc",
        "items": ["a", "b"],
        "ratio": 0.25,
        "flag": True,
        "none": None,
    }
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        parse_set(["inner.size"])


def test_command_line_file_then_shortcuts_then_set(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("name: y\ninner: {size: 7}\n")
    shortcuts = {"size|old_size": ("inner.size", int, "the size"), "label": ("name", str, "the name")}
    parser = argparse.ArgumentParser()
    add_arguments(parser, "c.yaml", shortcuts)
    args = parser.parse_args(["--config", str(path), "--old_size", "8", "--set", "ratio=2", "--set", "name=z"])
    assert from_arguments(Outer, args, "c.yaml", shortcuts) == Outer("z", 2.0, Inner(8))
    args = parser.parse_args(["--config", str(path), "--size", "8", "--set", "inner.size=5"])
    assert from_arguments(Outer, args, "c.yaml", shortcuts).inner.size == 5  # --set wins


def test_a_renamed_key_says_its_new_name(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("frozen_epochs: 3\n")
    with pytest.raises(ConfigError, match="frozen_epochs is now head_epochs"):
        load_config(Renamed, path)
