"""Build slots: the nightly's --jobs bound, and refusing what the machine cannot hold."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from factory.common.errors import UserError
from factory.pipeline.slots import (
    PEAK_DISK,
    PEAK_MEMORY,
    BuildSlots,
    Machine,
    _mem_available,
    default_jobs,
)


def test_max_jobs_is_the_tighter_of_memory_and_disk() -> None:
    m = Machine(cores=8, memory_available=4 * PEAK_MEMORY + 1, disk_free=3 * PEAK_DISK)
    assert m.max_jobs() == 3
    assert default_jobs(m) == 3
    assert default_jobs(Machine(2, 100 * PEAK_MEMORY, 100 * PEAK_DISK)) == 2  # one per core
    assert default_jobs(Machine(2, 0, 0)) == 1  # always try one


def test_a_jobs_the_machine_cannot_hold_is_refused_in_one_line() -> None:
    m = Machine(cores=2, memory_available=2 * PEAK_MEMORY, disk_free=100 * PEAK_DISK)
    m.check(2)
    with pytest.raises(UserError) as exc:
        m.check(3)
    assert "--jobs 3 needs 1.9 GiB of memory" in exc.value.message
    assert exc.value.hint == "use --jobs 2 or fewer"
    assert "\n" not in exc.value.render()
    with pytest.raises(UserError, match="at least one build"):
        m.check(0)


def test_meminfo_is_read(tmp_path: Path) -> None:
    info = tmp_path / "meminfo"
    info.write_text("MemTotal:  100 kB\nMemAvailable:    2048 kB\n")
    assert _mem_available(info) == 2048 * 1024
    assert Machine.probe().memory_available > 0


def test_slots_bound_the_builds_running_at_once() -> None:
    slots = BuildSlots(2)
    both_inside = threading.Barrier(2, timeout=10)  # two at a time, or it breaks
    seen: list[int] = []

    def work() -> None:
        with slots.slot():
            both_inside.wait()
            seen.append(slots.running)
            both_inside.wait()  # nobody leaves before the other has looked

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(seen) == 6
    assert max(seen) <= 2 and slots.peak == 2 and slots.running == 0
