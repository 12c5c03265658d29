"""The house rules, checked on the source: data flows one way, no import circle, small modules and functions.

Every import of a crmnet module counts, including the lazy ones inside functions, because a lazy import
is still a dependency. The stage order is the one docs/architecture.md describes.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "crmnet"

# Each package (or top-level module) may import only from its own layer or an earlier one.
LAYERS = [
    {"errors", "config", "fsutil", "version", "progress", "tables", "plot"},
    {"data"},
    {"models"},
    {"zoo"},
    {"evaluation"},  # prediction and metrics: training validates with them
    {"training"},
    {"interpret"},
    {"design"},
    {"workflows", "serve"},
    {"cli"},
]
LAYER = {name: k for k, names in enumerate(LAYERS) for name in names}
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 80


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(SRC.rglob("*.py")):
        parts = path.relative_to(SRC.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _imports(path: Path, name: str) -> set[str]:
    """crmnet modules imported anywhere in ``path`` (``from a import b`` counts ``a.b`` when it is a module)."""
    modules = _modules()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("crmnet"))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            if not base.startswith("crmnet"):
                continue
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base)
    return found


def _stage(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def test_data_flows_one_way():
    wrong = []
    for name, path in _modules().items():
        here = _stage(name)
        if here is None or here == "__main__":
            continue
        for target in _imports(path, name):
            there = _stage(target)
            if there is None or there not in LAYER or here not in LAYER:
                continue
            if LAYER[there] > LAYER[here]:
                wrong.append(f"{name} imports {target}")
    assert not wrong, "imports against the stage order:\n" + "\n".join(wrong)


def test_no_import_circle():
    modules = _modules()
    graph = {name: {t for t in _imports(path, name) if t in modules and t != name and t != "crmnet"}
             for name, path in modules.items() if name != "crmnet"}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = 2
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            pytest.fail("import circle: " + " -> ".join(cycle))


def test_modules_and_functions_stay_small():
    big_modules, big_functions = [], []
    for name, path in _modules().items():
        text = path.read_text(encoding="utf-8")
        if len(text.splitlines()) > MAX_MODULE_LINES:
            big_modules.append(f"{name}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                body = node.body[1:] if ast.get_docstring(node) else node.body
                if not body:
                    continue
                lines = body[-1].end_lineno - body[0].lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    big_functions.append(f"{name}.{node.name}: {lines} lines")
    assert not big_modules, f"modules over {MAX_MODULE_LINES} lines: {big_modules}"
    assert not big_functions, f"functions over {MAX_FUNCTION_LINES} lines of code: {big_functions}"


def test_every_public_name_resolves():
    import crmnet

    missing = [name for name in crmnet.__all__ if not hasattr(crmnet, name)]
    assert not missing, f"crmnet.__all__ names that do not import: {missing}"
