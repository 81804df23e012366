"""A hostile or broken upstream: encodings, redirects, sizes, trickles, deadlines.

Each test gives the fake upstream one misbehaviour and checks the bytes and statuses
clients get, how often upstream was asked, and what the metrics say.
"""

from __future__ import annotations

import asyncio
import gzip
import time
from collections.abc import Awaitable, Callable

import aiohttp
import pytest
from yarl import URL

from cache_proxy.upstream import Pace, redirect_allowed
from tests.fakesnap import FakeSnapshot, sha1
from tests.hostile_fixtures import *  # noqa: F403
from tests.hostile_fixtures import raw_get
from tests.proxy_fixtures import *  # noqa: F403
from tests.proxy_fixtures import RUNS, Proxy, metric

MakeProxy = Callable[..., Awaitable[Proxy]]
POOL = "pool/main/p/pkg1/pkg1_1.0_all.deb"
INRELEASE = "dists/bookworm/InRelease"
PKGS_XZ = "dists/bookworm/main/binary-amd64/Packages.xz"


def data(fake: FakeSnapshot, path: str = POOL) -> bytes:
    return fake.runs["debian"][0].files[path]


def file_path(fake: FakeSnapshot, path: str = POOL) -> str:
    return f"/file/{sha1(data(fake, path))}"


async def fetch(http: aiohttp.ClientSession, url: str) -> tuple[int, bytes]:
    async with http.get(url) as resp:
        return resp.status, await resp.read()


async def fetch_like_apt(http: aiohttp.ClientSession, url: str) -> tuple[int, bytes]:
    """apt retries a body that was cut off; a complete wrong body would be accepted."""
    for _ in range(4):
        try:
            return await fetch(http, url)
        except aiohttp.ClientPayloadError:
            continue
    raise AssertionError("never completed")


# ------------------------------------------------------------------ encodings
async def test_identity_asked_and_gzip_refused_then_next_mirror(
    fake: FakeSnapshot, make_proxy: MakeProxy, http: aiohttp.ClientSession
) -> None:
    honest = FakeSnapshot(fake.runs)
    await honest.start()
    try:
        proxy = await make_proxy(upstreams=(fake.snapshot_base, honest.snapshot_base))
        path = f"/archive/debian/{RUNS[0]}/{INRELEASE}"
        fake.inject(path, "gzip", times=100)
        status, body = await fetch(http, proxy.archive_url("debian", RUNS[0], INRELEASE))
        assert status == 200 and body == data(fake, INRELEASE)
        assert body != gzip.compress(data(fake, INRELEASE), mtime=0)
        assert fake.count(path) == 1  # refused at once, not retried on that mirror
        assert honest.count(path) == 1
        assert metric(proxy, "refused_total", reason="encoding") == 1
        assert set(fake.accept_encodings) == {"identity"}
        assert set(honest.accept_encodings) == {"identity"}
        # What was stored is the plain file.
        status, body = await fetch(http, proxy.archive_url("debian", RUNS[0], INRELEASE))
        assert body == data(fake, INRELEASE) and honest.count(path) == 1
    finally:
        await honest.stop()


async def test_gzip_from_the_only_mirror_is_an_error_and_not_stored(
    fake: FakeSnapshot, make_proxy: MakeProxy, http: aiohttp.ClientSession
) -> None:
    proxy = await make_proxy()
    path = f"/archive/debian/{RUNS[0]}/{INRELEASE}"
    fake.inject(path, "gzip", times=1)
    status, body = await fetch(http, proxy.archive_url("debian", RUNS[0], INRELEASE))
    assert status == 502 and b"Content-Encoding" in body
    status, body = await fetch(http, proxy.archive_url("debian", RUNS[0], INRELEASE))
    assert status == 200 and body == data(fake, INRELEASE)
    assert fake.count(path) == 2


async def test_gzip_refused_in_recorder_mode_too(
    fake: FakeSnapshot, make_proxy: MakeProxy, http: aiohttp.ClientSession
) -> None:
    proxy = await make_proxy(record=True)
    fake.inject(f"/mirror/debian/{INRELEASE}", "gzip", times=1)
    status, _ = await fetch(http, proxy.archive_url("debian", RUNS[0], INRELEASE))
    assert status != 200
    status, body = await fetch(http, proxy.archive_url("debian", RUNS[0], INRELEASE))
    assert status == 200 and body == data(fake, INRELEASE)


