"""The store heals: eviction under load, sqlite errors, a damaged index, flipped bits."""

from __future__ import annotations

import asyncio
import random
import sqlite3
import sys
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from cache_proxy.config import ProxyConfig
from cache_proxy.index import Index
from cache_proxy.server import ProxyServer
from tests.fakesnap import FakeSnapshot, make_runs, sha1, sha256
from tests.proxy_fixtures import *  # noqa: F403
from tests.proxy_fixtures import FAST_RETRY, RUNS, Proxy, metric
from tests.test_proxy_lifecycle import start_cli

MakeProxy = Callable[..., Awaitable[Proxy]]
POOL = "pool/main/p/pkg1/pkg1_1.0_all.deb"
FILES = 24
SIZE = 300 << 10  # above SMALL_BLOB: served by FileResponse from the file


@pytest.fixture
async def many() -> AsyncIterator[FakeSnapshot]:
    server = FakeSnapshot(
        {"debian": make_runs("debian", "bookworm", RUNS[:1], packages=FILES, size=SIZE)}
    )
    await server.start()
    yield server
    await server.stop()


async def healthz(http: aiohttp.ClientSession, url: str) -> str:
    async with http.get(f"{url}/healthz") as resp:
        assert resp.status == 200
        return await resp.text()


async def until(check: Callable[[], Awaitable[bool]], what: str) -> None:
    for _ in range(500):
        if await check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never: {what}")


async def hammer(
    proxy: Proxy, run: Any, requests: int, clients: int, seed: int = 5
) -> Counter[int]:
    """``requests`` GETs of random pool files from ``clients`` at once: statuses seen,
    and every 200 body checked."""
    pool = sorted(p for p in run.files if p.startswith("pool/"))
    rng = random.Random(seed)
    order = [rng.choice(pool) for _ in range(requests)]
    statuses: Counter[int] = Counter()
    async with aiohttp.ClientSession() as http:

        async def client(paths: list[str]) -> None:
            for path in paths:
                async with http.get(proxy.archive_url("debian", RUNS[0], path)) as resp:
                    body = await resp.read()
                    statuses[resp.status] += 1
                    if resp.status == 200:
                        assert body == run.files[path], path

        await asyncio.gather(*(client(order[i::clients]) for i in range(clients)))
    return statuses


@pytest.mark.slow
async def test_eviction_never_deletes_a_blob_being_served(
    many: FakeSnapshot, tmp_path: Path
) -> None:
    server = ProxyServer(
        ProxyConfig(
            cache_dir=tmp_path / "cache",
            upstreams=(many.snapshot_base,),
            host="127.0.0.1",
            port=0,
            retry=FAST_RETRY,
            access_log=None,
            max_size=FILES // 2 * SIZE,  # half the files fit: eviction all the time
        )
    )
    await server.start()
    try:
        proxy = Proxy(server, f"http://{server.address}")
        statuses = await hammer(proxy, many.runs["debian"][0], requests=600, clients=16)
        assert metric(proxy, "evictions_total") > 50
        assert metric(proxy, "hits_total") > 100
        assert statuses == Counter({200: 600}), statuses
    finally:
        await server.stop()


