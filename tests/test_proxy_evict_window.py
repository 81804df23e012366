"""A GET for a stored file is never answered 404 because eviction removed its blob
between the lookup and the open, in the primary or in a hit worker."""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from cache_proxy.app import Front
from cache_proxy.config import ProxyConfig
from cache_proxy.index import BlobRow
from cache_proxy.routing import Target
from cache_proxy.server import ProxyServer
from tests.fakesnap import FakeSnapshot, make_runs, sha1, sha256
from tests.proxy_fixtures import *  # noqa: F403
from tests.proxy_fixtures import BIG, FAST_RETRY, RUNS, Proxy, metric
from tests.test_proxy_workers import get, own_worker  # noqa: F401

MakeProxy = Callable[..., Awaitable[Proxy]]
OwnWorker = Callable[[Proxy], Awaitable[str]]


@pytest.mark.parametrize("headers", [{}, {"Range": "bytes=5-9"}, {"If-None-Match": '"x"'}])
async def test_a_blob_evicted_before_its_open_is_still_served_by_a_worker(
    big_fake: FakeSnapshot,
    make_proxy: MakeProxy,
    own_worker: OwnWorker,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    headers: dict[str, str],
) -> None:
    """The worker decided to answer (the file was there) and eviction deletes the blob
    before the response opens it: the answer is still 200/206 with the right bytes."""
    proxy = await make_proxy(workers=2, upstreams=(big_fake.snapshot_base,))
    base = await own_worker(proxy)
    want = big_fake.runs["debian"][0].files[BIG]
    url = f"{base}/archive/debian/{RUNS[0]}/{BIG}"
    status, body, _ = await get(url)
    assert status == 200 and body == want
    cache = proxy.server.proxy.cache
    real = Front._file
    evicted: list[str] = []

    async def file_then_evict(
        self: Front, request: web.BaseRequest, target: Target, row: BlobRow
    ) -> Any:
        resp = await real(self, request, target, row)
        if not evicted:  # the primary's eviction gets there first
            evicted.append(row.sha256)
            await cache.evictor.drop(row.sha256, row.size)
        return resp

    monkeypatch.setattr(Front, "_file", file_then_evict)
    status, body, _ = await get(url, **headers)
    assert evicted == [sha256(want)] and not cache.blob_path(sha256(want)).exists()
    if "Range" in headers:
        assert status == 206 and body == want[5:10]
    else:
        assert status == 200 and body == want
    assert big_fake.count(f"/file/{sha1(want)}") == 1  # served from the open file


async def test_no_404_under_eviction_with_hit_workers(tmp_path: Path) -> None:
    """The load version, with a real hit worker process: half the files fit, eviction
    runs all the time, and every answer is a 200 with the right bytes."""
    from tests.test_proxy_hostile_store import FILES, SIZE, hammer

    server = FakeSnapshot(
        {"debian": make_runs("debian", "bookworm", RUNS[:1], packages=FILES, size=SIZE)}
    )
    await server.start()
    proxy_server = ProxyServer(
        ProxyConfig(
            cache_dir=tmp_path / "cache",
            upstreams=(server.snapshot_base,),
            host="127.0.0.1",
            port=0,
            retry=FAST_RETRY,
            access_log=None,
            max_size=FILES // 2 * SIZE,
            workers=2,
        )
    )
    await proxy_server.start()
    try:
        proxy = Proxy(proxy_server, f"http://{proxy_server.address}")
        statuses = await hammer(proxy, server.runs["debian"][0], requests=400, clients=16)
        assert metric(proxy, "evictions_total") > 30
        assert proxy_server.board is not None
        assert proxy_server.board.totals()["hits_total"][()] > 20  # the worker answered too
        assert statuses == Counter({200: 400}), statuses
    finally:
        await proxy_server.stop()
        await server.stop()
