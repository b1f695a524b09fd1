"""The package's floor plan: import graph and room sizes stay as the layout promises.

The import graph is read from the source (runtime imports, including those
inside functions; imports only for type checking are not counted).
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

from tests.conftest import ROOT

PACKAGE = ROOT / "stream_monitor"
#: The pure core: no Kafka, no HTTP, no command line, no tooling.
CORE = (
    "decode", "state", "summaries", "evaluate", "judging", "significance", "snapshot", "engine",
    "config", "metric_names", "verdict_progress",
)  # fmt: skip
IO = ("kafka", "sinks", "scaleout", "cli", "tools", "__main__")
MAX_DEPTH = 7
MAX_MODULE_LINES = 600
MAX_CLASS_LINES = 250


def _modules() -> dict[str, Path]:
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path
    return modules


def _runtime_imports(tree: ast.Module) -> set[str]:
    """Every module name imported, except inside ``if TYPE_CHECKING:`` blocks."""
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            node.body = []
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


@functools.cache
def import_graph() -> dict[str, set[str]]:
    """Package module -> the package modules it imports at runtime."""
    modules = _modules()
    return {
        name: {
            other
            for other in _runtime_imports(ast.parse(path.read_text()))
            if other in modules and other != name
        }
        for name, path in modules.items()
    }


def _depth(graph: dict[str, set[str]], name: str, seen: tuple[str, ...] = ()) -> int:
    assert name not in seen, f"import cycle: {' -> '.join((*seen, name))}"
    return 1 + max((_depth(graph, other, (*seen, name)) for other in graph[name]), default=0)


def _area(module: str) -> str:
    return module.split(".")[1] if "." in module else module


def test_no_import_cycles_and_the_longest_chain_is_at_most_seven_modules() -> None:
    graph = import_graph()
    depths = {name: _depth(graph, name) for name in graph}
    deepest = max(depths, key=depths.__getitem__)
    assert depths[deepest] <= MAX_DEPTH, (deepest, depths[deepest])
    assert depths["stream_monitor.cli"] > 3  # the graph was read at all


def test_the_core_imports_no_kafka_sinks_cli_or_tools() -> None:
    graph = import_graph()
    leaks = sorted(
        (name, other)
        for name, imported in graph.items()
        if _area(name) in CORE
        for other in imported
        if _area(other) in IO
    )
    assert leaks == []
    assert any(_area(n) in CORE for n in graph) and any(_area(n) in IO for n in graph)


def test_no_module_over_600_lines_and_no_class_over_250() -> None:
    too_long, too_big = [], []
    for name, path in _modules().items():
        text = path.read_text()
        if len(text.splitlines()) > MAX_MODULE_LINES:
            too_long.append(name)
        classes = [n for n in ast.walk(ast.parse(text)) if isinstance(n, ast.ClassDef)]
        too_big += [
            f"{name}.{node.name}"
            for node in classes
            if (node.end_lineno or node.lineno) - node.lineno + 1 > MAX_CLASS_LINES
        ]
    assert too_long == [] and too_big == []
