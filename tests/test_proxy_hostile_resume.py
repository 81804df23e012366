"""Truncations healed invisibly: a cut upstream download is resumed with a Range request
and every waiting client's stream simply continues."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest

from tests.fakesnap import FakeSnapshot, make_runs, sha1
from tests.proxy_fixtures import *  # noqa: F403
from tests.proxy_fixtures import RUNS, Proxy, metric

MakeProxy = Callable[..., Awaitable[Proxy]]
POOL = "pool/main/p/pkg1/pkg1_1.0_all.deb"


def data(fake: FakeSnapshot, path: str = POOL) -> bytes:
    return fake.runs["debian"][0].files[path]


async def fetch(http: aiohttp.ClientSession, url: str) -> tuple[int, bytes]:
    """A client that does not retry: a cut stream fails the test."""
    async with http.get(url) as resp:
        return resp.status, await resp.read()


async def test_cut_download_resumes_and_the_stream_continues(
    fake: FakeSnapshot, make_proxy: MakeProxy, http: aiohttp.ClientSession
) -> None:
    proxy = await make_proxy()
    door = f"/file/{sha1(data(fake))}"
    fake.inject(door, "cut-at", at=1500)
    url = proxy.archive_url("debian", RUNS[0], POOL)
    results = await asyncio.gather(fetch(http, url), fetch(http, url))  # one flight, two readers
    assert results == [(200, data(fake)), (200, data(fake))]
    assert fake.range_requests == ["bytes=1500-"]
    assert fake.count(door) == 2  # the cut answer and its continuation
    assert metric(proxy, "resumes_total") == 1
    assert metric(proxy, "retries_total") == 0
    assert await fetch(http, url) == (200, data(fake))  # stored whole
    assert fake.count(door) == 2


async def test_resume_without_range_support_skips_what_was_sent(
    fake: FakeSnapshot, make_proxy: MakeProxy, http: aiohttp.ClientSession
) -> None:
    """A server that ignores Range answers 200 again: its first bytes are skipped (the
    SHA-1 of the /file/ door checks the joined result)."""
    proxy = await make_proxy()
    fake.honour_ranges = False
    door = f"/file/{sha1(data(fake))}"
    fake.inject(door, "cut-at", at=2000)
    assert await fetch(http, proxy.archive_url("debian", RUNS[0], POOL)) == (200, data(fake))
    assert fake.range_requests == ["bytes=2000-"]
    assert metric(proxy, "resumes_total") == 1


async def test_every_resume_cut_too_ends_the_stream_never_completes_it(
    fake: FakeSnapshot, make_proxy: MakeProxy, http: aiohttp.ClientSession
) -> None:
    proxy = await make_proxy(resumes=2)
    fake.honour_ranges = False  # every continuation is a whole answer, cut again
    fake.faults_on_ranges = True
    door = f"/file/{sha1(data(fake))}"
    fake.inject(door, "cut-at", at=1000, times=100)
    with pytest.raises(aiohttp.ClientPayloadError):
        await fetch(http, proxy.archive_url("debian", RUNS[0], POOL))
    fake.faults.clear()
    assert await fetch(http, proxy.archive_url("debian", RUNS[0], POOL)) == (200, data(fake))


@pytest.fixture
async def many() -> AsyncIterator[FakeSnapshot]:
    server = FakeSnapshot(
        {"debian": make_runs("debian", "bookworm", RUNS[:1], packages=40, size=64 << 10)}
    )
    await server.start()
    yield server
    await server.stop()


async def test_ten_percent_cut_costs_clients_nothing(
    many: FakeSnapshot, make_proxy: MakeProxy, http: aiohttp.ClientSession
) -> None:
    """snapshot.debian.org cuts about 1% of cache-miss answers; here 10% are cut."""
    run = many.runs["debian"][0]
    pool = sorted(p for p in run.files if p.startswith("pool/"))
    rng = random.Random(7)
    cut = rng.sample(pool, len(pool) // 10)
    for path in cut:
        many.inject(f"/file/{sha1(run.files[path])}", "truncate")
    proxy = await make_proxy(upstreams=(many.snapshot_base,))
    results = await asyncio.gather(
        *(fetch(http, proxy.archive_url("debian", RUNS[0], p)) for p in pool)
    )
    assert results == [(200, run.files[p]) for p in pool]  # no client saw a failure
    assert metric(proxy, "resumes_total") == len(cut)
    assert len(many.range_requests) == len(cut)
