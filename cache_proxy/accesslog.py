"""The access log: one line per request, written in batches off the event loop.

The ``logging`` module formats and flushes each record under a lock on the
event loop thread, which costs a third of the warm-hit throughput; here lines
are only appended to a list, and a single writer thread writes them out every
``FLUSH_SECONDS`` (and at shutdown).
"""

from __future__ import annotations

import asyncio
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import IO, Final

FLUSH_SECONDS: Final = 0.5


class AccessLog:
    def __init__(self, target: str | None) -> None:
        """``target``: a file path, ``-`` for stderr, or None for no access log."""
        self.target = target
        self._lines: list[str] = []
        self._file: IO[str] | None = None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="access-log")
        self._task: asyncio.Task[None] | None = None
        self._stamp_second = -1
        self._stamp = ""

    @property
    def enabled(self) -> bool:
        return self.target is not None

    def start(self) -> None:
        if self.target is None:
            return
        self._file = sys.stderr if self.target == "-" else open(self.target, "a")  # noqa: SIM115
        self._task = asyncio.create_task(self._flush_loop())

    def stamp(self) -> str:
        now = int(time.time())
        if now != self._stamp_second:
            self._stamp_second = now
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
        return self._stamp

    def write(self, line: str) -> None:
        if self._file is not None:
            self._lines.append(f"{self.stamp()} {line}\n")

    def _write_out(self, lines: list[str]) -> None:
        assert self._file is not None
        self._file.write("".join(lines))
        self._file.flush()

    async def flush(self) -> None:
        if self._lines and self._file is not None:
            lines, self._lines = self._lines, []
            await asyncio.get_running_loop().run_in_executor(self._pool, self._write_out, lines)

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_SECONDS)
            await self.flush()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.flush()
        if self._file is not None and self._file is not sys.stderr:
            self._file.close()
        self._file = None
        self._pool.shutdown(wait=True)
