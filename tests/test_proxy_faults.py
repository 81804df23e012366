"""Upstream faults: retries, Retry-After, fail-over, verification, disconnects, 404s."""

from __future__ import annotations

import asyncio
import time

import aiohttp

from tests.fakesnap import FakeSnapshot, sha1
from tests.proxy_fixtures import *  # noqa: F403
from tests.proxy_fixtures import RUNS, Proxy, metric

POOL = "pool/main/p/pkg1/pkg1_1.0_all.deb"
PKGS_XZ = "dists/bookworm/main/binary-amd64/Packages.xz"


async def fetch(http: aiohttp.ClientSession, url: str) -> tuple[int, bytes]:
    async with http.get(url) as resp:
        return resp.status, await resp.read()


async def fetch_like_apt(http: aiohttp.ClientSession, url: str) -> tuple[int, bytes]:
    """apt retries a body that was cut off; a complete wrong body would be accepted."""
    for _ in range(3):
        try:
            return await fetch(http, url)
        except aiohttp.ClientPayloadError:
            continue
    raise AssertionError("never completed")


def file_path(fake: FakeSnapshot, path: str = POOL, run: int = 0) -> str:
    return f"/file/{sha1(fake.runs['debian'][run].files[path])}"


async def test_retry_after_is_honoured(fake: FakeSnapshot, make_proxy, http) -> None:  # type: ignore[no-untyped-def]
    proxy: Proxy = await make_proxy()
    fake.inject(file_path(fake), "429", times=1, retry_after="1")
    start = time.monotonic()
    status, body = await fetch(http, proxy.archive_url("debian", RUNS[0], POOL))
    assert status == 200 and body == fake.runs["debian"][0].files[POOL]
    assert time.monotonic() - start >= 0.9
    assert fake.count(file_path(fake)) == 2
    assert metric(proxy, "upstream_requests_total", status="429") == 1
    assert metric(proxy, "retries_total") == 1


async def test_503_and_resets_are_retried(fake: FakeSnapshot, make_proxy, http) -> None:  # type: ignore[no-untyped-def]
    proxy: Proxy = await make_proxy()
    fake.inject(file_path(fake), "503", times=1)
    fake.inject(file_path(fake), "reset", times=1)
    status, body = await fetch(http, proxy.archive_url("debian", RUNS[0], POOL))
    assert status == 200 and body == fake.runs["debian"][0].files[POOL]
    assert fake.count(file_path(fake)) == 3
    assert metric(proxy, "retries_total") >= 1  # aiohttp itself retries a reset keep-alive once


async def test_truncated_body_never_stored_or_served_whole(
    fake: FakeSnapshot, make_proxy, http
) -> None:  # type: ignore[no-untyped-def]
    proxy: Proxy = await make_proxy()
    want = fake.runs["debian"][0].files[POOL]
    fake.inject(file_path(fake), "truncate", times=1)
    status, body = await fetch_like_apt(http, proxy.archive_url("debian", RUNS[0], POOL))
    assert status == 200 and body == want
    status, body = await fetch(http, proxy.archive_url("debian", RUNS[0], POOL))
    assert body == want
    assert fake.count(file_path(fake)) == 2


async def test_corrupt_index_checked_against_release(fake: FakeSnapshot, make_proxy, http) -> None:  # type: ignore[no-untyped-def]
    proxy: Proxy = await make_proxy()
    run = fake.runs["debian"][0]
    await fetch(http, proxy.archive_url("debian", RUNS[0], "dists/bookworm/InRelease"))
    fake.inject(f"/archive/debian/{RUNS[0]}/{PKGS_XZ}", "corrupt", times=1)
    status, body = await fetch_like_apt(http, proxy.archive_url("debian", RUNS[0], PKGS_XZ))
    assert status == 200 and body == run.files[PKGS_XZ]
    assert fake.count(f"/archive/debian/{RUNS[0]}/{PKGS_XZ}") == 2
    assert metric(proxy, "verify_failures_total") == 1


