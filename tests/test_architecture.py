"""The code's shape, checked: every module imports on its own, no import cycle, short functions,
and plain validation of a raw folder needs no TensorFlow."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("corrosion", "pipelines", "training")
MAX_FUNCTION_LINES = 60


def modules() -> dict[str, Path]:
    """Dotted name -> file of every module of the three packages."""
    found = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            parts = path.relative_to(REPO).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imported(path: Path, name: str, known: set[str]) -> set[str]:
    """The project modules ``path`` imports anywhere in it (function-level imports count: they cycle too)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else [])
                )
            targets = [f"{base}.{a.name}" for a in node.names] + [base]
        else:
            continue
        found |= {t for t in targets if t in known and t != name}
    return found


def import_graph() -> dict[str, set[str]]:
    found = modules()
    return {name: imported(path, name, set(found)) for name, path in found.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path a -> b -> ... -> a, or None (packages importing their own modules excepted)."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if node.startswith(nxt + "."):  # a module importing its own package's __init__
                continue
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_import_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_cycle_check_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_function_level_imports_count(tmp_path):
    path = tmp_path / "m.py"
    path.write_text("def f():\n    from corrosion.core import paths\n    import corrosion.data.layout\n")
    known = {"corrosion.core", "corrosion.core.paths", "corrosion.data.layout"}
    assert imported(path, "corrosion.x", known) == {"corrosion.core", "corrosion.core.paths", "corrosion.data.layout"}


def test_library_does_not_import_the_jobs():
    """corrosion/ is the library: it never imports pipelines/ or training/, and pipelines never import training."""
    for name, deps in import_graph().items():
        if name.startswith("corrosion"):
            assert not {d for d in deps if d.startswith(("pipelines", "training"))}, name
        if name.startswith("pipelines"):
            assert not {d for d in deps if d.startswith("training")}, name


def test_every_module_imports_in_a_fresh_interpreter():
    names = sorted(modules())
    code = "import importlib, sys\nfor name in sys.argv[1:]:\n    importlib.import_module(name)\n"
    done = subprocess.run([sys.executable, "-c", code, *names], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]


def long_functions() -> list[str]:
    found = []
    for name, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    found.append(f"{name}.{node.name}: {lines} lines")
    return found


def test_no_function_over_sixty_lines():
    assert long_functions() == []


def test_plain_validation_of_a_raw_folder_imports_no_tensorflow(tmp_path):
    """Discovery and validation are plain Python: checking a folder must not pay TensorFlow's start-up."""
    code = """
import sys
from corrosion.testing import synthetic
from corrosion.data import discovery, validate
from corrosion.core.labels import load_labels
root = sys.argv[1]
synthetic.generate_survey(root, n_rust=2, n_clean=1, seed=0)
labels = load_labels()
found = discovery.scan(root, labels)
records = [validate.to_record(i, open(i.image_path, 'rb').read(), labels) for i in found.images]
assert len(records) == 3, records
assert 'tensorflow' not in sys.modules, 'tensorflow was imported'
print(len(records))
"""
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path)], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "3"


@pytest.mark.parametrize("package", PACKAGES)
def test_every_package_has_a_docstring(package):
    for name, path in modules().items():
        if name.startswith(package) and path.read_text().strip():
            assert ast.get_docstring(ast.parse(path.read_text())), f"{name} says nothing about what it holds"
