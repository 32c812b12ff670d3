"""The project's classes and the mapping from each source's label names onto them."""

from __future__ import annotations

from dataclasses import dataclass, field

from corrosion.core.config import config_path, load_config

RUST = "rust"
NO_RUST = "no_rust"


class UnknownLabelError(ValueError):
    """A source label name that the label configuration does not map."""


@dataclass(frozen=True)
class LabelConfig:
    image_classes: tuple[str, ...] = (NO_RUST, RUST)
    box_classes: tuple[str, ...] = (RUST,)
    image_aliases: dict[str, str] = field(default_factory=dict)
    box_aliases: dict[str, str] = field(default_factory=dict)
    condition_states: dict[str, str] = field(default_factory=dict)  # source box label -> state kept in the record

    def __post_init__(self) -> None:
        for alias, target in self.image_aliases.items():
            if target not in self.image_classes:
                raise ValueError(f"image alias {alias!r} maps to unknown class {target!r}")
        for alias, target in self.box_aliases.items():
            if target not in self.box_classes:
                raise ValueError(f"box alias {alias!r} maps to unknown class {target!r}")

    def image_class(self, source_name: str) -> str:
        """Project image class for a source's folder or label name."""
        name = source_name.strip()
        if name in self.image_aliases:
            return self.image_aliases[name]
        if name in self.image_classes:
            return name
        raise UnknownLabelError(
            f"unknown image label {source_name!r}; known: {sorted(set(self.image_aliases) | set(self.image_classes))}"
            " (add an alias to configs/labels.yaml)"
        )

    def box_class(self, source_name: str) -> str:
        name = source_name.strip()
        if name in self.box_aliases:
            return self.box_aliases[name]
        if name in self.box_classes:
            return name
        raise UnknownLabelError(
            f"unknown box label {source_name!r}; known: {sorted(set(self.box_aliases) | set(self.box_classes))}"
            " (add an alias to configs/labels.yaml)"
        )

    def condition_state(self, source_name: str) -> str:
        """The condition state a source's box label carries (CCSC's Fair / Poor / Severe), "" when none."""
        return self.condition_states.get(source_name.strip(), "")

    def image_label_id(self, image_class: str) -> int:
        return self.image_classes.index(image_class)

    def box_label_id(self, box_class: str) -> int:
        """1-based id, as the TF Object Detection API reserves 0 for background."""
        return self.box_classes.index(box_class) + 1

    def is_image_label(self, name: str) -> bool:
        return name.strip() in self.image_aliases or name.strip() in self.image_classes

    def label_map_pbtxt(self) -> str:
        """The box classes in the TF Object Detection API's label_map.pbtxt format."""
        items = [f"item {{\n  id: {self.box_label_id(c)}\n  name: '{c}'\n}}\n" for c in self.box_classes]
        return "".join(items)


def load_labels(path: str | None = None) -> LabelConfig:
    return load_config(LabelConfig, path or config_path("labels.yaml"))
