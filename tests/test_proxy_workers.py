"""Several processes on one port: hit workers, the primary, and what they must share.

Workers are real ``python -m cache_proxy.workers`` processes on SO_REUSEPORT
sockets; where a test must be sure a request reaches a worker, it also runs a
``WorkerApp`` of its own on a separate port, relaying to the same primary.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from cache_proxy import workers
from cache_proxy.metrics import PREFIX
from cache_proxy.workers import WorkerApp
from factory.source.proxyctl import parse_metrics
from tests.fakesnap import FakeSnapshot, sha1, sha256
from tests.proxy_fixtures import *  # noqa: F403
from tests.proxy_fixtures import BIG, RUNS, Proxy
from tests.test_proxy_lifecycle import cli, start_cli

MakeProxy = Callable[..., Awaitable[Proxy]]
OwnWorker = Callable[[Proxy], Awaitable[str]]
POOL = "pool/main/p/pkg1/pkg1_1.0_all.deb"


def fresh_session() -> aiohttp.ClientSession:
    """A new connection per request, so the kernel spreads them over the processes."""
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True))


async def get(url: str, **headers: str) -> tuple[int, bytes, dict[str, str]]:
    async with fresh_session() as http, http.get(url, headers=headers) as resp:
        return resp.status, await resp.read(), dict(resp.headers)


async def scrape(url: str) -> dict[str, float]:
    status, body, _ = await get(f"{url}/metrics")
    assert status == 200
    return parse_metrics(body.decode())


async def metrics_until(
    url: str, ready: Callable[[dict[str, float]], bool], what: str
) -> dict[str, float]:
    """Poll /metrics: a worker counts a request just after its last byte is sent."""
    for _ in range(200):
        values = await scrape(url)
        if ready(values):
            return values
        await asyncio.sleep(0.01)
    raise AssertionError(f"/metrics never showed {what}: {values}")


def children(pid: int) -> set[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return {int(p) for p in f.read().split()}


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.fixture
async def own_worker(
    tmp_path: Path,
) -> AsyncIterator[Callable[[Proxy], Awaitable[str]]]:
    """A WorkerApp in this process relaying to ``proxy``'s primary: its base URL."""
    runners: list[tuple[web.AppRunner | web.ServerRunner, WorkerApp]] = []

    async def start(proxy: Proxy) -> str:
        server = proxy.server
        assert server.board is not None and server.internal_socket is not None
        app = WorkerApp(server.config, server.board, 0, str(server.internal_socket))
        await app.startup()
        runner = web.ServerRunner(app.make_server())
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append((runner, app))
        port = runner.addresses[0][1]
        return f"http://127.0.0.1:{port}"

    yield start
    for runner, app in runners:
        await runner.cleanup()
        await app.cleanup()


async def test_processes_share_one_store_and_one_flight(
    fake: FakeSnapshot, make_proxy: MakeProxy
) -> None:
    proxy: Proxy = await make_proxy(workers=3)
    want = fake.runs["debian"][0].files[POOL]
    url = proxy.archive_url("debian", RUNS[0], POOL)
    fake.slow_seconds = 0.5  # every cold client arrives while the one download runs
    cold = await asyncio.gather(*(get(url) for _ in range(16)))
    fake.slow_seconds = 0.0
    assert all(status == 200 and body == want for status, body, _ in cold)
    assert fake.count(f"/file/{sha1(want)}") == 1  # one flight for all processes
    warm = await asyncio.gather(*(get(url) for _ in range(60)))
    assert all(status == 200 and body == want for status, body, _ in warm)
    assert {h["X-Cache"] for _, _, h in warm} == {"HIT"}
    assert fake.count(f"/file/{sha1(want)}") == 1

    def settled(m: dict[str, float]) -> bool:
        answered = sum(m.get(f"{PREFIX}{n}_total", 0) for n in ("hits", "misses", "coalesced"))
        return m.get(f'{PREFIX}requests_total{{status="200"}}') == 76 and answered == 76

    values = await metrics_until(proxy.url, settled, "76 answered requests")
    assert values[f"{PREFIX}misses_total"] == 1
    assert values[f"{PREFIX}served_bytes_total"] >= 76 * len(want)
    # The workers answered some of them themselves (76 connections, 3 processes).
    assert proxy.server.board is not None
    assert proxy.server.board.totals()["hits_total"][()] > 0


