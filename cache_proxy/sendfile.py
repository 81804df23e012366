"""Zero-copy file bodies under uvloop, which has no ``loop.sendfile``.

aiohttp's FileResponse falls back to reading the file into Python and writing
the bytes when the loop cannot sendfile, which is what uvloop (our default loop)
does. Here the body goes out with ``os.sendfile(2)`` on a worker thread
instead: page cache to socket, never through Python. The thread uses its own
``dup`` of the socket, so the descriptor number cannot be reused under it if
the client disconnects and the loop closes its copy; and it only starts when
the transport's write buffer is empty, so nothing the loop holds can interleave.
"""

from __future__ import annotations

import asyncio
import os
import select
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Final

STALL_SECONDS: Final = 60.0  # a client that takes nothing for this long is dropped
_SLICE_MS: Final = 1000
THREADS: Final = 64

_closing = threading.Event()
_pool: ThreadPoolExecutor | None = None


def _executor() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=THREADS, thread_name_prefix="sendfile")
    return _pool


def send_blocking(sock_fd: int, file_fd: int, offset: int, count: int) -> int:
    """Send ``count`` bytes of ``file_fd`` from ``offset``; the number actually sent."""
    poller = select.poll()
    poller.register(sock_fd, select.POLLOUT)
    sent = 0
    idle = 0.0
    while sent < count and not _closing.is_set():
        try:
            n = os.sendfile(sock_fd, file_fd, offset + sent, count - sent)
        except BlockingIOError:
            if poller.poll(_SLICE_MS):
                continue
            idle += _SLICE_MS / 1000
            if idle >= STALL_SECONDS:
                break
            continue
        except OSError:  # EPIPE, ECONNRESET: the client left
            break
        if n == 0:  # the file is shorter than it was: never happens to a stored blob
            break
        sent += n
        idle = 0.0
    return sent


async def sendfile(transport: asyncio.Transport, file_fd: int, offset: int, count: int) -> int:
    """Send through ``transport``'s socket; the caller checked its buffer is empty."""
    sock = transport.get_extra_info("socket")
    fd = os.dup(sock.fileno())
    try:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(_executor(), send_blocking, fd, file_fd, offset, count)
    finally:
        os.close(fd)


def shutdown() -> None:
    """Let every sending thread return promptly (the process is stopping)."""
    _closing.set()
