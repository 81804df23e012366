"""How many builds may run at once, and what one build needs at its peak.

The nightly schedules every image x architecture x build (A, B) over one bounded set
of slots (`--jobs N`): a build holds a slot while it runs mmdebstrap and writes its
layer. A --jobs the machine cannot hold is refused before anything starts, from the
peak one build was measured to need (PEAK_MEMORY, PEAK_DISK below).
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from factory.common.errors import UserError
from factory.common.paths import SCRATCH

# Measured peaks of one bookworm (not slim) amd64 build on 2026-12-02: 439 MB PSS summed
# over the process tree (mmdebstrap, apt, dpkg, ours) and 263 MB in its scratch directory
# (the chroot). mmdebstrap's tar (120 MB here) is then held in memory, not on disk
# (factory.rootfs.mmdebstrap.memory_file), while the chroot is already gone. With headroom
# for larger recipes (more packages) and a page cache that holds the spooled tar:
PEAK_MEMORY = 640 << 20
PEAK_DISK = 1 << 30


@dataclass(frozen=True)
class Machine:
    cores: int
    memory_available: int  # bytes (MemAvailable)
    disk_free: int  # bytes free where builds work

    @classmethod
    def probe(cls, scratch: Path = SCRATCH) -> Machine:
        return cls(os.cpu_count() or 1, _mem_available(), shutil.disk_usage(scratch).free)

    def max_jobs(self) -> int:
        """How many builds fit at once in memory and on disk (at least 0)."""
        return min(self.memory_available // PEAK_MEMORY, self.disk_free // PEAK_DISK)

    def check(self, jobs: int) -> None:
        """Refuse a --jobs this machine cannot hold, saying what one build needs."""
        if jobs < 1:
            raise UserError(f"--jobs {jobs}: at least one build must run", hint="e.g. --jobs 2")
        if jobs > self.max_jobs():
            raise UserError(
                f"--jobs {jobs} needs {_gib(jobs * PEAK_MEMORY)} of memory and "
                f"{_gib(jobs * PEAK_DISK)} in {SCRATCH}; this machine has "
                f"{_gib(self.memory_available)} available and {_gib(self.disk_free)} free "
                f"(one build peaks at {_gib(PEAK_MEMORY)} and {_gib(PEAK_DISK)})",
                hint=f"use --jobs {max(self.max_jobs(), 1)} or fewer",
            )


def default_jobs(machine: Machine) -> int:
    """One build per core, as many as fit (at least one)."""
    return max(1, min(machine.cores, machine.max_jobs()))


def _gib(n: int) -> str:
    return f"{n / (1 << 30):.1f} GiB"


def _mem_available(meminfo: Path = Path("/proc/meminfo")) -> int:
    for line in meminfo.read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return 0


class BuildSlots:
    """At most `jobs` builds at once; a build waits for a slot, in arrival order."""

    def __init__(self, jobs: int) -> None:
        self.jobs = jobs
        self._sem = threading.BoundedSemaphore(jobs)
        self._lock = threading.Lock()
        self.running = 0
        self.peak = 0  # the most builds that ran at once (tests check the bound)

    @contextmanager
    def slot(self) -> Iterator[None]:
        with self._sem:
            with self._lock:
                self.running += 1
                self.peak = max(self.peak, self.running)
            try:
                yield
            finally:
                with self._lock:
                    self.running -= 1
