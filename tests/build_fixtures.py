"""Session fixtures for real builds: a frozen recording of the machine's Debian mirror.

snapshot.debian.org is unreachable here, so builds go through the cache proxy in
recorder mode against the mirror found in the machine's apt sources. The proxy
freezes the mirror's indexes the first time the test timestamp is asked for and
keeps every .deb, so a mirror update during the session cannot make a test flaky
and every build after the first fetches nothing upstream.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from factory.source import proxyctl
from factory.source.aptsources import system_debian_mirror
from factory.source.snapshot import today_utc
from factory.source.upstream import mirror_base

# One timestamp for the whole session: today's midnight (the recorder freezes it).
TEST_SNAPSHOT = today_utc().text
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def recorded_mirror(tmp_path_factory: pytest.TempPathFactory) -> Iterator[proxyctl.ProxyHandle]:
    if os.geteuid() != 0:
        pytest.skip("real builds need root")
    cache = Path(os.environ.get("REPROBASE_TEST_RECORDING") or tmp_path_factory.mktemp("recording"))
    cfg = proxyctl.ProxyLaunch(
        cache, mirror_base(system_debian_mirror()), True, cache / "proxy.log"
    )
    with proxyctl.running(cfg) as handle:
        yield handle


@dataclass
class BuildRun:
    returncode: int
    result: dict[str, Any]
    stdout: str
    stderr: str
    output: Path
    hostname: str
    proxy_url: str


def run_build(
    image: str, output: Path, proxy: proxyctl.ProxyHandle, *extra: str, hostname: str | None = None
) -> BuildRun:
    """Run `reprobase build` as a user would, in a UTS namespace with a distinctive host
    name so that a leak of the build host's name into the image can be searched for."""
    hostname = hostname or f"leakcheck-{uuid.uuid4().hex[:12]}"
    argv = [
        "unshare", "--uts", "--", sys.executable, "-m", "factory.rootfs.varyenv",
        "--hostname", hostname,
        "--", sys.executable, "-m", "factory.cli", "build", image, "--arch", "amd64",
        "--snapshot", TEST_SNAPSHOT, "--proxy", proxy.url, "--upstream", "record",
        "--output", str(output), "--json", *extra,
    ]  # fmt: skip
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, check=False)
    lines = proc.stdout.strip().splitlines()
    result = json.loads(lines[-1]) if lines and lines[-1].startswith("{") else {}
    return BuildRun(proc.returncode, result, proc.stdout, proc.stderr, output, hostname, proxy.url)


@pytest.fixture(scope="session")
def bookworm_build(
    recorded_mirror: proxyctl.ProxyHandle, tmp_path_factory: pytest.TempPathFactory
) -> BuildRun:
    out = tmp_path_factory.mktemp("bookworm") / "layout"
    run = run_build("debian:bookworm", out, recorded_mirror)
    assert run.returncode == 0, run.stderr[-3000:]
    return run


@pytest.fixture(scope="session")
def slim_once(
    recorded_mirror: proxyctl.ProxyHandle, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """One debian:bookworm-slim (amd64, built once): the base the derived-image tests build
    FROM (test_derive_real, test_container_proxy). Read-only for them: built once per session."""
    out = tmp_path_factory.mktemp("bookworm-slim") / "layout"
    run = run_build("debian:bookworm-slim", out, recorded_mirror, "--once")
    assert run.returncode == 0, run.stderr[-3000:]
    return out
