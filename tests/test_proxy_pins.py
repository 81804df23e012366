"""Build pins: a lease keeps what a running build fetched from eviction, and nothing
else can use leases to fill the disk or pin forever (cache_proxy.pins)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from cache_proxy.config import ProxyConfig
from cache_proxy.eviction import Evictor
from cache_proxy.index import AccessTimes
from cache_proxy.pins import MAX_LEASES, MAX_TTL, Pins
from factory.source import proxyctl
from tests.fakesnap import FakeSnapshot, sha1, sha256
from tests.proxy_fixtures import *  # noqa: F403
from tests.proxy_fixtures import RUNS, Proxy, metric
from tests.test_proxy_parts import Parts, parts  # noqa: F401
from tests.test_proxy_workers import get, own_worker  # noqa: F401

MakeProxy = Callable[..., Awaitable[Proxy]]
OwnWorker = Callable[[Proxy], Awaitable[str]]


BUILD_HOST = "127.0.0.2"  # the build's apt connects from here; other clients from 127.0.0.1
BUILD_NET = (f"{BUILD_HOST}/32",)


def build_session() -> aiohttp.ClientSession:
    """The build's client (a new connection per request: any process may answer)."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(local_addr=(BUILD_HOST, 0), force_close=True)
    )


def pool_of(fake: FakeSnapshot) -> list[str]:
    return sorted(p for p in fake.runs["debian"][0].files if p.startswith("pool/"))


async def call(http: aiohttp.ClientSession, method: str, url: str) -> tuple[int, Any]:
    async with http.request(method, url) as resp:
        text = await resp.text()
        return resp.status, json.loads(text) if resp.content_type == "application/json" else text


def on_disk(proxy: Proxy, body: bytes) -> bool:
    return proxy.server.proxy.cache.blob_path(sha256(body)).exists()


async def fetch_all(
    http: aiohttp.ClientSession, base: str, fake: FakeSnapshot, paths: list[str]
) -> None:
    files = fake.runs["debian"][0].files
    for path in paths:
        async with http.get(f"{base}/archive/debian/{RUNS[0]}/{path}") as resp:
            assert resp.status == 200 and await resp.read() == files[path]


