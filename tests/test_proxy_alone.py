"""The cache proxy stands alone: it imports, answers --help and serves /healthz with the
`factory` package made unimportable, and it has its own console script."""

from __future__ import annotations

import ast
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from cache_proxy.cli import main as proxy_main
from factory.cli import main as reprobase_main

ROOT = Path(__file__).resolve().parents[1]
# Prepended to every child: any import of factory or factory.* fails.
BLOCKER = """
import sys
class _NoFactory:
    def find_spec(self, name, path=None, target=None):
        if name == "factory" or name.startswith("factory."):
            raise ModuleNotFoundError(f"blocked by the test: {name}", name=name)
        return None
sys.meta_path.insert(0, _NoFactory())
import runpy
sys.argv = ["python -m cache_proxy", *sys.argv[1:]]
runpy.run_module("cache_proxy", run_name="__main__", alter_sys=True)
"""


def without_factory(*args: str, **kw: object) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(  # type: ignore[call-overload, no-any-return]
        [sys.executable, "-c", BLOCKER, *args], env=env, text=True, cwd=ROOT, **kw
    )


def test_no_module_of_cache_proxy_imports_factory() -> None:
    for path in sorted((ROOT / "cache_proxy").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            for name in names:
                assert name.split(".")[0] != "factory", f"{path.name} imports {name}"


def test_help_and_every_module_without_factory() -> None:
    proc = without_factory("--help", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "--cache-dir" in out and "blocked" not in err
    code = (
        "import importlib, pkgutil, sys, cache_proxy\n"
        "for m in pkgutil.iter_modules(cache_proxy.__path__):\n"
        "    if m.name != '__main__': importlib.import_module('cache_proxy.' + m.name)\n"
        "assert not [n for n in sys.modules if n.split('.')[0] == 'factory']\n"
    )
    blocker_only = BLOCKER.split("import runpy")[0]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-c", blocker_only + code], env=env, check=True, timeout=60)


def test_serves_healthz_without_factory(tmp_path: Path) -> None:
    port_file = tmp_path / "port"
    proc = without_factory(
        "--listen", "127.0.0.1:0", "--cache-dir", str(tmp_path / "cache"),
        "--port-file", str(port_file), "--access-log", "none", "--workers", "1",
        stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        answer = None
        while answer is None:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "the proxy never answered /healthz"
            if port_file.exists():
                url = f"http://{port_file.read_text().strip()}/healthz"
                with urllib.request.urlopen(url, timeout=5) as resp:
                    answer = (resp.status, resp.read())
            else:
                time.sleep(0.02)  # polling the port file, not waiting for a guess
        assert answer == (200, b"ok")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)  # also closes the stderr pipe
    assert proc.returncode in (0, -signal.SIGTERM, 130)


def test_one_line_errors_alone_and_under_reprobase(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for main in (proxy_main, lambda argv: reprobase_main(["proxy", *argv])):
        assert main(["--listen", "127.0.0.1:nope", "--cache-dir", str(tmp_path)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: ") and "--listen" in err[0]
    with pytest.raises(SystemExit) as exc:
        proxy_main(["--workers", "x"])
    assert exc.value.code == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