async def test_worker_relays_misses_then_answers_hits(
    fake: FakeSnapshot, make_proxy: MakeProxy, own_worker: OwnWorker
) -> None:
    proxy: Proxy = await make_proxy(workers=2)
    base = await own_worker(proxy)
    want = fake.runs["debian"][0].files[POOL]
    url = f"{base}/archive/debian/{RUNS[0]}/{POOL}"
    status, body, headers = await get(url)
    assert (status, headers["X-Cache"]) == (200, "MISS") and body == want
    status, body, headers = await get(url)
    assert (status, headers["X-Cache"]) == (200, "HIT") and body == want
    assert proxy.server.board is not None
    assert proxy.server.board.totals()["hits_total"][()] == 1  # answered by the worker
    # Conditional requests and ranges on a hit, answered by the worker.
    status, body, headers = await get(url, Range="bytes=10-19")
    assert status == 206 and body == want[10:20]
    assert headers["Content-Range"] == f"bytes 10-19/{len(want)}"
    status, _, _ = await get(url, **{"If-Modified-Since": headers["Last-Modified"]})
    assert status == 304
    # A forward-proxy request for the same file is the same hit; CONNECT is refused.
    async with (
        fresh_session() as http,
        http.get(f"http://snapshot.debian.org/archive/debian/{RUNS[0]}/{POOL}", proxy=base) as r,
    ):
        assert r.status == 200 and await r.read() == want
    async with fresh_session() as http, http.request("CONNECT", f"{base}/x") as r:
        assert r.status == 405
    assert fake.count(f"/file/{sha1(want)}") == 1
    # snapshot's /file/<sha1> door: the worker answers the stored blob itself.
    other = fake.runs["debian"][0].files["pool/main/p/pkg2/pkg2_1.0_all.deb"]
    for expected in ("MISS", "HIT"):
        status, body, headers = await get(f"{base}/file/{sha1(other)}")
        assert (status, headers["X-Cache"]) == (200, expected) and body == other
    assert fake.count(f"/file/{sha1(other)}") == 1


