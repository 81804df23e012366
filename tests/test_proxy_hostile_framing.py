"""Nothing served wrong, for any client: HTTP/1.0 and HTTP/1.1 on raw sockets.

The rule (cache_proxy.app.ProxyApp._from_flight): a body is only ever complete, by the
client's own framing, once it was verified. Here a pool file no index lists (so
nothing but upstream's own framing, or a /file/ SHA-1, can vouch for it) is cut or
corrupted upstream, and each HTTP version must see an error or an incomplete body,
never a complete wrong one.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from cache_proxy.config import ProxyConfig
from cache_proxy.server import ProxyServer
from tests.fakesnap import FakeSnapshot, sha1
from tests.hostile_fixtures import Raw, raw_get
from tests.proxy_fixtures import FAST_RETRY, RUNS, default_runs

POOL = "pool/main/p/pkg1/pkg1_1.0_all.deb"
TARGET = f"/archive/debian/{RUNS[0]}/{POOL}"
Start = Callable[..., Awaitable[tuple[FakeSnapshot, ProxyServer]]]


@pytest.fixture
async def start(tmp_path: Path) -> AsyncIterator[Start]:
    """A fake upstream (its framing and pool redirects chosen) and a proxy on it."""
    started: list[Any] = []

    async def go(
        framing: str = "length", redirect_pool: bool = True, **config: Any
    ) -> tuple[FakeSnapshot, ProxyServer]:
        fake = FakeSnapshot(default_runs(), redirect_pool=redirect_pool)
        fake.framing = framing
        await fake.start()
        started.append(fake)
        proxy = ProxyServer(
            ProxyConfig(
                cache_dir=tmp_path / f"cache{len(started)}",
                upstreams=(fake.snapshot_base,),
                host="127.0.0.1",
                port=0,
                retry=FAST_RETRY,
                access_log=None,
                **config,
            )
        )
        await proxy.start()
        started.append(proxy)
        return fake, proxy

    yield go
    for thing in reversed(started):
        await thing.stop()


async def settle(proxy: ProxyServer) -> None:
    """Wait for the downloads in flight (retries included) to end."""
    flights = list(proxy.proxy.cache.flights.values())
    await asyncio.gather(*(asyncio.shield(f.done) for f in flights), return_exceptions=True)


def persistent(fake: FakeSnapshot) -> None:
    """Every attempt cut, resumes included (a Range is ignored and cut again)."""
    fake.honour_ranges = False
    fake.faults_on_ranges = True


def want(fake: FakeSnapshot) -> bytes:
    return fake.runs["debian"][0].files[POOL]


def never_complete_and_wrong(got: Raw, right: bytes) -> None:
    """The one thing that must never happen: a complete body, by the client's framing,
    that is not the file."""
    if got.status != 200:
        return
    if "content-length" in got.headers:
        n = int(got.headers["content-length"])
        assert len(got.body) < n or got.body == right, "complete by length, but wrong"
    elif got.headers.get("transfer-encoding") == "chunked":
        assert not got.chunked_complete or got.dechunked() == right, "complete chunks, wrong"
    else:  # close-delimited: only a reset says "cut"
        assert got.body == right and not got.reset, "close-delimited body cannot be cut"


@pytest.mark.parametrize("version", ["1.0", "1.1"])
async def test_unlisted_unframed_cut_upstream(start: Start, version: str) -> None:
    """No length, no hash: upstream's chunked answer is cut on every attempt."""
    fake, proxy = await start(framing="chunked", redirect_pool=False)
    persistent(fake)
    fake.inject(TARGET, "truncate", times=100)
    got = await raw_get(proxy.address, TARGET, version=version)
    await settle(proxy)
    never_complete_and_wrong(got, want(fake))
    if version == "1.0":
        # No framing could say "cut": the client waits for the verified blob.
        assert got.status == 502
    else:
        assert got.status == 200 and got.headers["transfer-encoding"] == "chunked"
        assert not got.chunked_complete and got.reset
    assert fake.count(TARGET) >= 4


@pytest.mark.parametrize("version", ["1.0", "1.1"])
async def test_unlisted_unframed_cut_once_is_healed_for_10(start: Start, version: str) -> None:
    fake, proxy = await start(framing="chunked", redirect_pool=False)
    fake.inject(TARGET, "truncate", times=1)
    got = await raw_get(proxy.address, TARGET, version=version)
    never_complete_and_wrong(got, want(fake))
    if version == "1.0":  # the verified blob, with its length
        assert got.status == 200 and got.body == want(fake)
        assert int(got.headers["content-length"]) == len(want(fake))
    # Either way the second attempt was stored, and is served whole now.
    again = await raw_get(proxy.address, TARGET, version=version)
    body = again.dechunked() if "transfer-encoding" in again.headers else again.body
    assert again.status == 200 and body == want(fake)


@pytest.mark.parametrize("version", ["1.0", "1.1"])
async def test_corrupt_with_sha1_never_complete(start: Start, version: str) -> None:
    """Right length, wrong bytes, caught by the /file/ SHA-1 only at the very end."""
    fake, proxy = await start()
    fake.inject(f"/file/{sha1(want(fake))}", "corrupt", times=100)
    got = await raw_get(proxy.address, TARGET, version=version)
    await settle(proxy)
    never_complete_and_wrong(got, want(fake))
    if got.status == 200:
        assert len(got.body) < int(got.headers["content-length"])
        assert got.reset  # a reset, not a clean close


@pytest.mark.parametrize("version", ["1.0", "1.1"])
async def test_cut_with_length_never_complete(start: Start, version: str) -> None:
    fake, proxy = await start(redirect_pool=False)
    persistent(fake)
    fake.inject(TARGET, "truncate", times=100)
    got = await raw_get(proxy.address, TARGET, version=version)
    await settle(proxy)
    never_complete_and_wrong(got, want(fake))
    assert got.status != 200 or got.reset


@pytest.mark.parametrize("version", ["1.0", "1.1"])
@pytest.mark.parametrize("framing", ["length", "chunked"])
async def test_healthy_answers_for_both_versions(start: Start, version: str, framing: str) -> None:
    fake, proxy = await start(framing=framing, redirect_pool=False)
    for _ in range(2):  # the miss, then the hit
        got = await raw_get(proxy.address, TARGET, version=version)
        body = got.dechunked() if "transfer-encoding" in got.headers else got.body
        assert got.status == 200 and body == want(fake) and not got.reset
    assert fake.count(TARGET) == 1


async def test_balancer_says_the_client_is_http10(start: Start) -> None:
    """Behind nginx (schedules/farm/nginx.conf) the replica sees HTTP/1.1 from the
    balancer; X-Reprobase-Client-Protocol names the client's version."""
    fake, proxy = await start(framing="chunked", redirect_pool=False)
    persistent(fake)
    fake.inject(TARGET, "truncate", times=100)
    got = await raw_get(proxy.address, TARGET, headers="X-Reprobase-Client-Protocol: HTTP/1.0\r\n")
    await settle(proxy)
    assert got.status == 502  # waited for a verified blob that never came
