"""Every benchmark still imports: a rename in factory/ or cache_proxy/ must not leave
`benchmarks/run.py` broken until someone runs it on a quiet machine."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.mark.parametrize("path", sorted(BENCH.glob("*.py")), ids=lambda p: p.name)
def test_benchmark_imports(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(BENCH))
    spec = importlib.util.spec_from_file_location(f"bench_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)  # module level only: main() runs under __main__
    assert callable(getattr(module, "main", None)), f"{path.name} has no main()"


@pytest.mark.parametrize("path", sorted(BENCH.glob("*.py")), ids=lambda p: p.name)
def test_benchmark_names_exist(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`module.name` in a benchmark, for every imported reprobase module: the name exists
    (the calls run only under __main__, so an import alone would not find a rename)."""
    import ast
    import types

    monkeypatch.syspath_prepend(str(BENCH))
    spec = importlib.util.spec_from_file_location(f"bench_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    ours = {
        name: value
        for name, value in vars(module).items()
        if isinstance(value, types.ModuleType)
        and value.__name__.startswith(("factory", "cache_proxy"))
    }
    missing = [
        f"{node.value.id}.{node.attr} (line {node.lineno})"
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id in ours
        and not hasattr(ours[node.value.id], node.attr)
    ]
    assert missing == []


def test_run_py_runs_every_benchmark() -> None:
    """`benchmarks/run.py` with no argument is "all": a new bench_X.py must be in its list."""
    import ast

    tree = ast.parse((BENCH / "run.py").read_text())
    listed = next(
        ast.literal_eval(node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "ALL" for t in node.targets)
    )
    present = sorted(p.stem.removeprefix("bench_") for p in BENCH.glob("bench_*.py"))
    assert sorted(listed) == present
