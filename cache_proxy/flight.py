"""Single flight and tee: one upstream download per file, every waiting client fed from it.

A ``Flight`` is owned by its own task (not by any client request), so a client
that disconnects never cancels it. Each download attempt writes a temp file;
readers follow the growing file (``tee``). If an attempt fails after a reader has
sent bytes from it, that reader is aborted rather than completed: a client never
receives a body presented as complete unless it was verified.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from cache_proxy.index import BlobRow

CHUNK: Final = 256 * 1024


class Aborted(Exception):
    """The bytes already sent to this client can no longer be completed correctly."""


@dataclass
class Attempt:
    number: int
    tmp: Path
    size: int | None  # announced length, if any
    ctype: str
    mtime: float | None
    written: int = 0


@dataclass
class Flight:
    key: str
    refetch: bool = False  # True: result is None and waiters look the file up again
    attempt: Attempt | None = None
    final_attempt: int | None = None
    waiters: int = 0
    done: asyncio.Future[BlobRow | None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def begin(self, tmp: Path, size: int | None, ctype: str, mtime: float | None) -> Attempt:
        number = self.attempt.number + 1 if self.attempt else 1
        self.attempt = Attempt(number, tmp, size, ctype, mtime)
        self._wake()
        return self.attempt

    def advance(self, n: int) -> None:
        assert self.attempt is not None
        self.attempt.written += n
        self._wake()

    def finish(self, row: BlobRow | None, from_attempt: bool) -> None:
        if from_attempt and self.attempt is not None:
            self.final_attempt = self.attempt.number
        if not self.done.done():
            self.done.set_result(row)
        self._wake()

    def fail(self, exc: BaseException) -> None:
        if not self.done.done():
            self.done.set_exception(exc)
            self.done.exception()  # mark retrieved: waiters may all be gone
        self._wake()

    async def changed(self) -> None:
        await self._changed.wait()

    async def started(self) -> None:
        """Wait until an attempt has response headers, or the flight is over."""
        while self.attempt is None and not self.done.done():
            await self.changed()


async def tee(
    flight: Flight, blob_path: Callable[[str], Path], announced: int | None
) -> AsyncIterator[bytes]:
    """Yield the file's bytes as they arrive; raise ``Aborted`` if it cannot be completed."""
    loop = asyncio.get_running_loop()
    sent = 0
    fd: int | None = None
    reading: int | None = None  # attempt number whose file ``fd`` is
    try:
        while True:
            if flight.done.done():
                if flight.done.exception() is not None or flight.done.result() is None:
                    raise Aborted("download failed")
                if sent and reading != flight.final_attempt:
                    raise Aborted("bytes already sent came from a failed attempt")
                row = flight.done.result()
                assert row is not None
                if announced is not None and row.size != announced:
                    raise Aborted("final size differs from the announced length")
                if fd is None or reading != flight.final_attempt:
                    if fd is not None:
                        os.close(fd)
                    fd = await loop.run_in_executor(
                        None, os.open, blob_path(row.sha256), os.O_RDONLY
                    )
                while sent < row.size:
                    chunk = await loop.run_in_executor(
                        None, os.pread, fd, min(CHUNK, row.size - sent), sent
                    )
                    if not chunk:
                        raise Aborted("blob shorter than its index row")
                    sent += len(chunk)
                    yield chunk
                return
            att = flight.attempt
            if att is not None and att.number != reading:
                if sent:
                    raise Aborted("download restarted after bytes were sent")
                if announced is not None and att.size not in (None, announced):
                    raise Aborted("retry announced another length")
                if fd is not None:
                    os.close(fd)
                    fd = None
                try:
                    fd = await loop.run_in_executor(None, os.open, att.tmp, os.O_RDONLY)
                except FileNotFoundError:
                    continue  # that attempt is over (committed or dropped): look again
                reading = att.number
            # Hold back the last byte until the download is verified: a client must
            # not see a complete body (per its Content-Length) that may yet be rejected.
            limit = att.written if att is not None else 0
            if att is not None and att.size is not None:
                limit = min(limit, att.size - 1)
            if att is not None and fd is not None and limit > sent:
                chunk = await loop.run_in_executor(
                    None, os.pread, fd, min(CHUNK, limit - sent), sent
                )
                if chunk:
                    sent += len(chunk)
                    yield chunk
                    continue
            if flight.done.done() or flight.attempt is not att:
                continue  # it changed while we were reading: no wake-up is coming for that
            await flight.changed()
    finally:
        if fd is not None:
            os.close(fd)
