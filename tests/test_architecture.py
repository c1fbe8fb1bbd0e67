"""The package's layers (docs/design.md): no upward import between them, no import cycle.

Every ``layerscope`` import is read from the source (module level and inside functions;
imports under ``if TYPE_CHECKING:`` are types only and do not count).
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import layerscope

ROOT = Path(layerscope.__file__).parent

# The rooms of the house, bottom up: a module may import from its own layer or below.
LAYERS = {
    "_version": 0,
    "_mkl": 0,
    "functional": 0,
    "adapters": 1,
    "matrices": 1,
    "spectrum": 1,
    "fast_traps": 1,
    "metrics": 1,
    "results": 1,
    "duplicates": 1,
    "options": 2,
    "analysis": 2,
    "intra": 2,
    "compare_result": 2,
    "diff": 2,
    "gate": 2,
    "scan": 3,
    "compare": 3,
    "probes": 4,
    "track": 4,
    "survey": 4,
    "control": 4,
    "report": 5,
    "cli": 6,
    "__main__": 6,
}
# The package root is the public API: it may import from any layer below the renderers.
API_LAYER = 4


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(("layerscope", *parts)).removesuffix(".__init__")


def _type_only(tree: ast.AST) -> set[int]:
    out: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            out |= {id(n) for n in ast.walk(node)}
    return out


def _imports(path: Path, modules: set[str]) -> set[str]:
    """The layerscope modules ``path`` imports at run time."""
    tree = ast.parse(path.read_text())
    skip = _type_only(tree)
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("layerscope")}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("layerscope"):
            module = str(node.module)
            subs = {f"{module}.{a.name}" for a in node.names} & modules
            found |= subs or {module}
    return found


def _graph() -> dict[str, set[str]]:
    paths = sorted(ROOT.rglob("*.py"))
    modules = {_module_name(p) for p in paths}
    return {_module_name(p): _imports(p, modules) for p in paths}


def _unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_every_package_has_a_layer() -> None:
    units = {_unit(m) for m in _graph()} - {"__init__"}
    assert units <= set(LAYERS), f"add {sorted(units - set(LAYERS))} to LAYERS (docs/design.md)"


def test_no_upward_import_between_layers() -> None:
    upward = []
    for module, targets in _graph().items():
        unit = _unit(module)
        level = API_LAYER if unit == "__init__" else LAYERS.get(unit, 0)
        for target in targets:
            other = _unit(target)
            if other not in (unit, "__init__") and LAYERS.get(other, 0) > level:
                upward.append(f"{module} -> {target}")
            if other == "__init__" and target == "layerscope" and unit != "__init__":
                upward.append(f"{module} -> layerscope (import the submodule instead)")
    assert upward == []


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle among the modules, or None (iterative depth-first search)."""
    state: dict[str, int] = defaultdict(int)  # 0 new, 1 on the stack, 2 done
    for start, targets in graph.items():
        if state[start]:
            continue
        stack = [(start, iter(sorted(targets)))]
        path = [start]
        state[start] = 1
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                state[node] = 2
                stack.pop()
                path.pop()
            elif child in graph and state[child] == 1:
                return [*path[path.index(child) :], child]
            elif child in graph and state[child] == 0:
                state[child] = 1
                stack.append((child, iter(sorted(graph[child]))))
                path.append(child)
    return None


def test_no_import_cycle() -> None:
    assert _cycle(_graph()) is None


def test_the_cycle_finder_finds_cycles() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None
