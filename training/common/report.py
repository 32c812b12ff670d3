"""What both training jobs write beside the model: metrics.json, model_card.md, figures, and the
pieces of a model card they share (number format, markdown tables, configuration, versions)."""

from __future__ import annotations

import json
import platform
from collections.abc import Mapping, Sequence

import yaml

from corrosion.core import io_utils

METRICS_FILE = "metrics.json"
MODEL_CARD_FILE = "model_card.md"


def fmt(value) -> str:
    """A metric as a model card prints it: three decimals, ``n/a`` where there is none."""
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    """A markdown table, one line per row; cells are written as ``fmt`` writes them."""
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---|" * (len(header) - 1)]
    return lines + ["| " + " | ".join(fmt(cell) for cell in row) + " |" for row in rows]


def versions() -> dict[str, str]:
    import keras
    import numpy
    import tensorflow as tf

    return {
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": numpy.__version__,
    }


def versions_section(found: Mapping[str, str]) -> list[str]:
    return ["## Versions", ", ".join(f"{k} {v}" for k, v in found.items()), ""]


def configuration_section(config: dict, source: str | None = None) -> list[str]:
    """The resolved configuration as YAML, so a card says exactly how its model was trained."""
    return [
        "## Configuration",
        *([f"From `{source}`, resolved:"] if source else []),
        "```yaml",
        yaml.safe_dump(plain(config), sort_keys=False).rstrip(),
        "```",
        "",
    ]


def plain(value):
    """Tuples as lists, all the way down: what YAML and JSON write without tags."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def write_outputs(model_dir: str, metrics: dict, card: str, figures: Mapping[str, bytes]) -> None:
    """metrics.json, model_card.md and the figures (paths relative to ``model_dir``)."""
    io_utils.write_text(io_utils.join(model_dir, METRICS_FILE), json.dumps(metrics, indent=2) + "\n")
    for name, png in figures.items():
        io_utils.write_bytes(io_utils.join(model_dir, name), png)
    io_utils.write_text(io_utils.join(model_dir, MODEL_CARD_FILE), card)
