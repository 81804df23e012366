"""snapshot.debian.org's own content-addressed door, /file/<sha1>, through the proxy."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import aiohttp

from tests.fakesnap import FakeSnapshot, sha1
from tests.proxy_fixtures import *  # noqa: F403
from tests.proxy_fixtures import RUNS, Proxy

MakeProxy = Callable[..., Awaitable[Proxy]]
POOL = "pool/main/p/pkg2/pkg2_1.0_all.deb"


async def get(
    http: aiohttp.ClientSession, url: str, **kw: str
) -> tuple[int, bytes, dict[str, str]]:
    async with http.get(url, **kw) as resp:  # type: ignore[arg-type]
        return resp.status, await resp.read(), dict(resp.headers)


async def test_file_door_fetches_once_and_verifies(
    fake: FakeSnapshot, make_proxy: MakeProxy, http: aiohttp.ClientSession
) -> None:
    proxy = await make_proxy()
    want = fake.runs["debian"][0].files[POOL]
    url = f"{proxy.url}/file/{sha1(want)}"
    fake.inject(f"/file/{sha1(want)}", "corrupt", times=1)  # right length, wrong bytes
    bodies = []
    for _ in range(3):
        try:
            status, body, headers = await get(http, url)
        except aiohttp.ClientPayloadError:
            continue  # cut off rather than completed wrong
        bodies.append((status, body, headers["X-Cache"]))
        if len(bodies) == 2:
            break
    assert [b[:2] for b in bodies] == [(200, want), (200, want)]
    assert bodies[-1][2] == "HIT"
    assert fake.count(f"/file/{sha1(want)}") == 2  # the corrupt answer, then the good one
    assert proxy.metrics.get("verify_failures_total") == 1
    assert headers["Content-Type"] == "application/octet-stream"
    assert "immutable" in headers["Cache-Control"]
    # The same bytes under an archive path are now a hit: one blob for both names.
    status, body, _ = await get(http, proxy.archive_url("debian", RUNS[0], POOL))
    assert status == 200 and body == want
    assert fake.count(f"/file/{sha1(want)}") == 2


async def test_file_door_finds_what_redirects_stored(
    fake: FakeSnapshot, make_proxy: MakeProxy, http: aiohttp.ClientSession
) -> None:
    proxy = await make_proxy()
    want = fake.runs["debian"][1].files[POOL]
    status, body, _ = await get(http, proxy.archive_url("debian", RUNS[1], POOL))
    assert status == 200 and body == want
    fake.reset_counts()
    status, body, headers = await get(http, f"{proxy.url}/file/{sha1(want)}")
    assert (status, body, headers["X-Cache"]) == (200, want, "HIT")
    # Forward-proxy spelling of the same URL, and a range of it.
    status, body, _ = await get(
        http, f"http://snapshot.debian.org/file/{sha1(want)}", proxy=proxy.url
    )
    assert status == 200 and body == want
    async with http.get(f"{proxy.url}/file/{sha1(want)}", headers={"Range": "bytes=3-9"}) as r:
        assert r.status == 206 and await r.read() == want[3:10]
    assert sum(fake.requests.values()) == 0


async def test_file_door_refuses_what_it_cannot_know(
    fake: FakeSnapshot, make_proxy: MakeProxy, http: aiohttp.ClientSession
) -> None:
    proxy = await make_proxy()
    for bad in ("/file/xyz", f"/file/{'A' * 40}", f"/file/{'0' * 40}/x", "/file/"):
        status, _, _ = await get(http, proxy.url + bad)
        assert status == 404, bad
    status, _, _ = await get(http, f"{proxy.url}/file/{'0' * 40}")
    assert status == 404  # asked upstream, which has no such file
    assert fake.count(f"/file/{'0' * 40}") == 1
    assert fake.count("/file/xyz") == 0


async def test_file_door_in_record_mode_serves_stored_blobs_only(
    fake: FakeSnapshot, make_proxy: MakeProxy, http: aiohttp.ClientSession
) -> None:
    proxy = await make_proxy(record=True)
    want = fake.runs["debian"][0].files[POOL]
    status, _, _ = await get(http, f"{proxy.url}/file/{sha1(want)}")
    assert status == 404  # a plain mirror has no /file/, and nothing is stored yet
    status, body, _ = await get(http, proxy.archive_url("debian", "20250101", POOL))
    assert status == 200 and body == want
    status, body, _ = await get(http, f"{proxy.url}/file/{sha1(want)}")
    assert status == 200 and body == want