# ------------------------------------------------------------------ redirects
def test_redirect_rule_compares_scheme_host_and_port() -> None:
    base = "http://mirror.test:8080/archive/"
    here = URL("http://mirror.test:8080/archive/debian/20240101T000000Z/pool/x.deb")
    ok = [
        "http://mirror.test:8080/archive/debian/20240102T000000Z/pool/x.deb",
        "http://MIRROR.test:8080/file/" + "a" * 40,
    ]
    refused = [
        "http://mirror.test:8081/archive/debian/x",  # another port
        "https://mirror.test:8080/archive/debian/x",  # another scheme
        "http://other.test:8080/archive/debian/x",  # another host
        "http://mirror.test:8080/etc/passwd",  # off the base
        "http://mirror.test:8081/file/" + "a" * 40,  # another origin's door
        "ftp://mirror.test:8080/archive/x",
    ]
    for url in ok:
        assert redirect_allowed(here, URL(url), [base]), url
    for url in refused:
        assert not redirect_allowed(here, URL(url), [base]), url
    assert redirect_allowed(here, URL("https://cdn.test/any/path"), [base], ["https://cdn.test"])
    assert not redirect_allowed(here, URL("http://cdn.test/any"), [base], ["https://cdn.test"])
    # Default ports are ports: http://h/ and http://h:80/ are one origin.
    assert redirect_allowed(
        URL("http://h/archive/a"), URL("http://h:80/archive/b"), ["http://h/archive/"]
    )


@pytest.mark.parametrize("other", ["port", "scheme"])
async def test_redirect_to_another_port_or_scheme_is_refused(
    fake: FakeSnapshot,
    evil: FakeSnapshot,
    make_proxy: MakeProxy,
    http: aiohttp.ClientSession,
    other: str,
) -> None:
    proxy = await make_proxy()
    evil_data = evil.runs["debian"][0].files[POOL]
    where = (
        f"{evil.origin}/file/{sha1(evil_data)}"
        if other == "port"
        else f"https://127.0.0.1:{fake.port}/file/{sha1(data(fake))}"
    )
    pool = f"/archive/debian/{RUNS[0]}/{POOL}"
    fake.inject(pool, "redirect", times=100, location=where)
    status, body = await fetch(http, proxy.archive_url("debian", RUNS[0], POOL))
    assert status == 502 and b"refusing redirect" in body
    assert evil.count("*") == 0 and body != evil_data
    assert metric(proxy, "refused_total", reason="redirect") >= 1
    fake.faults.clear()
    status, body = await fetch(http, proxy.archive_url("debian", RUNS[0], POOL))
    assert status == 200 and body == data(fake)


async def test_redirect_to_an_allowed_origin_is_followed(
    fake: FakeSnapshot, make_proxy: MakeProxy, http: aiohttp.ClientSession
) -> None:
    # The same bytes on a CDN origin that is on the allow-list.
    cdn = FakeSnapshot(fake.runs)
    await cdn.start()
    try:
        proxy = await make_proxy(redirect_origins=(cdn.origin,))
        fake.inject(
            f"/archive/debian/{RUNS[0]}/{POOL}",
            "redirect",
            location=f"{cdn.origin}{file_path(fake)}",
        )
        status, body = await fetch(http, proxy.archive_url("debian", RUNS[0], POOL))
        assert status == 200 and body == data(fake)
        assert cdn.count(file_path(fake)) == 1 and fake.count(file_path(fake)) == 0
    finally:
        await cdn.stop()


# ---------------------------------------------------------------- size bounds
async def test_oversized_header_is_refused(
    fake: FakeSnapshot, make_proxy: MakeProxy, http: aiohttp.ClientSession
) -> None:
    """A 64 KiB header field: that mirror is given up (the next one would be asked)."""
    proxy = await make_proxy()
    fake.inject(file_path(fake), "bigheader", times=1)
    status, body = await fetch(http, proxy.archive_url("debian", RUNS[0], POOL))
    assert status == 502 and len(body) < 1024
    assert fake.count(file_path(fake)) == 1
    status, body = await fetch(http, proxy.archive_url("debian", RUNS[0], POOL))
    assert status == 200 and body == data(fake)


