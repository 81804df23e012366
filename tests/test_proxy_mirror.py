"""Mirror mode and forward mode against the fake snapshot server: bytes, hashes, counts."""

from __future__ import annotations

import asyncio
import hashlib

import aiohttp

from tests.fakesnap import FakeSnapshot, sha1
from tests.proxy_fixtures import *  # noqa: F403
from tests.proxy_fixtures import RUNS, Proxy, metric

POOL = "pool/main/p/pkg0/pkg0_1.0_all.deb"


async def get(
    http: aiohttp.ClientSession, url: str, **kw: object
) -> tuple[int, bytes, dict[str, str]]:
    async with http.get(url, **kw) as resp:  # type: ignore[arg-type]
        return resp.status, await resp.read(), dict(resp.headers)


async def test_miss_then_hit_same_bytes(fake: FakeSnapshot, make_proxy, http) -> None:  # type: ignore[no-untyped-def]
    proxy: Proxy = await make_proxy()
    want = fake.runs["debian"][0].files[POOL]
    for _ in range(3):
        status, body, headers = await get(http, proxy.archive_url("debian", RUNS[0], POOL))
        assert status == 200
        assert hashlib.sha256(body).digest() == hashlib.sha256(want).digest()
        assert headers["Content-Type"] == "application/vnd.debian.binary-package"
    assert fake.count(f"/file/{sha1(want)}") == 1
    assert metric(proxy, "hits_total") == 2
    assert metric(proxy, "misses_total") == 1


async def test_apt_flow_then_other_timestamps_share_pool(
    fake: FakeSnapshot, make_proxy, http
) -> None:  # type: ignore[no-untyped-def]
    proxy: Proxy = await make_proxy()
    for ts in RUNS:
        run = fake.resolve("debian", ts)
        assert run is not None
        for path in ("dists/bookworm/InRelease", "dists/bookworm/main/binary-amd64/Packages.xz"):
            status, body, _ = await get(http, proxy.archive_url("debian", ts, path))
            assert status == 200 and body == run.files[path]
        for path, data in run.files.items():
            if path.startswith("pool/"):
                status, body, _ = await get(http, proxy.archive_url("debian", ts, path))
                assert status == 200 and body == data
    distinct = {
        sha1(d) for r in fake.runs["debian"] for p, d in r.files.items() if p.startswith("pool/")
    }
    # each distinct pool file fetched exactly once, whatever the number of timestamps
    assert sum(fake.count(f"/file/{s}") for s in distinct) == len(distinct)


async def test_timestamp_spellings_share_one_entry(fake: FakeSnapshot, make_proxy, http) -> None:  # type: ignore[no-untyped-def]
    proxy: Proxy = await make_proxy()
    path = "dists/bookworm/InRelease"
    want = fake.runs["debian"][1].files[path]
    for spelling in ("20240102T000000Z", "20240102", "2024-01-02T00:00:00Z", "20240102T120000Z"):
        status, body, _ = await get(http, proxy.archive_url("debian", spelling, path))
        assert status == 200 and body == want
    assert fake.count(f"/archive/debian/20240102T000000Z/{path}") == 1


async def test_single_flight_many_clients(fake: FakeSnapshot, make_proxy, http) -> None:  # type: ignore[no-untyped-def]
    proxy: Proxy = await make_proxy()
    fake.slow_seconds = 0.3
    want = fake.runs["debian"][0].files[POOL]
    results = await asyncio.gather(
        *(get(http, proxy.archive_url("debian", RUNS[0], POOL)) for _ in range(16))
    )
    assert all(s == 200 and b == want for s, b, _ in results)
    assert fake.count(f"/file/{sha1(want)}") == 1
    assert metric(proxy, "coalesced_total") == 15


async def test_forward_proxy_mode(fake: FakeSnapshot, make_proxy, http) -> None:  # type: ignore[no-untyped-def]
    proxy: Proxy = await make_proxy()
    want = fake.runs["debian"][0].files[POOL]
    url = f"{fake.snapshot_base}debian/{RUNS[0]}/{POOL}"
    status, body, _ = await get(http, url, proxy=proxy.url)
    assert status == 200 and body == want
    url2 = f"http://snapshot.debian.org/archive/debian/{RUNS[0]}/{POOL}"
    status, body, _ = await get(http, url2, proxy=proxy.url)
    assert status == 200 and body == want
    assert fake.count(f"/file/{sha1(want)}") == 1
    status, _, _ = await get(http, "http://example.com/archive/debian/20240101/x", proxy=proxy.url)
    assert status == 403


async def test_future_timestamp_is_volatile(fake: FakeSnapshot, make_proxy, http) -> None:  # type: ignore[no-untyped-def]
    proxy: Proxy = await make_proxy()
    path = "dists/bookworm/InRelease"
    status, body, headers = await get(http, proxy.archive_url("debian", "20990101", path))
    assert status == 200 and body == fake.runs["debian"][-1].files[path]
    assert headers["Cache-Control"] == "no-cache"
    status, body, _ = await get(http, proxy.archive_url("debian", RUNS[-1], path))
    assert body == fake.runs["debian"][-1].files[path]
    assert fake.count(f"/archive/debian/{RUNS[-1]}/{path}") == 1  # the run itself is immutable
