"""cache_proxy's modules form a layered graph: no import cycle, no re-export hub, no factory.

Every import counts, wherever it is written: at module level, inside a function (a
"lazy" import only hides a cycle until the day it runs first) and under
``TYPE_CHECKING`` (a cycle for the type checker is one for the reader too). An
import of ``cache_proxy.X`` or ``from cache_proxy import X`` with X a submodule is
an edge to X; ``from cache_proxy import name`` for anything else is an edge to the
package's ``__init__``, which must therefore import nothing of its own package.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "cache_proxy"


def _module_name(path: Path, base: Path) -> str:
    parts = path.relative_to(base).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def modules(root: Path = ROOT / PACKAGE) -> dict[str, Path]:
    """Every module of the package by dotted name (subpackages included)."""
    return {_module_name(p, root.parent): p for p in sorted(root.rglob("*.py"))}


def _resolve_relative(module: str, is_package: bool, level: int, name: str | None) -> str:
    base = module.split(".")
    if not is_package:
        base = base[:-1]
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join([*base, name] if name else base)


def imported(module: str, path: Path, known: set[str]) -> set[str]:
    """The package's modules that ``module`` imports (any import statement, anywhere)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    targets: set[str] = set()

    def add(name: str) -> None:
        # "import cache_proxy.a.b" loads cache_proxy, cache_proxy.a and cache_proxy.a.b;
        # the edge that matters is to the deepest module that exists.
        while name and name not in known:
            name = name.rpartition(".")[0]
        if name:
            targets.add(name)

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == PACKAGE or alias.name.startswith(PACKAGE + "."):
                    add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                source = _resolve_relative(module, is_package, node.level, node.module)
            else:
                source = node.module or ""
            if source != PACKAGE and not source.startswith(PACKAGE + "."):
                continue
            for alias in node.names:
                sub = f"{source}.{alias.name}"
                add(sub if sub in known else source)
    targets.discard(module)  # "from cache_proxy import workers" inside workers: no edge
    return targets


def import_graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {name: imported(name, path, known) for name, path in mods.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected component of more than one module (Tarjan), each as
    one cycle through it, so a failure names the modules to untangle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(node: str) -> None:
        nonlocal counter
        index[node] = low[node] = counter
        counter += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(_cycle_in(graph, component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _cycle_in(graph: dict[str, set[str]], component: set[str]) -> list[str]:
    """One cycle inside a strongly connected component, from its first module back to it."""
    start = min(component)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        nxt_frontier = []
        for node in frontier:
            for nxt in sorted(graph[node] & component):
                if nxt == start:
                    return [*paths[node], start]
                if nxt not in paths:
                    paths[nxt] = [*paths[node], nxt]
                    nxt_frontier.append(nxt)
        frontier = nxt_frontier
    raise AssertionError(f"no cycle in {sorted(component)}")  # pragma: no cover


def test_no_import_cycle_in_cache_proxy() -> None:
    found = cycles(import_graph())
    assert not found, "import cycles in cache_proxy:\n" + "\n".join(" -> ".join(c) for c in found)


def test_package_init_imports_nothing_of_its_own() -> None:
    """``from cache_proxy import name`` must never pull half the package in (a hub)."""
    graph = import_graph()
    hub = {m for m in graph if m == PACKAGE or m.endswith(".__init__")}
    for name in hub:
        assert not graph[name], f"{name} imports {sorted(graph[name])}: keep __init__ empty"


def test_cache_proxy_never_imports_factory() -> None:
    for name, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                found = [node.module or ""]
            else:
                continue
            for imported_name in found:
                assert imported_name.split(".")[0] != "factory", f"{name} imports {imported_name}"


# ------------------------------------------------------ the checker checks itself
def test_the_graph_sees_every_kind_of_import(tmp_path: Path) -> None:
    pkg = tmp_path / PACKAGE
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from cache_proxy import b\n")
    (pkg / "b.py").write_text("def f():\n    from . import c\n")
    (pkg / "c.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import cache_proxy.sub.d\n"
    )
    (pkg / "sub" / "d.py").write_text("from ..a import something\nfrom .. import __version__\n")
    names = modules(pkg)
    known = set(names)
    graph = {n: imported(n, p, known) for n, p in names.items()}
    assert graph["cache_proxy.a"] == {"cache_proxy.b"}
    assert graph["cache_proxy.b"] == {"cache_proxy.c"}
    assert graph["cache_proxy.c"] == {"cache_proxy.sub.d"}
    assert graph["cache_proxy.sub.d"] == {"cache_proxy.a", "cache_proxy"}
    assert cycles(graph) == [["cache_proxy.a", "cache_proxy.b", "cache_proxy.c",
                              "cache_proxy.sub.d", "cache_proxy.a"]]  # fmt: skip
