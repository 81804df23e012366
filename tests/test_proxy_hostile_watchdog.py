"""A download the watchdog drops (under the minimum rate, past the deadline) is resumed
like a cut one: the waiting clients' streams go on, and nothing is fetched twice."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import aiohttp
import pytest

from tests.fakesnap import FakeSnapshot, sha1
from tests.proxy_fixtures import *  # noqa: F403
from tests.proxy_fixtures import RUNS, Proxy, metric

MakeProxy = Callable[..., Awaitable[Proxy]]
POOL = "pool/main/p/pkg1/pkg1_1.0_all.deb"


def data(fake: FakeSnapshot) -> bytes:
    return fake.runs["debian"][0].files[POOL]


async def fetch(http: aiohttp.ClientSession, url: str) -> tuple[int, str, bytes]:
    """A client that does not retry: a cut stream fails the test."""
    async with http.get(url) as resp:
        return resp.status, resp.headers["X-Cache"], await resp.read()


@pytest.mark.parametrize(
    "bounds",
    [
        {"min_rate": 2000.0, "rate_window": 0.3},  # a trickle of ~200 bytes/s
        {"deadline": 0.4, "min_rate": 0.0},  # a steady pace that takes too long
    ],
    ids=["min-rate", "deadline"],
)
async def test_a_dropped_slow_download_is_resumed_and_streams_go_on(
    fake: FakeSnapshot,
    make_proxy: MakeProxy,
    http: aiohttp.ClientSession,
    bounds: dict[str, float],
) -> None:
    proxy = await make_proxy(slow_after=0.1, **bounds)
    want = data(fake)
    door = f"/file/{sha1(want)}"
    fake.inject(door, "trickle", times=1, delay=0.005)  # the whole file would take ~20 s
    url = proxy.archive_url("debian", RUNS[0], POOL)
    loop = asyncio.get_running_loop()
    start = loop.time()
    results = await asyncio.gather(fetch(http, url), fetch(http, url))  # one flight, two readers
    assert loop.time() - start < 5
    assert sorted(results) == [(200, "COALESCED", want), (200, "MISS", want)]
    assert metric(proxy, "slow_aborts_total") == 1
    assert metric(proxy, "resumes_total") == 1 and metric(proxy, "retries_total") == 0
    [rng] = fake.range_requests  # continued where the trickle was dropped
    offset = int(rng.removeprefix("bytes=").removesuffix("-"))
    assert 0 < offset < len(want)
    assert fake.count(door) == 2  # the dropped answer and its continuation
    assert metric(proxy, "upstream_bytes_total") == len(want)  # not a byte twice
    assert await fetch(http, url) == (200, "HIT", want)  # stored whole
    assert fake.count(door) == 2


async def test_a_slow_continuation_is_dropped_too_and_resumed_again(
    fake: FakeSnapshot, make_proxy: MakeProxy, http: aiohttp.ClientSession
) -> None:
    """Each connection is paced from its own start; every drop is one more resume."""
    proxy = await make_proxy(slow_after=0.1, min_rate=2000.0, rate_window=0.3, resumes=3)
    fake.honour_ranges = False  # a continuation is the whole body again (skipped into:
    fake.faults_on_ranges = True  # the /file/ SHA-1 checks the join), and trickles too
    want = data(fake)
    door = f"/file/{sha1(want)}"
    fake.inject(door, "trickle", times=2, delay=0.005)
    status, _, body = await fetch(http, proxy.archive_url("debian", RUNS[0], POOL))
    assert status == 200 and body == want
    assert metric(proxy, "slow_aborts_total") == 2 and metric(proxy, "resumes_total") == 2
    assert len(fake.range_requests) == 2 and metric(proxy, "retries_total") == 0
    assert metric(proxy, "upstream_bytes_total") == len(want)