async def test_a_lease_keeps_what_the_build_fetched(
    fake: FakeSnapshot, make_proxy: MakeProxy, http: aiohttp.ClientSession
) -> None:
    files = fake.runs["debian"][0].files
    pool = pool_of(fake)
    one = len(files[pool[0]])
    proxy = await make_proxy(max_size=3 * one + one // 2, pin_networks=BUILD_NET)  # 3 fit
    cache = proxy.server.proxy.cache
    build = pool[1:3]
    pinned = sum(len(files[p]) for p in build)
    async with build_session() as builder:
        await fetch_all(builder, proxy.url, fake, pool[:1])  # before its lease: not pinned
        status, lease = await call(builder, "POST", f"{proxy.url}/pins?ttl=600")
        assert status == 201 and lease["expires_in"] == 600
        await fetch_all(builder, proxy.url, fake, build)  # the build's two files
    await fetch_all(http, proxy.url, fake, pool[3:])  # someone else's, while it runs
    await cache.evictor.settled()
    assert metric(proxy, "evictions_total") >= len(pool) - 3
    assert all(on_disk(proxy, files[p]) for p in build)  # the oldest, yet kept
    assert not on_disk(proxy, files[pool[0]])  # not the build's: evicted
    assert cache.size <= 3 * one + one // 2  # the cap holds with pins
    async with http.get(f"{proxy.url}/metrics") as resp:
        text = await resp.text()
    assert "\nreprobase_proxy_pin_leases 1" in text and "\nreprobase_proxy_pinned_bytes " in text
    assert metric(proxy, "pin_leases") == 1 and metric(proxy, "pinned_bytes") == pinned
    assert (await call(http, "DELETE", f"{proxy.url}/pins/{lease['lease']}"))[0] == 403
    async with build_session() as builder:
        status, done = await call(builder, "DELETE", f"{proxy.url}/pins/{lease['lease']}")
        assert status == 200 and (done["blobs"], done["bytes"], done["refused"]) == (2, pinned, 0)
        assert (await call(builder, "DELETE", f"{proxy.url}/pins/{lease['lease']}"))[0] == 404
    # Released: they are the least recently used, and go first.
    await fetch_all(http, proxy.url, fake, pool[:1])
    await cache.evictor.settled()
    assert not on_disk(proxy, files[build[0]])
    assert fake.count(f"/file/{sha1(files[pool[0]])}") == 2


async def test_a_lease_pins_a_miss_and_a_hit_through_a_worker(
    fake: FakeSnapshot,
    make_proxy: MakeProxy,
    own_worker: OwnWorker,  # noqa: F811
) -> None:
    files = fake.runs["debian"][0].files
    pool = pool_of(fake)
    one = len(files[pool[0]])
    proxy = await make_proxy(workers=2, max_size=3 * one + one // 2, pin_networks=BUILD_NET)
    base = await own_worker(proxy)
    for _ in range(2):  # stored, then answered by the worker from its memory
        status, body, _ = await get(f"{base}/archive/debian/{RUNS[0]}/{pool[0]}")
        assert status == 200 and body == files[pool[0]]
    async with build_session() as builder:
        status, lease = await call(builder, "POST", f"{base}/pins")  # relayed to the primary
        assert status == 201 and lease["expires_in"] == 3600
        assert proxy.server.board is not None and proxy.server.board.pinning
        await fetch_all(builder, base, fake, pool[:2])  # a hit and a miss, both the build's
        async with aiohttp.ClientSession() as http:
            await fetch_all(http, base, fake, pool[2:])  # another client's
        await proxy.server.proxy.cache.evictor.settled()
        assert on_disk(proxy, files[pool[0]]) and on_disk(proxy, files[pool[1]])
        assert sum(on_disk(proxy, files[p]) for p in pool) <= 3
        status, done = await call(builder, "DELETE", f"{base}/pins/{lease['lease']}")
        assert status == 200 and done["blobs"] == 2
    assert not proxy.server.board.pinning  # workers answer hits themselves again


async def test_only_pinning_networks_open_leases_or_pin(
    fake: FakeSnapshot,
    make_proxy: MakeProxy,
    own_worker: OwnWorker,  # noqa: F811
) -> None:
    files = fake.runs["debian"][0].files
    pool = pool_of(fake)
    one = len(files[pool[0]])
    proxy = await make_proxy(workers=2, max_size=3 * one + one // 2, pin_networks=("192.0.2.0/24",))
    base = await own_worker(proxy)
    async with aiohttp.ClientSession() as http:
        for url in (proxy.url, base):
            status, text = await call(http, "POST", f"{url}/pins")
            assert status == 403 and text == "/pins is not served to this address\n"
        pins = proxy.server.proxy.cache.pins
        pins.open(600)  # a build elsewhere has one open
        # A client that claims to be a worker's pinning request pins nothing.
        for path in pool:
            for url in (proxy.url, base):
                async with http.get(
                    f"{url}/archive/debian/{RUNS[0]}/{path}", headers={"X-Reprobase-Pin": "1"}
                ) as resp:
                    assert resp.status == 200 and await resp.read() == files[path]
        await proxy.server.proxy.cache.evictor.settled()
        assert pins.bytes == 0 and metric(proxy, "evictions_total") == len(pool) - 3


async def test_leases_are_bounded(
    fake: FakeSnapshot, make_proxy: MakeProxy, http: aiohttp.ClientSession
) -> None:
    proxy = await make_proxy(max_size=1 << 20)
    status, lease = await call(http, "POST", f"{proxy.url}/pins?ttl=1e9")
    assert status == 201 and lease["expires_in"] == MAX_TTL
    for ttl in ("0", "-5", "nan", "soon"):
        status, text = await call(http, "POST", f"{proxy.url}/pins?ttl={ttl}")
        assert status == 400 and "not a positive number" in text
    for _ in range(MAX_LEASES - 1):
        assert (await call(http, "POST", f"{proxy.url}/pins"))[0] == 201
    status, text = await call(http, "POST", f"{proxy.url}/pins")
    assert status == 429 and text == f"{MAX_LEASES} pin leases are open already\n"
    assert (await call(http, "POST", f"{proxy.url}/pins/nosuchlease"))[0] == 404
    assert (await call(http, "PUT", f"{proxy.url}/pins"))[0] == 405
    status, listing = await call(http, "GET", f"{proxy.url}/pins")
    assert status == 200 and len(listing["leases"]) == MAX_LEASES
    assert lease["lease"] not in str(listing)  # the list names no lease's whole id


def test_pins_end_with_their_lease_and_hold_at_most_the_cap() -> None:
    now = [0.0]
    changes: list[bool] = []
    pins = Pins(limit=100, on_change=changes.append, clock=lambda: now[0])
    pins.hold("a" * 64, 10)  # no lease: nothing held
    assert pins.bytes == 0 and not pins.held("a" * 64)
    first = pins.open(60)
    second = pins.open(120)
    pins.hold("a" * 64, 60)
    pins.hold("b" * 64, 60)  # would pass the cap: refused, and each lease is told
    assert pins.bytes == 60 and pins.held("a" * 64) and not pins.held("b" * 64)
    assert first.refused == second.refused == 1 and pins.refused == 1
    now[0] = 61.0  # the first lease expired; the second still holds it
    assert pins.held("a" * 64) and list(pins.leases) == [second.id]
    assert pins.renew(first.id, 60) is None
    renewed = pins.renew(second.id, 10 * MAX_TTL)
    assert renewed is not None and renewed.expires == 61.0 + MAX_TTL
    now[0] = 62.0 + MAX_TTL  # a build that died: its lease ends by itself
    assert not pins.held("a" * 64) and pins.bytes == 0 and pins.kept() == set()
    assert changes == [True, False]


async def test_eviction_after_a_lease_expired(parts: Parts) -> None:  # noqa: F811
    """An expired lease keeps nothing: the next pass evicts what it held."""
    blobs = [await parts.put(bytes([n]) * 10) for n in range(3)]
    now = [0.0]
    pins = Pins(limit=25, clock=lambda: now[0])
    evictor = Evictor(
        ProxyConfig(cache_dir=parts.config.cache_dir, max_size=25),
        parts.metrics,
        parts.index,
        parts.store,
        AccessTimes(parts.index, parts.metrics),
        lambda sha: None,
        lambda: None,
        pins,
    )
    pins.open(30)
    pins.hold(blobs[0].sha256, blobs[0].size)
    for b in blobs:
        evictor.added(b.size)
    await evictor.settled()
    assert parts.store.path(blobs[0].sha256).exists()  # the oldest, but held
    assert not parts.store.path(blobs[1].sha256).exists()
    now[0] = 31.0  # the build died: its lease is over
    evictor.added(10)  # one more blob's worth
    await evictor.settled()
    assert not parts.store.path(blobs[0].sha256).exists()
    assert evictor.size == 20


async def test_the_factory_pins_for_the_length_of_a_build(
    fake: FakeSnapshot, make_proxy: MakeProxy
) -> None:
    """``proxyctl.pinned`` (the double build's call) opens a lease and gives it back;
    against no proxy, or one that cannot pin, the build just goes on."""
    proxy = await make_proxy(max_size=1 << 20)
    pins = proxy.server.proxy.cache.pins

    def build() -> tuple[str | None, int]:
        with proxyctl.pinned(proxy.url + "/") as lease:
            return lease, len(pins.leases)

    lease, during = await asyncio.to_thread(build)
    assert lease is not None and during == 1 and pins.leases == {}

    def no_pins() -> list[str | None]:
        seen = []
        for url in (None, fake.snapshot_base):  # no proxy; a server without /pins
            with proxyctl.pinned(url) as got:
                seen.append(got)
        return seen

    assert await asyncio.to_thread(no_pins) == [None, None]


async def test_without_a_cap_a_lease_holds_nothing_and_workers_keep_their_hits(
    fake: FakeSnapshot,
    make_proxy: MakeProxy,
    own_worker: OwnWorker,  # noqa: F811
) -> None:
    proxy = await make_proxy(workers=2, pin_networks=BUILD_NET)  # no --max-size
    base = await own_worker(proxy)
    files = fake.runs["debian"][0].files
    pool = pool_of(fake)
    async with build_session() as builder:
        status, lease = await call(builder, "POST", f"{base}/pins")
        assert status == 201
        assert proxy.server.board is not None and not proxy.server.board.pinning
        for _ in range(2):
            await fetch_all(builder, base, fake, pool[:1])
        assert proxy.server.board.totals()["hits_total"][()] == 1  # the worker's own hit
        status, done = await call(builder, "DELETE", f"{base}/pins/{lease['lease']}")
        assert status == 200 and done["blobs"] == 0
    assert on_disk(proxy, files[pool[0]])
