"""schedules/Containerfile.proxy, built the way its header says: `reprobase build -f
schedules/Containerfile.proxy --context CHECKOUT` FROM a reprobase debian:bookworm-slim
(built once through the recorded mirror, as tests/test_derive_real.py makes its base),
twice, the second build varied; the image is loaded into podman, answers /healthz and
serves a file through itself from an upstream (the recorded mirror), as nobody, with
nothing of factory/ in it.

The build context is a copy of the checkout plus the wheels schedules/proxy-wheels.sh
fetches (hash-pinned, what Debian lacks); the build reaches nothing but the cache proxy.
The container runs with runc (this machine's crun refuses its hybrid cgroups).
"""

from __future__ import annotations

import json
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
from typing import Any

import pytest

from factory.source import proxyctl
from tests.build_fixtures import ROOT, TEST_SNAPSHOT, recorded_mirror, slim_once  # noqa: F401
from tests.test_package import checkout_copy

pytestmark = [
    pytest.mark.slow,
    pytest.mark.root,
    pytest.mark.network,
    pytest.mark.skipif(
        shutil.which("podman") is None or shutil.which("runc") is None
        or shutil.which("buildah") is None,
        reason="needs podman, runc and buildah (apt-get install podman runc buildah)",
    ),
]  # fmt: skip
TAG = "localhost/reprobase-cache-proxy:test"


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


def reprobase(*argv: str) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, "-m", "factory.cli", *argv, "--json"],
                          capture_output=True, text=True, cwd=ROOT, timeout=900)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return doc


def proxy_context(where: Path) -> Path:
    """The checkout, and the wheels its requirements pin (hashes checked by pip)."""
    context = checkout_copy(where)
    subprocess.run(["sh", str(context / "schedules" / "proxy-wheels.sh")], check=True,
                   capture_output=True, timeout=600,
                   env={**os.environ, "PIP": f"{sys.executable} -m pip"})  # fmt: skip
    return context


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


def test_the_proxy_image_builds_reproducibly_and_serves(
    tmp_path: Path,
    podman: list[str],
    recorded_mirror: proxyctl.ProxyHandle,  # noqa: F811
    slim_once: Path,  # noqa: F811
) -> None:
    base = slim_once
    context = proxy_context(tmp_path / "context")
    out = tmp_path / "image"
    result = reprobase(
        "build", "-f", str(context / "schedules" / "Containerfile.proxy"),
        "--context", str(context), "--build-arg", f"BASE=oci:{base}", "--tag", TAG,
        "--proxy", recorded_mirror.url, "--upstream", "record", "--output", str(out),
    )  # fmt: skip
    # the double build agreed, on every digest, and the layout holds that image
    assert result["reproducible"] is True and result["differences"] == []
    a, b = result["build_a"]["digests"], result["build_b"]["digests"]
    assert a == b and a["index"] == result["index_digest"]
    assert result["build_b"]["env"]["clock_offset_days"] == "1"
    index = json.loads((out / "index.json").read_text())
    assert [m["digest"] for m in index["manifests"]] == [result["index_digest"]]
    config = a["platforms"]["linux/amd64"]["config"]

    archive = tmp_path / "proxy.tar"
    subprocess.run([sys.executable, "-m", "factory.cli", "publish", str(out),
                    "--output-archive", str(archive), "--archive-name", TAG],
                   check=True, capture_output=True, cwd=ROOT, timeout=300)  # fmt: skip
    subprocess.run([*podman, "load", "-q", "-i", str(archive)], check=True, capture_output=True)
    image_id = subprocess.run(
        [*podman, "image", "inspect", "--format", "{{.Id}}", TAG],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert f"sha256:{image_id}" == config  # our bytes, as podman stores them

    port = free_port()
    name = f"rbp-{os.getpid()}"
    run = [*podman, "run", "-d", "--name", name, "--network", "host", TAG,
           "--listen", f"127.0.0.1:{port}", "--workers", "1",
           "--upstream", f"{recorded_mirror.url}archive/"]  # fmt: skip
    started = subprocess.run(run, capture_output=True, text=True, timeout=120)
    assert started.returncode == 0, started.stderr
    try:
        assert wait_healthz(f"http://127.0.0.1:{port}/healthz") == b"ok"
        path = f"archive/debian/{TEST_SNAPSHOT}/dists/bookworm/InRelease"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/{path}", timeout=60) as resp:
            through = resp.read()
            assert resp.headers["X-Cache"] == "MISS"
        with urllib.request.urlopen(f"{recorded_mirror.url}{path}", timeout=60) as resp:
            assert through == resp.read() and through.startswith(b"-----BEGIN PGP SIGNED")
        logs = subprocess.run([*podman, "logs", name], capture_output=True, text=True)
        assert "cache /cache" in logs.stdout + logs.stderr  # REPROBASE_PROXY_CACHE_DIR
        probe = "import os, importlib.util as u; print(os.getuid(), u.find_spec('factory'))"
        who = subprocess.run([*podman, "exec", name, "python3", "-c", probe],
                             capture_output=True, text=True, check=True)  # fmt: skip
        assert who.stdout.split() == ["65534", "None"]  # nobody, and no factory in the image
    finally:
        subprocess.run([*podman, "rm", "-f", name], capture_output=True, check=False)
