"""The import rules, read from the source: instrumentors -> core and never back (the demo, which runs on an
instrumentor, is outside the core), and no module-level import cycles anywhere in the `tracekit` namespace."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# import name -> folder, as setup.py maps them
FOLDERS = {"tracekit": "tracekit", "tracekit.collector": "collector", "tracekit.instrumentors": "instrumentors",
           "tracekit.tui": "tui", "tracekit.dashboards": "dashboards", "tracekit.demo": "demo"}


def _modules() -> dict[str, Path]:
    found = {}
    for package, folder in FOLDERS.items():
        for path in (ROOT / folder).rglob("*.py"):
            parts = [part for part in path.relative_to(ROOT / folder).with_suffix("").parts if part != "__init__"]
            found[".".join([package, *parts])] = path
    return found


def _imports(path: Path, *, top_level_only: bool) -> list[tuple[int, str]]:
    """(line, imported name) for every absolute import in the file; `from m import x` also names `m.x`."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found = []
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found += [(node.lineno, node.module)] + [(node.lineno, f"{node.module}.{a.name}") for a in node.names]
        elif isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
    return found


def test_the_core_imports_no_instrumentor_and_not_the_demo() -> None:
    """Only tracekit/commands, which wires the parts together for the CLI, may import them."""
    core = {name: path for name, path in _modules().items()
            if path.is_relative_to(ROOT / "tracekit") and not path.is_relative_to(ROOT / "tracekit" / "commands")}
    offending = [f"{path.relative_to(ROOT)}:{line} imports {imported}"
                 for path in core.values() for line, imported in _imports(path, top_level_only=False)
                 if imported.split(".")[:2] in (["tracekit", "instrumentors"], ["tracekit", "demo"])]
    assert offending == []


def test_no_module_level_import_cycles() -> None:
    modules = _modules()
    graph = {name: {target for _, target in _imports(path, top_level_only=True)
                    if target in modules and target != name}
             for name, path in modules.items()}
    done: set[str] = set()

    def cycle_from(start: str) -> list[str] | None:
        """Depth-first from `start`; the first cycle met, as the chain of modules."""
        stack, on_path = [(start, iter(sorted(graph[start])))], [start]
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                stack.pop()
                on_path.pop()
                done.add(node)
            elif child in on_path:
                return on_path[on_path.index(child):] + [child]
            elif child not in done:
                stack.append((child, iter(sorted(graph[child]))))
                on_path.append(child)
        return None

    cycles = [cycle for name in sorted(modules) if name not in done and (cycle := cycle_from(name))]
    assert cycles == []