async def test_worker_health_is_the_primarys(
    make_proxy: MakeProxy, own_worker: OwnWorker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A probe may land on any process: a worker says ok only if the primary does."""
    proxy: Proxy = await make_proxy(workers=2)
    base = await own_worker(proxy)
    status, body, _ = await get(f"{base}/healthz")
    assert (status, body) == (200, b"ok")
    proxy.server.proxy.ready = False  # the primary is still starting (or stopping)
    status, body, _ = await get(f"{base}/healthz")
    assert status == 503 and b"primary: starting" in body
    proxy.server.proxy.ready = True
    status, _, _ = await get(f"{base}/healthz")
    assert status == 200
    # A primary that accepts but never answers: a listening socket nobody serves.
    monkeypatch.setattr(workers, "HEALTH_SECONDS", 0.3)
    stuck = socket.socket(socket.AF_UNIX)
    stuck.bind(str(tmp_path / "stuck"))
    stuck.listen(8)
    assert proxy.server.board is not None
    app = WorkerApp(proxy.server.config, proxy.server.board, 0, str(tmp_path / "stuck"))
    await app.startup()
    try:
        response = await app.health()
        assert response.status == 503 and "primary unavailable" in (response.text or "")
    finally:
        await app.cleanup()
        stuck.close()


async def test_worker_never_completes_a_broken_relay(
    fake: FakeSnapshot, make_proxy: MakeProxy, own_worker: OwnWorker
) -> None:
    proxy: Proxy = await make_proxy(workers=2)
    base = await own_worker(proxy)
    want = fake.runs["debian"][0].files[POOL]
    fake.inject(f"/file/{sha1(want)}", "truncate", times=1)
    url = f"{base}/archive/debian/{RUNS[0]}/{POOL}"
    outcomes: list[bytes | None] = []
    for _ in range(3):
        try:
            status, body, _ = await get(url)
        except aiohttp.ClientPayloadError:
            outcomes.append(None)  # cut off: apt would retry
            continue
        assert status == 200
        outcomes.append(body)
        break
    assert outcomes[-1] == want
    assert all(o is None or o == want for o in outcomes)  # never a short body as complete
    assert fake.count(f"/file/{sha1(want)}") == 2


async def test_eviction_reaches_the_workers(
    fake: FakeSnapshot, make_proxy: MakeProxy, own_worker: OwnWorker
) -> None:
    run = fake.runs["debian"][0]
    pool = sorted(p for p in run.files if p.startswith("pool/"))
    one = len(run.files[pool[0]])
    proxy: Proxy = await make_proxy(workers=2, max_size=3 * one + one // 2)
    base = await own_worker(proxy)
    first = pool[0]
    for _ in range(2):  # the second answer comes from the worker's memory
        status, body, _ = await get(f"{base}/archive/debian/{RUNS[0]}/{first}")
        assert status == 200 and body == run.files[first]
    for path in pool[1:]:
        status, body, _ = await get(f"{base}/archive/debian/{RUNS[0]}/{path}")
        assert body == run.files[path]
    cache = proxy.server.proxy.cache
    await cache.evictor.settled()
    assert proxy.server.board is not None and proxy.server.board.generation > 0
    assert not cache.blob_path(sha256(run.files[first])).exists()
    status, body, headers = await get(f"{base}/archive/debian/{RUNS[0]}/{first}")
    assert status == 200 and body == run.files[first] and headers["X-Cache"] == "MISS"
    assert fake.count(f"/file/{sha1(run.files[first])}") == 2


# ----------------------------------------------------------------- the real CLI
async def test_uvloop_sendfile_bodies_and_ranges(big_fake: FakeSnapshot, tmp_path: Path) -> None:
    """Under uvloop (the CLI's loop) large hits go out with os.sendfile on a thread."""
    proc, address, _ = await cli(tmp_path, big_fake, "--workers", "2")
    want = big_fake.runs["debian"][0].files[BIG]
    url = f"http://{address}/archive/debian/{RUNS[0]}/{BIG}"
    try:
        for _ in range(8):  # over new connections: both processes answer hits
            status, body, _ = await get(url)
            assert status == 200 and sha256(body) == sha256(want)
        status, body, headers = await get(url, Range="bytes=1000-2000999")
        assert status == 206 and body == want[1000:2001000]
        assert headers["Content-Range"] == f"bytes 1000-2000999/{len(want)}"
        # A client that leaves after 64 KiB: the proxy drops it and carries on.
        async with fresh_session() as http, http.get(url) as resp:
            await resp.content.readexactly(65536)
        status, body, _ = await get(url)
        assert status == 200 and sha256(body) == sha256(want)
        values = await metrics_until(
            f"http://{address}",
            # nine whole bodies and the range, at least (plus /metrics answers)
            lambda m: m.get(f"{PREFIX}served_bytes_total", 0) >= 9 * len(want) + 2_000_000,
            "the whole bodies counted as served",
        )
        assert values[f"{PREFIX}upstream_bytes_total"] == len(want)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0


async def test_workers_die_with_the_primary_and_are_replaced(
    fake: FakeSnapshot, tmp_path: Path
) -> None:
    proc, address, _ = await cli(tmp_path, fake, "--workers", "3")
    pid: int = proc.pid
    workers = children(pid)
    assert len(workers) == 2
    # A worker that crashes is replaced, and the port keeps answering.
    victim = min(workers)
    os.kill(victim, signal.SIGKILL)
    for _ in range(500):
        now = children(pid)
        if len(now) == 2 and victim not in now:
            break
        await asyncio.sleep(0.02)
    else:
        raise AssertionError(f"worker {victim} was not replaced: {children(pid)}")
    want = fake.runs["debian"][0].files[POOL]
    for _ in range(12):
        status, body, _ = await get(f"http://{address}/archive/debian/{RUNS[0]}/{POOL}")
        assert status == 200 and body == want
    # The primary dies without a word: its workers notice and leave the port.
    workers = children(pid)
    os.kill(pid, signal.SIGKILL)
    await proc.wait()
    for _ in range(500):
        if not any(alive(w) for w in workers):
            break
        await asyncio.sleep(0.02)
    else:
        raise AssertionError("hit workers outlived their primary")
    with socket.socket() as s:  # nothing listens on the port any more
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is fine
        s.bind(("127.0.0.1", int(address.rsplit(":", 1)[1])))


async def test_port_held_by_another_proxy_is_refused(fake: FakeSnapshot, tmp_path: Path) -> None:
    proc, address, _ = await cli(tmp_path / "one", fake, "--workers", "2")
    try:
        second = await start_cli(
            "--listen",
            address,
            "--cache-dir",
            str(tmp_path / "two"),
            "--upstream",
            fake.snapshot_base,
            "--workers",
            "2",
        )
        _, err = await second.communicate()
        assert second.returncode == 2
        lines = err.decode().strip().splitlines()
        assert len(lines) == 1 and "cannot listen on" in lines[0], lines
    finally:
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0


@pytest.mark.parametrize("value", ["0", "65", "x"])
async def test_bad_worker_count_is_one_line(tmp_path: Path, value: str) -> None:
    proc = await start_cli("--workers", value, "--cache-dir", str(tmp_path))
    _, err = await proc.communicate()
    assert proc.returncode == 2
    lines = err.decode().strip().splitlines()
    if value.isdigit():
        assert len(lines) == 1 and lines[0].startswith("error: --workers"), lines
    else:  # argparse's own usage line, then the error
        assert "argument --workers: invalid int value" in lines[-1], lines
