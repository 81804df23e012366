"""schedules/Containerfile.proxy builds with podman and the proxy in it answers /healthz.

Docker Hub cannot be reached here, so the base is made by reprobase itself: a recipe
of python3 and python3-venv (given with --recipes), built once through the recorded
mirror. The build context is a copy of the checkout; the build runs with chroot
isolation and the host network (pip fetches the dependencies), the container with
runc (this machine's crun refuses its hybrid cgroups).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from factory.source import proxyctl
from tests.build_fixtures import TEST_SNAPSHOT, recorded_mirror  # noqa: F401
from tests.test_package import checkout_copy

pytestmark = [
    pytest.mark.slow,
    pytest.mark.root,
    pytest.mark.skipif(
        shutil.which("podman") is None or shutil.which("runc") is None,
        reason="needs podman and runc (apt-get install podman runc)",
    ),
]
RECIPE = """\
name = "test"
tag = "python"
suite = "bookworm"
variant = "minbase"
packages = ["python3", "python3-venv", "ca-certificates"]
description = "a Python base for the proxy's container test"
"""
HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")


@pytest.fixture
def podman(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """podman with its own store (overlay where the kernel has it: vfs copies every layer
    and took half of this test's minutes), runc, and no default ulimits."""
    conf = tmp_path / "containers.conf"
    conf.write_text("[containers]\ndefault_ulimits = []\n", encoding="utf-8")
    monkeypatch.setenv("CONTAINERS_CONF", str(conf))
    runroot = Path(tempfile.mkdtemp(prefix="rb-podman-"))  # podman: at most 50 characters
    store = ["--root", str(tmp_path / "root"), "--runroot", str(runroot)]
    driver = "overlay" if "overlay" in Path("/proc/filesystems").read_text().split() else "vfs"
    yield ["podman", *store, "--storage-driver", driver, "--runtime", "runc"]
    if driver == "overlay":  # its mounts, before the store under them goes
        subprocess.run([*store_cmd(store), "--storage-driver", driver, "system", "reset", "-f"],
                       check=False, capture_output=True, timeout=120)  # fmt: skip
    shutil.rmtree(runroot, ignore_errors=True)
    shutil.rmtree(tmp_path / "root", ignore_errors=True)


def store_cmd(store: list[str]) -> list[str]:
    return ["podman", *store]


def python_base(tmp_path: Path, proxy: proxyctl.ProxyHandle) -> Path:
    recipes = tmp_path / "recipes"
    (recipes / "test").mkdir(parents=True)
    (recipes / "test" / "python.toml").write_text(RECIPE, encoding="utf-8")
    layout = tmp_path / "base"
    subprocess.run(
        [sys.executable, "-m", "factory.cli", "build", "test:python", "--recipes", str(recipes),
         "--once", "--arch", "amd64", "--snapshot", TEST_SNAPSHOT, "--proxy", proxy.url,
         "--upstream", "record", "--output", str(layout)],
        check=True, capture_output=True, timeout=900,
    )  # fmt: skip
    return layout


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_healthz(url: str) -> bytes:
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                return bytes(resp.read())
        except (urllib.error.URLError, ConnectionError):
            assert time.monotonic() < deadline, f"{url} never answered"
            time.sleep(0.05)  # polling the container's port until it listens


def test_containerfile_builds_and_the_proxy_answers(
    tmp_path: Path,
    podman: list[str],
    recorded_mirror: proxyctl.ProxyHandle,  # noqa: F811
) -> None:
    base = python_base(tmp_path, recorded_mirror)
    context = checkout_copy(tmp_path / "context")
    build = [*podman, "build", "--isolation", "chroot", "--network", "host", "-q",
             "--build-arg", f"BASE=oci:{base}", "-t", "reprobase-proxy-test",
             "-f", str(context / "schedules" / "Containerfile.proxy")]  # fmt: skip
    if HOST_CA.is_file():  # this site's CA, for pip inside the build
        build += ["-v", f"{HOST_CA}:/etc/ssl/certs/ca-certificates.crt:ro"]
    proc = subprocess.run([*build, str(context)], capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    port = free_port()
    name = f"rbp-{os.getpid()}"
    run = [*podman, "run", "-d", "--name", name, "--network", "host",
           "localhost/reprobase-proxy-test",
           "--listen", f"127.0.0.1:{port}", "--workers", "1"]  # fmt: skip
    started = subprocess.run(run, capture_output=True, text=True, timeout=120)
    assert started.returncode == 0, started.stderr
    try:
        assert wait_healthz(f"http://127.0.0.1:{port}/healthz") == b"ok"
        logs = subprocess.run([*podman, "logs", name], capture_output=True, text=True)
        assert "cache /cache" in logs.stdout + logs.stderr  # REPROBASE_PROXY_CACHE_DIR
        who = subprocess.run(
            [*podman, "exec", name, "python", "-c", "import factory, os; print(os.getuid())"],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        assert who.stdout.strip() == "65534"
    finally:
        subprocess.run([*podman, "rm", "-f", name], capture_output=True, check=False)
