"""Known causes of non-reproducible images, and their fixes.

Each rule names the nondeterminism and what removes it (see DESIGN.md §2,
"Normalisation"); the facts come from debuerreotype, mmdebstrap and
reproducible-builds.org.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
from dataclasses import dataclass

from factory.diffing.model import Value


@dataclass(frozen=True)
class Culprit:
    patterns: tuple[str, ...]  # fnmatch patterns on the path (leading "/")
    note: str


RULES: tuple[Culprit, ...] = (
    Culprit(
        ("/var/log/*",),
        "log written during the build: empty /var/log (dpkg.log, apt/*, "
        "alternatives.log) after installing",
    ),
    Culprit(
        ("/var/cache/ldconfig/aux-cache",),
        "ldconfig's aux-cache records inode numbers and mtimes of the build host: delete it",
    ),
    Culprit(
        ("*.pyc",),
        "Python bytecode embeds the source file's mtime: compile with "
        "SOURCE_DATE_EPOCH set (py_compile then uses checked-hash pycs) or do not ship .pyc",
    ),
    Culprit(
        ("/etc/machine-id", "/var/lib/dbus/machine-id"),
        "machine-id is generated per "
        "installation: leave /etc/machine-id empty (systemd fills it at first boot)",
    ),
    Culprit(
        ("/etc/hostname", "/etc/hosts", "/etc/mailname"),
        "the build host's name leaked into "
        "the image: write a fixed hostname (run the build in its own UTS namespace)",
    ),
    Culprit(
        ("/etc/resolv.conf",),
        "the build host's resolver configuration leaked: write a fixed /etc/resolv.conf",
    ),
    Culprit(
        ("/var/lib/apt/lists/*", "/var/cache/apt/*"),
        "apt indexes/caches from the build: remove /var/lib/apt/lists/* and /var/cache/apt/*",
    ),
    Culprit(
        ("/etc/*-", "/var/cache/debconf/*-old", "/var/lib/dpkg/*-old"),
        "backup file left by shadow/debconf/dpkg: remove *-old and *- backups",
    ),
    Culprit(
        ("/etc/ssh/ssh_host_*",),
        "SSH host keys generated at build time: remove them and generate them at first boot",
    ),
    Culprit(
        ("/var/lib/systemd/random-seed", "/var/lib/urandom/random-seed"),
        "random seed saved during the build: remove it",
    ),
    Culprit(("/var/cache/man/*",), "man-db index with build timestamps: remove /var/cache/man"),
    Culprit(
        ("/etc/apt/apt.conf.d/01autoremove-kernels",), "lists the build host's kernel: remove it"
    ),
    Culprit(
        ("/etc/ld.so.cache",),
        "ldconfig's cache: it changes when libraries change, or when "
        "ldconfig ran in another order; regenerate it as the last step",
    ),
)

SHADOW = ("/etc/shadow", "/etc/shadow-", "/etc/gshadow")


def day(n: int) -> str:
    return (dt.date(1970, 1, 1) + dt.timedelta(days=n)).isoformat()


def shadow_note(head_a: bytes, head_b: bytes) -> str | None:
    """Which users' last-change day (field 3) differs, with the dates."""

    def table(data: bytes) -> dict[str, str]:
        rows = (line.split(":") for line in data.decode("utf-8", "replace").splitlines())
        return {r[0]: r[2] for r in rows if len(r) > 2}

    ta, tb = table(head_a), table(head_b)
    changed = [u for u in ta if u in tb and ta[u] != tb[u] and ta[u].isdigit() and tb[u].isdigit()]
    if not changed:
        return None
    users = ", ".join(f"{u} {day(int(ta[u]))} vs {day(int(tb[u]))}" for u in changed[:5])
    return (
        f"last password change day differs ({users}): the user was created on a different "
        "day; export SOURCE_DATE_EPOCH to every command run in the chroot (shadow then "
        "writes its day) or clamp field 3"
    )


def path_note(path: str) -> str | None:
    for rule in RULES:
        if any(fnmatch.fnmatchcase(path, p) for p in rule.patterns):
            return rule.note
    return None


def content_note(path: str, head_a: bytes, head_b: bytes) -> str | None:
    if path in SHADOW:
        return shadow_note(head_a, head_b) or path_note(path)
    if path.endswith(".gz") and head_a[4:8] != head_b[4:8] and head_a[:2] == b"\x1f\x8b":
        return "the gzip header's MTIME differs: compress with 'gzip -n' (no name, no timestamp)"
    return path_note(path)


def mtime_note(a: Value, b: Value, sde: int | None) -> str | None:
    if sde is None:
        return None
    newer = [side for side, v in (("A", a), ("B", b)) if isinstance(v, int | float) and v > sde]
    if not newer:
        return None
    return (
        f"mtime newer than SOURCE_DATE_EPOCH ({sde}) in {' and '.join(newer)}: the file was "
        "written during the build and not clamped; clamp mtimes to SOURCE_DATE_EPOCH"
    )


def entry_note(path: str, field: str, a: Value, b: Value, sde: int | None) -> str | None:
    if field == "mtime":
        return mtime_note(a, b, sde) or path_note(path)
    if field in ("uid", "gid", "uname", "gname"):
        return "owner differs: users/groups were created in another order or with other ids"
    return path_note(path)
