"""Helpers for the hostile-upstream tests: raw HTTP clients and a second, evil server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from tests.fakesnap import FakeSnapshot, make_runs
from tests.proxy_fixtures import RUNS

__all__ = ["Raw", "evil", "raw_get"]


@dataclass
class Raw:
    """What a raw HTTP client saw: status line, headers, body, and how it ended."""

    status: int
    version: str
    headers: dict[str, str]
    body: bytes  # as received (chunked framing left in place)
    reset: bool  # the connection ended with a reset (or a read error), not a clean close

    @property
    def chunked_complete(self) -> bool:
        """RFC 9112 §7.1: a chunked body is complete only with its last chunk."""
        return self.body.endswith(b"0\r\n\r\n")

    def dechunked(self) -> bytes:
        out, rest = b"", self.body
        while rest:
            size_line, _, rest = rest.partition(b"\r\n")
            size = int(size_line.split(b";")[0] or b"0", 16)
            if size == 0:
                break
            out, rest = out + rest[:size], rest[size + 2 :]
        return out


async def raw_get(
    address: str, target: str, version: str = "1.1", headers: str = "", timeout: float = 60.0
) -> Raw:
    """One request on a fresh connection; read until the proxy ends it."""
    host, port = address.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    extra = "Connection: close\r\n" if version == "1.1" else ""
    writer.write(f"GET {target} HTTP/{version}\r\nHost: {address}\r\n{extra}{headers}\r\n".encode())
    await writer.drain()
    data, reset = b"", False
    try:
        while chunk := await asyncio.wait_for(reader.read(1 << 16), timeout):
            data += chunk
    except (ConnectionResetError, BrokenPipeError):
        reset = True
    finally:
        writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    proto, status = lines[0].split(" ")[:2]
    fields = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        fields[k.strip().lower()] = v.strip()
    return Raw(int(status), proto, fields, body, reset)


@pytest.fixture
async def evil() -> AsyncIterator[FakeSnapshot]:
    """Another server on another port of the same host, with other bytes under the same names."""
    server = FakeSnapshot({"debian": make_runs("debian", "bookworm", RUNS, seed=99)})
    await server.start()
    yield server
    await server.stop()
