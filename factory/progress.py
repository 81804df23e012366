"""Progress for long work: which stage, and how long it has taken."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO


class Progress:
    def __init__(self, stream: TextIO | None = None, quiet: bool = False) -> None:
        self._stream = stream or sys.stderr
        self._quiet = quiet
        self._t0 = time.monotonic()
        self.durations: dict[str, float] = {}

    def elapsed(self) -> float:
        return time.monotonic() - self._t0

    def say(self, msg: str) -> None:
        if not self._quiet:
            e = int(self.elapsed())
            print(f"[{e // 60:02d}:{e % 60:02d}] {msg}", file=self._stream, flush=True)

    def record(self, name: str, seconds: float) -> None:
        """A duration measured elsewhere (a sub-stage), kept without a progress line."""
        self.durations[name] = round(seconds, 3)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        self.say(f"{name} ...")
        t = time.monotonic()
        yield  # a failure says nothing here: the error line is the last word
        d = time.monotonic() - t
        self.durations[name] = round(d, 3)
        self.say(f"{name}: done in {d:.1f}s")
