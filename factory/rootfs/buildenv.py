"""Build environments: build A is plain, build B deliberately differs.

A reproducible image must not depend on the host name, time zone, locale,
umask, build directory or today's date. Build B changes all of these so the
double build proves it.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

FAKETIME_LIB_DIRS = ("/usr/lib/x86_64-linux-gnu/faketime", "/usr/lib/aarch64-linux-gnu/faketime")


@dataclass(frozen=True)
class BuildEnv:
    name: str  # "A" or "B"
    hostname: str | None  # None: keep the host's (needs a new UTS namespace otherwise)
    tz: str
    lang: str
    umask: int
    workdir_parent: Path
    clock_offset_days: int = 0  # run maintainer scripts with the clock this far ahead
    extra_env: dict[str, str] = field(default_factory=dict)

    def describe(self) -> dict[str, str]:
        return {
            "hostname": self.hostname or "(host)",
            "TZ": self.tz,
            "LANG": self.lang,
            "umask": f"{self.umask:04o}",
            "workdir": str(self.workdir_parent),
            "clock_offset_days": str(self.clock_offset_days),
        }


def faketime_lib() -> str | None:
    for d in FAKETIME_LIB_DIRS:
        p = Path(d) / "libfaketime.so.1"
        if p.is_file():
            return str(p)
    return None


def env_a(base: Path) -> BuildEnv:
    return BuildEnv("A", None, "UTC", "C.UTF-8", 0o022, base / "a")


def env_b(base: Path, shift_clock: bool = True) -> BuildEnv:
    can_uts = os.geteuid() == 0 and shutil.which("unshare") is not None
    # The clock shift needs libfaketime and root (the library is copied into the chroot).
    offset = 1 if shift_clock and faketime_lib() is not None and os.geteuid() == 0 else 0
    return BuildEnv(
        "B",
        "reprobase-verify-b.invalid" if can_uts else None,
        "Pacific/Kiritimati",  # UTC+14: the furthest from UTC there is
        "POSIX",
        0o002,
        base / "b-other-dir" / "nested",
        clock_offset_days=offset,
    )