async def test_body_beyond_expected_size_is_refused(
    fake: FakeSnapshot, make_proxy: MakeProxy, http: aiohttp.ClientSession
) -> None:
    proxy = await make_proxy()
    await fetch(http, proxy.archive_url("debian", RUNS[0], INRELEASE))  # sizes known now
    path = f"/archive/debian/{RUNS[0]}/{PKGS_XZ}"
    fake.inject(path, "pad", times=1)  # the right bytes, then 4 KiB more, no length
    status, body = await fetch_like_apt(http, proxy.archive_url("debian", RUNS[0], PKGS_XZ))
    assert status == 200 and body == data(fake, PKGS_XZ)
    assert fake.count(path) == 2
    assert metric(proxy, "verify_failures_total") == 1


async def test_body_of_unknown_length_is_capped(
    fake: FakeSnapshot, make_proxy: MakeProxy, http: aiohttp.ClientSession
) -> None:
    fake.framing = "chunked"  # no Content-Length anywhere, and nothing listed yet
    proxy = await make_proxy(max_body=1000)
    target = f"/archive/debian/{RUNS[0]}/{POOL}"
    got = await raw_get(proxy.server.address, target)  # HTTP/1.1: chunked, then cut
    assert got.status != 200 or (not got.chunked_complete and got.reset)
    assert fake.count(file_path(fake)) == 4  # every attempt refused
    got = await raw_get(proxy.server.address, target, version="1.0")  # waits, then an error
    assert got.status == 502
    assert not [p for p in (proxy.server.config.cache_dir / "blobs").rglob("*") if p.is_file()]


# ------------------------------------------------------------- time bounds
def test_pace_decisions() -> None:
    pace = Pace(min_rate=100, window=2, slow_rate=1000, slow_after=1, deadline=10, start=0)
    assert pace.note(0.5, 10) is None and not pace.slow(0.5)  # too young to judge
    assert pace.note(1.5, 900) is None and pace.slow(1.5)  # 890 B in the last second
    assert pace.note(2.5, 5000) is None and not pace.slow(2.5)
    assert pace.note(4.6, 5050) is not None  # 50 B in the last 2 s
    late = Pace(min_rate=0, window=2, slow_rate=0, slow_after=1, deadline=3, start=0)
    reason = late.note(3.5, 10**9)
    assert reason is not None and "deadline" in reason


@pytest.mark.slow
async def test_trickling_downloads_do_not_hold_the_slots(
    fake: FakeSnapshot, make_proxy: MakeProxy, http: aiohttp.ClientSession
) -> None:
    """Two trickles (100 B/s) on a 2-connection host: another cold fetch still goes."""
    proxy = await make_proxy(
        per_host_connections=2, slow_after=0.3, slow_rate=10_000, min_rate=1000, rate_window=1.5
    )
    trickled = ["pool/main/p/pkg1/pkg1_1.0_all.deb", "pool/main/p/pkg2/pkg2_1.0_all.deb"]
    for path in trickled:
        fake.inject(file_path(fake, path), "trickle", times=1, delay=0.01)
    slow = [
        asyncio.create_task(fetch_like_apt(http, proxy.archive_url("debian", RUNS[0], p)))
        for p in trickled
    ]
    for _ in range(500):  # both trickles are being answered
        if fake.active >= 2:
            break
        await asyncio.sleep(0.01)
    assert fake.active >= 2
    other = "pool/main/p/pkg3/pkg3_1.0_all.deb"
    start = time.monotonic()
    status, body = await fetch(http, proxy.archive_url("debian", RUNS[0], other))
    waited = time.monotonic() - start
    assert status == 200 and body == data(fake, other)
    assert waited < 1.2, f"a cold fetch waited {waited:.2f} s behind trickles"
    assert metric(proxy, "slow_downloads_total") >= 1
    results = await asyncio.gather(*slow)  # the trickles fall under the minimum rate
    assert [b for _, b in results] == [data(fake, p) for p in trickled]
    assert metric(proxy, "slow_aborts_total") == 2
    assert all(fake.count(file_path(fake, p)) == 2 for p in trickled)


async def test_deadline_drops_an_attempt_that_takes_too_long(
    fake: FakeSnapshot, make_proxy: MakeProxy, http: aiohttp.ClientSession
) -> None:
    proxy = await make_proxy(deadline=0.4, min_rate=0, slow_after=0.1)
    fake.inject(file_path(fake), "trickle", times=1, delay=0.002)  # ~9 s for the file
    start = time.monotonic()
    status, body = await fetch_like_apt(http, proxy.archive_url("debian", RUNS[0], POOL))
    assert status == 200 and body == data(fake)
    assert time.monotonic() - start < 5
    assert metric(proxy, "slow_aborts_total") == 1
    assert fake.count(file_path(fake)) == 2