async def test_access_time_writer_survives_sqlite_errors(
    fake: FakeSnapshot,
    make_proxy: MakeProxy,
    http: aiohttp.ClientSession,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    proxy = await make_proxy()
    atimes = proxy.server.proxy.cache.atimes
    await atimes.stop()
    atimes.flush_seconds = 0.02
    atimes.start()
    real = Index.touch
    failing = True

    def touch(self: Index, batch: dict[str, float]) -> None:
        if failing:
            raise sqlite3.OperationalError("database or disk is full")
        real(self, batch)

    monkeypatch.setattr(Index, "touch", touch)
    url = proxy.archive_url("debian", RUNS[0], POOL)
    for _ in range(2):
        async with http.get(url) as resp:
            assert await resp.read() == fake.runs["debian"][0].files[POOL]

    async def degraded() -> bool:
        return (await healthz(http, proxy.url)).startswith("degraded: access-time writer")

    await until(degraded, "/healthz says the writer fails")
    assert metric(proxy, "background_errors_total", task="access_times") >= 1
    assert metric(proxy, "background_ok", task="access_times") == 0
    async with http.get(f"{proxy.url}/metrics") as resp:
        assert 'reprobase_proxy_background_ok{task="access_times"} 0' in await resp.text()
    failing = False

    async def healthy() -> bool:
        return await healthz(http, proxy.url) == "ok"

    await until(healthy, "/healthz recovers")
    assert metric(proxy, "background_ok", task="access_times") == 1
    sha = sha256(fake.runs["debian"][0].files[POOL])
    db = sqlite3.connect(proxy.server.config.cache_dir / "index.sqlite")
    (atime,) = db.execute("SELECT atime FROM blobs WHERE sha256=?", (sha,)).fetchone()
    db.close()
    assert atime > 0  # the batch kept through the errors was written


async def test_damaged_index_is_rebuilt_from_the_blobs(
    fake: FakeSnapshot,
    make_proxy: MakeProxy,
    http: aiohttp.ClientSession,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    cache = tmp_path / "cache"
    proxy = await make_proxy(cache_dir=cache)
    want = fake.runs["debian"][0].files[POOL]
    async with http.get(proxy.archive_url("debian", RUNS[0], POOL)) as resp:
        assert await resp.read() == want
    await proxy.server.stop()
    index = cache / "index.sqlite"
    garbled = bytearray(index.read_bytes())
    garbled[:100] = random.Random(3).randbytes(100)  # the header, and the first page
    index.write_bytes(bytes(garbled))
    for extra in ("index.sqlite-wal", "index.sqlite-shm"):
        (cache / extra).unlink(missing_ok=True)
    fake.reset_counts()
    proxy = await make_proxy(cache_dir=cache)
    assert await healthz(http, proxy.url) == "ok"
    assert "cache index damaged" in caplog.text
    assert list(cache.glob("index.sqlite.damaged-*"))  # kept for a post-mortem
    # The SHA-1 came back from the blob itself: snapshot's /file/ door is a hit.
    async with http.get(f"{proxy.url}/file/{sha1(want)}") as resp:
        assert resp.status == 200 and await resp.read() == want
    # Under a timestamp: upstream is asked for the redirect only, not the bytes.
    async with http.get(proxy.archive_url("debian", RUNS[0], POOL)) as resp:
        assert await resp.read() == want
    assert fake.count("/file/*") == 0
    assert metric(proxy, "dedup_total") == 1


async def test_scrub_drops_a_flipped_blob(
    fake: FakeSnapshot, make_proxy: MakeProxy, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    proxy = await make_proxy(cache_dir=cache)
    paths = [POOL, "pool/main/p/pkg2/pkg2_1.0_all.deb"]
    for path in paths:
        async with http.get(proxy.archive_url("debian", RUNS[0], path)) as resp:
            assert await resp.read() == fake.runs["debian"][0].files[path]
    await proxy.server.stop()
    want = fake.runs["debian"][0].files[POOL]
    blob = cache / "blobs" / "sha256" / sha256(want)[:2] / sha256(want)
    flipped = bytearray(blob.read_bytes())
    flipped[100] ^= 0x01
    blob.write_bytes(bytes(flipped))
    proc = await start_cli("scrub", "--cache-dir", str(cache))
    _, err = await proc.communicate()
    assert proc.returncode == 1, err
    assert not blob.exists()
    again = await start_cli("scrub", "--cache-dir", str(cache))
    await again.communicate()
    assert again.returncode == 0
    fake.reset_counts()
    proxy = await make_proxy(cache_dir=cache)
    async with http.get(proxy.archive_url("debian", RUNS[0], POOL)) as resp:
        assert await resp.read() == want  # fetched again, the right bytes
    assert fake.count(f"/file/{sha1(want)}") == 1


async def test_scrub_output_is_one_line(
    tmp_path: Path, fake: FakeSnapshot, make_proxy: MakeProxy
) -> None:
    proxy = await make_proxy(cache_dir=tmp_path / "cache")
    await proxy.server.stop()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "cache_proxy",
        "scrub",
        "--cache-dir",
        str(tmp_path / "cache"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=Path(__file__).resolve().parents[1],
    )
    out, _ = await proc.communicate()
    assert proc.returncode == 0
    assert out.decode().splitlines() == [
        "scrub: 0 blobs (0.0 MiB) re-hashed, 0 damaged and dropped"
    ]
    bad = await start_cli("scrub", "--cache-dir", str(tmp_path / "nothing-here"))
    _, err = await bad.communicate()
    assert bad.returncode == 2
    assert err.decode().strip().splitlines() == [
        f"error: no proxy cache in {tmp_path / 'nothing-here'} (hint: give its --cache-dir DIR)"
    ]


async def test_background_scrub_drops_a_flipped_blob_while_serving(
    fake: FakeSnapshot, make_proxy: MakeProxy, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    proxy = await make_proxy(cache_dir=cache)
    want = fake.runs["debian"][0].files[POOL]
    async with http.get(proxy.archive_url("debian", RUNS[0], POOL)) as resp:
        assert await resp.read() == want
    await proxy.server.stop()
    blob = cache / "blobs" / "sha256" / sha256(want)[:2] / sha256(want)
    flipped = bytearray(blob.read_bytes())
    flipped[7] ^= 0x80
    blob.write_bytes(bytes(flipped))
    proxy = await make_proxy(cache_dir=cache, scrub_rate=10 << 20)

    async def dropped() -> bool:
        return metric(proxy, "scrub_dropped_total") == 1

    await until(dropped, "the background scrub drops the blob")
    assert not blob.exists()
    async with http.get(proxy.archive_url("debian", RUNS[0], POOL)) as resp:
        assert await resp.read() == want


async def test_eviction_failure_is_reported_and_retried(
    fake: FakeSnapshot,
    make_proxy: MakeProxy,
    http: aiohttp.ClientSession,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    run = fake.runs["debian"][0]
    pool = sorted(p for p in run.files if p.startswith("pool/"))
    proxy = await make_proxy(max_size=len(run.files[pool[0]]) + 10)
    real = Index.delete_blob
    failing = True

    def delete_blob(self: Index, sha: str) -> None:
        if failing:
            raise sqlite3.OperationalError("disk I/O error")
        real(self, sha)

    monkeypatch.setattr(Index, "delete_blob", delete_blob)
    for path in pool[:2]:
        async with http.get(proxy.archive_url("debian", RUNS[0], path)) as resp:
            assert await resp.read() == run.files[path]

    async def degraded() -> bool:
        return "eviction: OperationalError: disk I/O error" in await healthz(http, proxy.url)

    await until(degraded, "/healthz names the eviction failure")
    assert metric(proxy, "background_errors_total", task="eviction") >= 1
    failing = False
    async with http.get(proxy.archive_url("debian", RUNS[0], pool[2])) as resp:
        assert await resp.read() == run.files[pool[2]]

    async def healthy() -> bool:
        return await healthz(http, proxy.url) == "ok"

    await until(healthy, "eviction works again")
    assert metric(proxy, "evictions_total") >= 2


async def test_damaged_index_that_cannot_be_moved_is_one_clear_line(
    tmp_path: Path, fake: FakeSnapshot, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cache_proxy import cache as cache_module
    from cache_proxy.errors import UserError

    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "index.sqlite").write_bytes(b"this is not a database, not even close" * 100)

    def refuse(path: Path) -> Path:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(cache_module, "set_aside", refuse)
    server = ProxyServer(
        ProxyConfig(cache_dir=cache, upstreams=(fake.snapshot_base,), host="127.0.0.1", port=0)
    )
    with pytest.raises(UserError) as err:
        await server.start()
    line = err.value.render()
    assert "\n" not in line and line.startswith("error: the cache index ")
    assert "is damaged (file is not a database)" in line and "Permission denied" in line
