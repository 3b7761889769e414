"""No import cycles in lensml, including imports inside functions (house style)."""

from __future__ import annotations

import ast
from pathlib import Path

import lensml

PACKAGE = Path(lensml.__file__).resolve().parent


def import_graph() -> dict[str, set[str]]:
    """Module -> the lensml modules it imports (module level or inside functions), by ast."""
    mods = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        mods[name] = path
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for name, path in mods.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            else:
                continue
            graph[name] |= {t for t in targets if t in mods and t != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_no_module_import_cycles():
    assert cycles(import_graph()) == []


def test_sim_and_sources_do_not_import_each_other_both_ways():
    """Sources come before lensing: lensml.sources imports nothing from lensml.sim (shared types sit in
    lensml.source_grid, numerics in lensml.numerics)."""
    graph = import_graph()
    from_sources = {t for m, ts in graph.items() if m.startswith("lensml.sources") for t in ts}
    assert not {t for t in from_sources if t.startswith("lensml.sim")}


def test_the_cycle_finder_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
