"""A farm: three proxy replicas behind nginx with schedules/farm/nginx.conf, on loopback.

One upstream fetch per distinct file across the farm (consistent hashing on the
timestamp-free path gives each file one home), and losing a replica costs only its
share of the cache.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from cache_proxy.config import ProxyConfig
from cache_proxy.server import ProxyServer
from tests.fakesnap import FakeSnapshot, make_runs, sha1, sha256
from tests.proxy_fixtures import FAST_RETRY, RUNS

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "schedules" / "farm" / "nginx.conf"
pytestmark = pytest.mark.skipif(
    shutil.which("nginx") is None, reason="needs nginx (apt-get install nginx-light)"
)


@dataclass
class Farm:
    fake: FakeSnapshot
    replicas: list[ProxyServer]
    url: str

    def home(self, data: bytes) -> list[int]:
        """Which replicas store this file."""
        sha = sha256(data)
        return [
            i
            for i, r in enumerate(self.replicas)
            if (r.config.cache_dir / "blobs" / "sha256" / sha[:2] / sha).exists()
        ]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def render(conf: str, ports: list[int], listen: int, tmp: Path) -> str:
    """The shipped config, pointed at loopback replicas and a private prefix."""
    for n, port in enumerate(ports, 1):
        conf, count = re.subn(rf"server proxy{n}:3142", f"server 127.0.0.1:{port}", conf)
        assert count == 1, f"no server line for proxy{n}"
    conf = conf.replace("listen 3142;", f"listen 127.0.0.1:{listen};")
    conf = conf.replace("listen [::]:3142;", "")
    conf = conf.replace("pid /run/nginx-reprobase.pid;", f"pid {tmp}/nginx.pid;")
    temp = "".join(
        f"    {kind}_temp_path {tmp}/{kind};\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return conf.replace("http {\n", "http {\n" + temp, 1)


@pytest.fixture
async def farm(tmp_path: Path) -> AsyncIterator[Farm]:
    fake = FakeSnapshot({"debian": make_runs("debian", "bookworm", RUNS[:2], packages=16)})
    await fake.start()
    replicas = []
    for i in range(3):
        server = ProxyServer(
            ProxyConfig(
                cache_dir=tmp_path / f"cache{i}",
                upstreams=(fake.snapshot_base,),
                host="127.0.0.1",
                port=0,
                retry=FAST_RETRY,
                access_log=None,
            )
        )
        await server.start()
        replicas.append(server)
    listen = free_port()
    conf = tmp_path / "nginx.conf"
    conf.write_text(render(CONF.read_text(), [r.port for r in replicas], listen, tmp_path))
    nginx = await asyncio.create_subprocess_exec(
        "nginx", "-p", str(tmp_path), "-c", str(conf), "-g", "daemon off;",
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    url = f"http://127.0.0.1:{listen}"
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(500):  # poll the balancer's door until a replica answers
                if nginx.returncode is not None:
                    err = await nginx.stderr.read() if nginx.stderr else b""
                    raise AssertionError(f"nginx exited: {err.decode()}")
                try:
                    async with http.get(f"{url}/healthz") as resp:
                        if resp.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.02)
        yield Farm(fake, replicas, url)
    finally:
        if nginx.returncode is None:
            nginx.terminate()
            await nginx.wait()
        for r in replicas:
            await r.stop()
        await fake.stop()


async def get_all(url: str, ts: str, paths: list[str]) -> list[tuple[int, bytes]]:
    async with aiohttp.ClientSession() as http:

        async def one(path: str) -> tuple[int, bytes]:
            async with http.get(f"{url}/archive/debian/{ts}/{path}") as resp:
                return resp.status, await resp.read()

        return await asyncio.gather(*(one(p) for p in paths))


async def test_one_fetch_per_file_across_the_farm_and_a_lost_replica(farm: Farm) -> None:
    fake = farm.fake
    run0, run1 = fake.runs["debian"]
    pool = sorted(p for p in run0.files if p.startswith("pool/"))
    assert await get_all(farm.url, RUNS[0], pool) == [(200, run0.files[p]) for p in pool]
    homes = {p: farm.home(run0.files[p]) for p in pool}
    assert all(len(h) == 1 for h in homes.values()), homes  # one home per file
    assert len({h[0] for h in homes.values()}) == 3  # and the files spread over all three
    for p in pool:
        assert fake.count(f"/file/{sha1(run0.files[p])}") == 1, p
    # Another timestamp: its unchanged files are found at their home, not fetched again.
    pool1 = sorted(p for p in run1.files if p.startswith("pool/"))
    assert await get_all(farm.url, RUNS[1], pool1) == [(200, run1.files[p]) for p in pool1]
    for p in pool1:
        assert fake.count(f"/file/{sha1(run1.files[p])}") == 1, p
    # One replica goes: only the files it held are fetched again, once, elsewhere.
    lost = 1
    await farm.replicas[lost].stop()
    before = {p: fake.count(f"/file/{sha1(run0.files[p])}") for p in pool}
    assert await get_all(farm.url, RUNS[0], pool) == [(200, run0.files[p]) for p in pool]
    refetched = {p for p in pool if fake.count(f"/file/{sha1(run0.files[p])}") > before[p]}
    assert refetched == {p for p, h in homes.items() if h == [lost]}
    assert all(fake.count(f"/file/{sha1(run0.files[p])}") <= 2 for p in pool)


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="needs docker-compose")
def test_farm_compose_file_is_valid_and_matches_the_config() -> None:
    import subprocess

    compose = CONF.with_name("compose.yaml")
    done = subprocess.run(
        ["docker-compose", "-f", str(compose), "config", "-q"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    text = compose.read_text()
    servers = re.findall(r"server (proxy\d+):3142", CONF.read_text())
    assert servers == ["proxy1", "proxy2", "proxy3"]
    assert all(f"  {name}:\n" in text for name in servers)  # one service per server line
