"""Real apt through the proxy in forward mode (Acquire::http::Proxy), then mmdebstrap in
recorder mode against the machine's own Debian mirror (found in its apt sources)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
from pathlib import Path

import aiohttp
import pytest

from cache_proxy.config import Mode, ProxyConfig
from cache_proxy.server import ProxyServer
from tests.fakesnap import FakeSnapshot, gpg_signer, make_runs, stop_gpg_agent
from tests.proxy_fixtures import *  # noqa: F403
from tests.proxy_fixtures import RUNS, Proxy, metric


def apt_config(root: Path, proxy: str) -> Path:
    """A private apt: its own state, cache, sources; nothing of the host's apt.conf.d."""
    for d in ("state/lists/partial", "cache/archives/partial", "etc/apt.conf.d", "etc/prefs"):
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "status").write_text("")
    conf = root / "apt.conf"
    conf.write_text(
        f'Dir "{root}/";\n'
        f'Dir::State "{root}/state/";\n'
        f'Dir::State::status "{root}/status";\n'
        f'Dir::Cache "{root}/cache/";\n'
        f'Dir::Etc "{root}/etc/";\n'
        f'Dir::Etc::Parts "{root}/etc/apt.conf.d/";\n'
        f'Dir::Etc::PreferencesParts "{root}/etc/prefs/";\n'
        'Dir::Etc::SourceParts "-";\n'
        f'Acquire::http::Proxy "{proxy}/";\n'
        'Acquire::Languages "none";\n'
        'APT::Architecture "amd64";\n'
        'APT::Sandbox::User "root";\n'
        'Acquire::Retries "3";\n'
    )
    return conf


async def run(argv: list[str], cwd: Path, env: dict[str, str]) -> str:
    proc = await asyncio.create_subprocess_exec(
        *argv,
        cwd=cwd,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    text = out.decode(errors="replace")
    assert proc.returncode == 0, f"{argv[0]} failed:\n{text[-3000:]}"
    return text


@pytest.mark.root
@pytest.mark.skipif(shutil.which("apt-get") is None, reason="needs apt (Debian package apt)")
@pytest.mark.skipif(os.geteuid() != 0, reason="apt's sandbox user needs root")
@pytest.mark.skipif(shutil.which("gpg") is None, reason="needs gpg")
async def test_apt_update_and_download_through_forward_proxy(tmp_path: Path) -> None:
    sign, keyring = gpg_signer(tmp_path / "gnupg")
    fake = FakeSnapshot({"debian": make_runs("debian", "bookworm", RUNS, signer=sign)})
    stop_gpg_agent(tmp_path / "gnupg")  # every Release is signed by now
    await fake.start()
    server = ProxyServer(
        ProxyConfig(
            cache_dir=tmp_path / "cache",
            upstreams=(fake.snapshot_base,),
            host="127.0.0.1",
            port=0,
            access_log=None,
        )
    )
    proxy = Proxy(server, f"http://{await server.start()}")
    try:
        await _apt_rounds(fake, proxy, keyring, tmp_path)
    finally:
        await server.stop()
        await fake.stop()


async def _apt_rounds(fake: FakeSnapshot, proxy: Proxy, keyring: Path, tmp_path: Path) -> None:
    root = tmp_path / "apt"
    conf = apt_config(root, proxy.url)
    (root / "etc/sources.list").write_text(
        f"deb [signed-by={keyring}] http://snapshot.debian.org/archive/debian/{RUNS[1]}/"
        " bookworm main\n"
    )
    env = {"APT_CONFIG": str(conf), "PATH": os.environ["PATH"], "LC_ALL": "C.UTF-8"}
    for _ in range(2):  # the second round is served from the cache
        for old in root.glob("*.deb"):
            old.unlink()
        await run(["apt-get", "update"], root, env)
        await run(["apt-get", "download", "pkg0", "pkg1", "pkg2"], root, env)
    run1 = fake.runs["debian"][1]
    for name in ("pkg0", "pkg1", "pkg2"):
        (deb,) = root.glob(f"{name}_*_all.deb")
        path = next(p for p in run1.files if p.endswith("/" + deb.name))
        assert (
            hashlib.sha256(deb.read_bytes()).digest() == hashlib.sha256(run1.files[path]).digest()
        )
    assert fake.count("/file/*") == 3  # three .debs, fetched once each
    assert metric(proxy, "hits_total") >= 4


@pytest.mark.root
@pytest.mark.network
@pytest.mark.slow
@pytest.mark.skipif(shutil.which("mmdebstrap") is None, reason="needs mmdebstrap")
async def test_mmdebstrap_through_recorder(tmp_path: Path) -> None:
    from factory.source.aptsources import system_debian_mirror

    mirror = system_debian_mirror()  # e.g. http://<host>/debian/
    base = mirror[: mirror.rstrip("/").rfind("/") + 1]
    config = ProxyConfig(
        cache_dir=tmp_path / "cache",
        upstreams=(base,),
        mode=Mode.RECORD,
        host="127.0.0.1",
        port=0,
        access_log=None,
        record_window=None,  # recorded under a fixed past timestamp
    )
    server = ProxyServer(config)
    address = await server.start()
    try:
        ts = "20260101T000000Z"
        env = {"PATH": os.environ["PATH"], "LC_ALL": "C.UTF-8", "SOURCE_DATE_EPOCH": "1767225600"}
        out = tmp_path / "root.tar"
        await run(
            [
                "mmdebstrap",
                "--variant=essential",
                "--mode=root",
                f'--aptopt=Acquire::http::Proxy "http://{address}/"',
                "bookworm",
                str(out),
                f"deb [check-valid-until=no] http://snapshot.debian.org/archive/debian/{ts}/"
                " bookworm main",
            ],
            tmp_path,
            env,
        )
        assert out.stat().st_size > 1_000_000
        metrics = server.proxy.metrics
        assert metrics.get("verify_failures_total") == 0
        fetched = metrics.get("upstream_requests_total", status="200")
        # every file once: InRelease, Release, Release.gpg (frozen together), Packages, debs
        assert fetched == metrics.get("misses_total") + 2
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://{address}/archive/debian/{ts}/dists/bookworm/InRelease") as resp,
        ):
            assert resp.status == 200
            assert b"Codename: bookworm" in await resp.read()
        assert fetched == metrics.get("upstream_requests_total", status="200")  # frozen: no refetch
    finally:
        await server.stop()
