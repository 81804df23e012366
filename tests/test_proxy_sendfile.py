"""Large hits: the whole-blob path and the sendfile thread that sends it."""

from __future__ import annotations

import asyncio
import os
import random
import socket
from hashlib import sha256
from pathlib import Path

import aiohttp
import pytest

from cache_proxy import sendfile
from tests.fakesnap import FakeSnapshot
from tests.proxy_fixtures import *  # noqa: F403
from tests.proxy_fixtures import BIG, RUNS, Proxy

SMALL = "pool/main/p/pkg1/pkg1_1.0_all.deb"


@pytest.fixture
def fake(big_fake: FakeSnapshot) -> FakeSnapshot:
    """Overrides the shared fixture, so ``make_proxy`` fronts the one with a 3 MiB file."""
    return big_fake


async def test_whole_blob_answers_like_file_response(fake: FakeSnapshot, make_proxy) -> None:  # type: ignore[no-untyped-def]
    """Unconditional hits skip FileResponse; their validators must still be its own."""
    proxy: Proxy = await make_proxy()
    want = fake.runs["debian"][0].files[BIG]
    small = fake.runs["debian"][0].files[SMALL]
    url = proxy.archive_url("debian", RUNS[0], BIG)
    # One keep-alive connection for everything: each body must leave the socket as
    # aiohttp wants it (no cork, TCP_NODELAY), or the small answer after it would wait.
    connector = aiohttp.TCPConnector(limit=1)
    async with aiohttp.ClientSession(connector=connector, auto_decompress=False) as http:
        async with http.get(url) as resp:  # the miss, through the flight
            assert resp.status == 200 and await resp.read() == want
        for _ in range(3):
            async with http.get(url) as resp:
                body = await resp.read()
                assert resp.status == 200 and resp.headers["X-Cache"] == "HIT"
                assert sha256(body).digest() == sha256(want).digest()
                whole = resp.headers
        assert int(whole["Content-Length"]) == len(want)
        assert whole["Accept-Ranges"] == "bytes"
        assert whole["Content-Type"] == "application/vnd.debian.binary-package"
        async with http.head(url) as resp:
            assert await resp.read() == b""
            assert resp.headers["Content-Length"] == whole["Content-Length"]
            assert resp.headers["ETag"] == whole["ETag"]
        # FileResponse answers the conditional ones: same ETag and date.
        async with http.get(url, headers={"Range": "bytes=7-9"}) as resp:
            assert resp.status == 206 and await resp.read() == want[7:10]
            assert resp.headers["ETag"] == whole["ETag"]
            assert resp.headers["Last-Modified"] == whole["Last-Modified"]
        async with http.get(url, headers={"Range": "bytes=7-9", "If-Range": whole["ETag"]}) as r:
            assert r.status == 206
        async with http.get(url, headers={"If-None-Match": whole["ETag"]}) as resp:
            assert resp.status == 304
        async with http.get(proxy.archive_url("debian", RUNS[0], SMALL)) as resp:
            assert await resp.read() == small
    assert fake.count("/file/*") == 2  # BIG and SMALL, once each


class _Sink(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport


async def _pair() -> tuple[asyncio.Transport, socket.socket]:
    """A loop transport (the proxy's side) connected to a plain blocking socket."""
    listener = socket.create_server(("127.0.0.1", 0))
    loop = asyncio.get_running_loop()
    accept = loop.run_in_executor(None, listener.accept)
    _, proto = await loop.create_connection(_Sink, *listener.getsockname())
    peer, _ = await accept
    listener.close()
    assert proto.transport is not None
    return proto.transport, peer


def _receive_all(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.parametrize("company", [0, 3], ids=["alone-corked", "with-company-nagle"])
async def test_sendfile_sends_exact_bytes_and_restores_the_socket(
    tmp_path: Path, company: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = random.Random(company).randbytes(5 << 20)
    (tmp_path / "blob").write_bytes(data)
    transport, peer = await _pair()
    sock = transport.get_extra_info("socket")
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as aiohttp sets it
    monkeypatch.setattr(sendfile, "_sending", company)
    before = _open_fds()
    loop = asyncio.get_running_loop()
    received = loop.run_in_executor(None, _receive_all, peer)
    try:
        with open(tmp_path / "blob", "rb") as f:
            sent = await sendfile.sendfile(transport, f.fileno(), 1000, len(data) - 2000)
        assert sent == len(data) - 2000
        assert sendfile._sending == company  # counted while in flight only
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_CORK) == 0
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        assert _open_fds() == before  # the thread closed both of its copies
    finally:
        transport.close()
    assert await received == data[1000:-1000]
    peer.close()


async def test_cancelled_request_cannot_send_another_file(tmp_path: Path) -> None:
    """The request is cancelled while the thread sends, and the caller closes its file
    at once; the number is reused for another file. The thread keeps its own copies,
    so the client still gets exactly the first file's bytes and then EOF."""
    first = random.Random(1).randbytes(16 << 20)
    other = b"X" * len(first)
    (tmp_path / "first").write_bytes(first)
    (tmp_path / "other").write_bytes(other)
    transport, peer = await _pair()
    before = _open_fds()
    fd = os.open(tmp_path / "first", os.O_RDONLY)
    task = asyncio.create_task(sendfile.sendfile(transport, fd, 0, len(first)))
    head = await asyncio.get_running_loop().run_in_executor(None, peer.recv, 65536)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    os.close(fd)
    reused = os.open(tmp_path / "other", os.O_RDONLY)
    assert reused == fd  # the lowest free number: the old one
    transport.close()  # the loop's copy of the socket goes too
    try:
        rest = await asyncio.get_running_loop().run_in_executor(None, _receive_all, peer)
    finally:
        os.close(reused)
        peer.close()
    assert head + rest == first
    for _ in range(500):  # the thread closes its copies once it is done
        if _open_fds() <= before:
            break
        await asyncio.sleep(0.01)
    assert _open_fds() <= before
