from dataclasses import dataclass, field

import pytest

from corrosion.config import ConfigError, load_config
from corrosion.labels import UnknownLabelError, load_labels


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
