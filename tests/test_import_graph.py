"""The layout is the pipeline: factory's subpackages import only stages below them.

Layers, lowest first. A module may import its own subpackage and any lower layer,
never a higher one (that is what "no import points back up" means), and no module
imports itself back through a cycle. `factory/__init__` holds only the version, so
importing it is importing a leaf. `cache_proxy` stands alone: it never imports factory.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

LAYERS = (
    "common",
    "recipes",
    "source",
    "rootfs",
    "image",
    "registry",
    "diffing",
    "attest",  # SBOMs, provenance, signatures, rebuild attestations
    "derive",  # images built FROM ours (Containerfiles through buildah)
    "pipeline",
    "publish",
    "report",
    "nightly",
    "commands",
    "cli",
)


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def _imports(path: Path, modules: set[str]) -> set[str]:
    """Every factory/cache_proxy module `path` imports, at any depth (lazy imports too)."""
    me = _module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            out.add(base)
            # `from pkg import mod` imports the submodule pkg.mod
            out.update(f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in modules)
    # a module's own ancestors are imported before it anyway: not an edge
    ancestors = {".".join(me.split(".")[:i]) for i in range(1, me.count(".") + 1)}
    return {m for m in out if m in modules and m != me and m not in ancestors}


def _graph(package: str) -> dict[str, set[str]]:
    files = sorted((ROOT / package).rglob("*.py"))
    files = [f for f in files if "_data" not in f.parts]
    modules = {_module_name(f) for f in files} | {
        _module_name(f) for f in sorted((ROOT / "cache_proxy").rglob("*.py"))
    }
    return {_module_name(f): _imports(f, modules) for f in files}


def _layer(module: str) -> int | None:
    parts = module.split(".")
    if parts[0] != "factory" or len(parts) == 1:
        return None
    return LAYERS.index(parts[1])


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    found: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                found.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return found


def test_every_factory_module_is_in_a_layer() -> None:
    for module in _graph("factory"):
        if module == "factory":
            continue
        assert module.split(".")[1] in LAYERS, f"{module}: not in a pipeline layer"


def test_the_package_root_imports_nothing() -> None:
    assert _graph("factory")["factory"] == set()


def test_no_import_points_back_up_a_layer() -> None:
    bad = []
    for module, deps in sorted(_graph("factory").items()):
        mine = _layer(module)
        for dep in sorted(deps):
            theirs = _layer(dep)
            if mine is not None and theirs is not None and theirs > mine:
                bad.append(f"{module} -> {dep}")
    assert bad == [], "imports from a later stage:\n" + "\n".join(bad)


def test_no_import_cycles_in_factory() -> None:
    assert _cycles(_graph("factory")) == []


def test_the_proxy_never_imports_the_factory() -> None:
    graph = _graph("cache_proxy")
    bad = [f"{m} -> {d}" for m, deps in graph.items() for d in deps if d.startswith("factory")]
    assert bad == []


def test_the_checker_sees_a_cycle_and_a_back_import() -> None:
    # the rule must be able to fail
    assert _cycles({"a": {"b"}, "b": {"a"}}) == [["a", "b", "a"]]
    assert _layer("factory.image.oci") is not None
    assert _layer("factory.common.errors") < _layer("factory.image.oci")  # type: ignore[operator]
