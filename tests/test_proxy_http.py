"""HTTP semantics (RFC 9110): HEAD, Range/If-Range, If-Modified-Since, metrics, refusals."""

from __future__ import annotations

import asyncio

from tests.fakesnap import FakeSnapshot
from tests.proxy_fixtures import *  # noqa: F403
from tests.proxy_fixtures import RUNS, Proxy, metric

POOL = "pool/main/p/pkg2/pkg2_1.0_all.deb"


async def test_head_range_if_range_ims(fake: FakeSnapshot, make_proxy, http) -> None:  # type: ignore[no-untyped-def]
    proxy: Proxy = await make_proxy()
    want = fake.runs["debian"][0].files[POOL]
    url = proxy.archive_url("debian", RUNS[0], POOL)
    async with http.head(url) as resp:  # a miss answered as soon as upstream's headers are in
        assert resp.status == 200
        assert int(resp.headers["Content-Length"]) == len(want)
        assert await resp.read() == b""
    async with http.get(url, headers={"Range": "bytes=10-19"}) as resp:
        assert resp.status == 206
        assert resp.headers["Content-Range"] == f"bytes 10-19/{len(want)}"
        assert await resp.read() == want[10:20]
        etag, last_modified = resp.headers["ETag"], resp.headers["Last-Modified"]
    async with http.get(url, headers={"Range": "bytes=-5"}) as resp:
        assert resp.status == 206 and await resp.read() == want[-5:]
    async with http.get(url, headers={"Range": "bytes=5-", "If-Range": etag}) as resp:
        assert resp.status == 206 and await resp.read() == want[5:]
    async with http.get(url, headers={"Range": "bytes=5-", "If-Range": '"other"'}) as resp:
        assert resp.status == 200 and await resp.read() == want
    async with http.get(url, headers={"Range": f"bytes={len(want) + 10}-"}) as resp:
        assert resp.status == 416
    async with http.get(url, headers={"If-Modified-Since": last_modified}) as resp:
        assert resp.status == 304
    async with http.get(url, headers={"Cache-Control": "max-age=0"}) as resp:
        assert resp.status == 200 and await resp.read() == want  # past snapshot: immutable
        assert "immutable" in resp.headers["Cache-Control"]
    assert fake.count("/file/*") == 1


async def test_metrics_and_healthz(fake: FakeSnapshot, make_proxy, http) -> None:  # type: ignore[no-untyped-def]
    proxy: Proxy = await make_proxy()
    await (await http.get(proxy.archive_url("debian", RUNS[0], POOL))).read()
    async with http.get(f"{proxy.url}/healthz") as resp:
        assert resp.status == 200 and await resp.text() == "ok"
    async with http.get(f"{proxy.url}/metrics") as resp:
        text = await resp.text()
    for name in (
        'reprobase_proxy_upstream_requests_total{status="200"}',
        'reprobase_proxy_upstream_requests_total{status="302"}',
        "reprobase_proxy_upstream_bytes_total",
        "reprobase_proxy_hits_total",
        "reprobase_proxy_misses_total",
        "reprobase_proxy_coalesced_total",
        "reprobase_proxy_retries_total",
        "reprobase_proxy_verify_failures_total",
        "reprobase_proxy_served_bytes_total",
        "reprobase_proxy_evictions_total",
        "reprobase_proxy_cache_bytes",
    ):
        assert f"\n{name} " in text, name
    assert metric(proxy, "upstream_bytes_total") == len(fake.runs["debian"][0].files[POOL])


async def test_connect_and_foreign_hosts_refused(fake: FakeSnapshot, make_proxy) -> None:  # type: ignore[no-untyped-def]
    proxy: Proxy = await make_proxy()
    host, port = proxy.url.removeprefix("http://").split(":")
    for request in (
        b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
        b"GET http://example.com/archive/debian/20240101/x HTTP/1.1\r\nHost: example.com\r\n\r\n",
        b"GET http://snapshot.debian.org:8080/archive/debian/20240101/x HTTP/1.1\r\n"
        b"Host: snapshot.debian.org:8080\r\n\r\n",
    ):
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(request)
        await writer.drain()
        status = (await reader.readline()).split()[1]
        assert status in (b"403", b"405"), request
        writer.close()


async def test_bad_paths(fake: FakeSnapshot, make_proxy, http) -> None:  # type: ignore[no-untyped-def]
    proxy: Proxy = await make_proxy()
    for path in (
        "/archive/debian/notatime/dists/bookworm/InRelease",
        "/archive/ubuntu/20240101/dists/x/InRelease",
        "/archive/debian/20240101/pool/../../etc/passwd",
        "/archive/debian/20240101/pool//x",
    ):
        async with http.get(proxy.url + path) as resp:
            assert resp.status == 404, path
    assert sum(fake.requests.values()) == 0
