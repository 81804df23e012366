"""Progress for long work: which stage, and how long it has taken.

Several builds run at once (A and B of a double build), so a stage may belong to a Task
(image, architecture, build letter). On a terminal each running task has one live line
(its stage, the time in it, the time since it started) above a summary line (tasks
running and done, elapsed, bytes the proxy fetched), drawn by rich. In a log or CI the
same events are plain lines prefixed by image, architecture and build letter.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TextIO

from rich.console import Console, RenderableType
from rich.live import Live
from rich.table import Table


@dataclass(frozen=True)
class Task:
    """One build of one architecture of one image."""

    image: str
    arch: str
    build: str  # "A" or "B"

    @property
    def key(self) -> str:
        # the prefix of this task's entries in Progress.durations (and so in --json)
        return f"build {self.build} {self.arch}"

    @property
    def prefix(self) -> str:
        return f"{self.image} {self.arch} {self.build}"


@dataclass
class _Row:
    started: float
    stage: str
    stage_started: float
    finished: float | None = None


def _mmss(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 60:02d}:{s % 60:02d}"


def _is_terminal(stream: TextIO) -> bool:
    return stream.isatty() and os.environ.get("TERM", "") not in ("", "dumb")


class Progress:
    def __init__(
        self,
        stream: TextIO | None = None,
        quiet: bool = False,
        live: bool | None = None,
        meter: Callable[[], int | None] | None = None,
    ) -> None:
        self._stream = stream or sys.stderr
        self._quiet = quiet
        self._live_wanted = (not quiet) and (_is_terminal(self._stream) if live is None else live)
        self._t0 = time.monotonic()
        self._lock = threading.RLock()
        self._rows: dict[Task, _Row] = {}
        self._live: Live | None = None
        self._meter = meter
        self._fetched: tuple[float, int | None] = (0.0, None)
        self.durations: dict[str, float] = {}

    def elapsed(self) -> float:
        return time.monotonic() - self._t0

    def set_meter(self, meter: Callable[[], int | None] | None) -> None:
        """Where the summary line reads the bytes fetched upstream (the cache proxy)."""
        self._meter = meter

    def say(self, msg: str) -> None:
        if self._quiet:
            return
        line = f"[{_mmss(self.elapsed())}] {msg}"
        live = self._live
        if live is not None:
            live.console.print(line, markup=False, highlight=False, soft_wrap=True)
        else:
            print(line, file=self._stream, flush=True)

    def record(self, name: str, seconds: float, task: Task | None = None) -> None:
        """A duration measured elsewhere (a sub-stage), kept without a progress line."""
        self.durations[f"{task.key}: {name}" if task else name] = round(seconds, 3)

    @contextmanager
    def stage(self, name: str, task: Task | None = None) -> Iterator[None]:
        key = f"{task.key}: {name}" if task else name
        if task is not None and self._live_wanted:
            self._enter_live(task, name)
        else:
            self.say(f"{task.prefix}: {name} ..." if task else f"{name} ...")
        t = time.monotonic()
        yield  # a failure says nothing here: the error line is the last word
        d = time.monotonic() - t
        self.durations[key] = round(d, 3)
        if task is None or not self._live_wanted:
            self.say(
                f"{task.prefix}: {name}: done in {d:.1f}s" if task else f"{name}: done in {d:.1f}s"
            )

    def finish(self, task: Task, ok: bool = True) -> None:
        """The task has no more stages: its live line says so; the last one stops the display."""
        if not self._live_wanted:
            return
        with self._lock:
            row = self._rows.get(task)
            if row is None:
                return
            row.finished = time.monotonic()
            row.stage = "done" if ok else "failed"
            done = all(r.finished is not None for r in self._rows.values())
            live = self._live if done else None
            if done:
                self._live = None
        if live is not None:
            live.update(self._render(), refresh=True)
            live.stop()
            self.say(self._summary())

    def _enter_live(self, task: Task, name: str) -> None:
        now = time.monotonic()
        with self._lock:
            row = self._rows.get(task)
            if row is None or row.finished is not None:
                self._rows[task] = _Row(now, name, now)
            else:
                row.stage, row.stage_started = name, now
            if self._live is not None:
                return
            console = Console(file=self._stream, force_terminal=True, highlight=False)
            live = self._live = Live(
                console=console,
                get_renderable=self._render,
                refresh_per_second=4,
                transient=False,
                redirect_stdout=False,
                redirect_stderr=False,
            )
        live.start()

    def _bytes_fetched(self) -> int | None:
        """The meter at most once a second: it asks the proxy over HTTP."""
        when, value = self._fetched
        if self._meter is not None and time.monotonic() - when >= 1.0:
            try:
                value = self._meter()
            except OSError:
                value = None
            self._fetched = (time.monotonic(), value)
        return value

    def _summary(self) -> str:
        rows = list(self._rows.values())
        running = sum(1 for r in rows if r.finished is None)
        text = f"{running} running, {len(rows) - running} done, {_mmss(self.elapsed())} elapsed"
        fetched = self._bytes_fetched()
        if fetched is not None:
            text += f", {fetched / 1e6:.1f} MB fetched upstream"
        return text

    def _render(self) -> RenderableType:
        now = time.monotonic()
        table = Table.grid(padding=(0, 2))
        with self._lock:
            items = sorted(
                self._rows.items(), key=lambda kv: (kv[0].image, kv[0].arch, kv[0].build)
            )
            for task, row in items:
                end = row.finished if row.finished is not None else now
                in_stage = "" if row.finished is not None else _mmss(now - row.stage_started)
                table.add_row(task.prefix, row.stage, in_stage, _mmss(end - row.started))
            table.add_row("", self._summary(), "", "")
        return table
