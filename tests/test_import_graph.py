"""Dependencies run one way: no import cycle among the package's modules.

The graph is read from the source with ``ast`` (nothing is imported): an edge for every import of a
module of the package made when a module is imported, i.e. at module level and outside
``if TYPE_CHECKING:``. That graph must be acyclic.

Imports inside functions run later and cannot deadlock an import, but one that reaches *up* a layer
is a delegation (``Topology.compile()`` calls the compiler) and must be a documented one: every
function-level import that would close a cycle is listed in ``DELEGATIONS`` below.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "aegisfwd"

# Function-level imports that reach up a layer on purpose: (importer, imported).
DELEGATIONS = {
    # Topology's documented convenience methods: from_dict / to_dict and compile.
    ("aegisfwd.topology", "aegisfwd._loader"),
    ("aegisfwd.topology", "aegisfwd.compiled"),
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.Module, *, deferred: bool) -> Iterator[ast.Import | ast.ImportFrom]:
    """Module-level imports (``deferred=False``) or those inside functions (``deferred=True``)."""

    def walk(nodes: list[ast.stmt], in_function: bool) -> Iterator[ast.Import | ast.ImportFrom]:
        for node in nodes:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                if in_function == deferred:
                    yield node
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                yield from walk(node.body, True)
            elif isinstance(node, ast.If) and _is_type_checking(node.test):
                continue  # for the type checker only
            else:
                for field in ("body", "orelse", "finalbody", "handlers"):
                    yield from walk(
                        [n for n in getattr(node, field, []) if isinstance(n, (ast.stmt, ast.excepthandler))],
                        in_function,
                    )

    yield from walk(list(tree.body), False)


def _targets(node: ast.Import | ast.ImportFrom, importer: str, is_package: bool, known: set[str]) -> set[str]:
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names if alias.name in known}
    if node.level:
        base = importer.split(".") if is_package else importer.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        source = ".".join(base + ([node.module] if node.module else []))
    else:
        source = node.module or ""
    out = set()
    for alias in node.names:
        sub = f"{source}.{alias.name}"
        out.add(sub if sub in known else source)
    return {m for m in out if m in known}


def _graph(*, deferred: bool) -> dict[str, set[str]]:
    modules = _modules()
    # The compiled modules (_core, _fast) are leaves: known by their stubs, importing nothing of ours.
    known = set(modules) | {_module_name(p) for p in PACKAGE.rglob("*.pyi")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        edges: set[str] = set()
        for node in _imports(tree, deferred=deferred):
            edges |= _targets(node, name, path.name == "__init__.py", known)
        graph[name] = edges - {name}
    return graph


def _reaches(graph: dict[str, set[str]], start: str, goal: str) -> bool:
    seen, stack = {start}, [start]
    while stack:
        node = stack.pop()
        if node == goal:
            return True
        for nxt in graph.get(node, ()):
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return False


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_graph_sees_the_package() -> None:
    graph = _graph(deferred=False)
    assert "aegisfwd.compiled._compiler" in graph and "aegisfwd._loader.checker" in graph
    assert "aegisfwd.compiled._format" in graph["aegisfwd.compiled._verify"]
    assert "aegisfwd.topology" in graph["aegisfwd._loader.checker"]


def test_no_import_cycle_at_import_time() -> None:
    assert _cycles(_graph(deferred=False)) == []


def test_deferred_imports_that_reach_back_are_documented_delegations() -> None:
    eager = _graph(deferred=False)
    closing = sorted(
        (importer, imported)
        for importer, targets in _graph(deferred=True).items()
        for imported in targets
        if _reaches(eager, imported, importer)
    )
    undocumented = [edge for edge in closing if edge not in DELEGATIONS]
    assert undocumented == [], "a function-level import closes a cycle; restructure or document it"


@pytest.mark.parametrize("edge", sorted(DELEGATIONS))
def test_each_delegation_is_still_there(edge: tuple[str, str]) -> None:
    importer, imported = edge
    assert imported in _graph(deferred=True)[importer]