async def test_corrupt_pool_file_checked_against_packages(
    fake: FakeSnapshot, make_proxy, http
) -> None:  # type: ignore[no-untyped-def]
    proxy: Proxy = await make_proxy()
    for path in ("dists/bookworm/InRelease", PKGS_XZ):
        await fetch(http, proxy.archive_url("debian", RUNS[0], path))
    fake.inject(file_path(fake), "corrupt", times=1)
    _status, body = await fetch_like_apt(http, proxy.archive_url("debian", RUNS[0], POOL))
    assert body == fake.runs["debian"][0].files[POOL]
    assert metric(proxy, "verify_failures_total") == 1


async def test_404_is_not_retried(fake: FakeSnapshot, make_proxy, http) -> None:  # type: ignore[no-untyped-def]
    proxy: Proxy = await make_proxy()
    status, _ = await fetch(http, proxy.archive_url("debian", RUNS[0], "pool/main/n/no/no.deb"))
    assert status == 404
    assert fake.count("/archive/debian/*/pool/main/n/no/no.deb") == 1
    status, _ = await fetch(http, proxy.archive_url("debian", "19990101", "dists/x/InRelease"))
    assert status == 404


async def test_retries_exhausted_is_an_error_not_a_body(
    fake: FakeSnapshot, make_proxy, http
) -> None:  # type: ignore[no-untyped-def]
    proxy: Proxy = await make_proxy()
    fake.inject(file_path(fake), "503", times=100)
    status, _ = await fetch(http, proxy.archive_url("debian", RUNS[0], POOL))
    assert status in (502, 503, 504)
    assert fake.count(file_path(fake)) == 4  # attempts per mirror


async def test_failover_to_next_mirror(fake: FakeSnapshot, make_proxy, http) -> None:  # type: ignore[no-untyped-def]
    dead = "http://127.0.0.1:9/archive/"  # discard port: connection refused
    proxy: Proxy = await make_proxy(upstreams=(dead, fake.snapshot_base))
    status, body = await fetch(http, proxy.archive_url("debian", RUNS[0], POOL))
    assert status == 200 and body == fake.runs["debian"][0].files[POOL]
    assert metric(proxy, "failovers_total") == 1


async def test_client_disconnect_does_not_cancel_download(
    fake: FakeSnapshot, make_proxy, http
) -> None:  # type: ignore[no-untyped-def]
    proxy: Proxy = await make_proxy()
    want = fake.runs["debian"][0].files[POOL]
    fake.inject(file_path(fake), "slow", times=1, delay=0.05)
    async with http.get(proxy.archive_url("debian", RUNS[0], POOL)) as resp:
        assert resp.status == 200
        await resp.content.readexactly(100)
        resp.close()  # the client goes away mid-body
    flights = list(proxy.server.proxy.cache.flights.values())
    if flights:
        await asyncio.shield(flights[0].done)
    status, body = await fetch(http, proxy.archive_url("debian", RUNS[0], POOL))
    assert status == 200 and body == want
    assert fake.count(file_path(fake)) == 1
    assert metric(proxy, "hits_total") == 1


async def test_index_verified_even_if_release_was_not_asked(
    fake: FakeSnapshot, make_proxy, http
) -> None:  # type: ignore[no-untyped-def]
    proxy: Proxy = await make_proxy()
    run = fake.runs["debian"][0]
    fake.inject(f"/archive/debian/{RUNS[0]}/{PKGS_XZ}", "corrupt", times=1)
    status, body = await fetch_like_apt(http, proxy.archive_url("debian", RUNS[0], PKGS_XZ))
    assert status == 200 and body == run.files[PKGS_XZ]
    assert fake.count(f"/archive/debian/{RUNS[0]}/dists/bookworm/InRelease") == 1
    assert metric(proxy, "verify_failures_total") == 1


async def test_per_host_connection_limit(fake: FakeSnapshot, make_proxy, http) -> None:  # type: ignore[no-untyped-def]
    proxy: Proxy = await make_proxy(per_host_connections=2)
    run = fake.runs["debian"][0]
    pool = sorted(p for p in run.files if p.startswith("pool/"))
    fake.slow_seconds = 0.1
    results = await asyncio.gather(
        *(fetch(http, proxy.archive_url("debian", RUNS[0], p)) for p in pool)
    )
    assert [b for _, b in results] == [run.files[p] for p in pool]
    assert fake.max_active <= 2
