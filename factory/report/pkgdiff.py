"""Package-set changes between two snapshots of one image: added, removed, upgraded."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from debian_inspector.version import Version

from factory.report.history import Package

ChangeKind = Literal["added", "removed", "upgraded", "downgraded"]


@dataclass(frozen=True, order=True)
class PackageChange:
    name: str
    old: str | None  # version before; None when added
    new: str | None  # version after; None when removed

    @property
    def kind(self) -> ChangeKind:
        if self.old is None:
            return "added"
        if self.new is None:
            return "removed"
        return "upgraded" if _newer(self.new, self.old) else "downgraded"


def _newer(a: str, b: str) -> bool:
    """Debian version order (epochs, ~, revisions); plain text order if unparsable."""
    try:
        return bool(Version.from_string(a) > Version.from_string(b))
    except ValueError:
        return a > b


def _by_name(pkgs: Iterable[Package]) -> dict[str, str]:
    # Multi-arch co-installations (libc6:amd64 + libc6:i386) show as "name:arch".
    out: dict[str, str] = {}
    seen: dict[str, int] = {}
    for name, _version, _arch in pkgs:
        seen[name] = seen.get(name, 0) + 1
    for name, version, arch in pkgs:
        key = name if seen[name] == 1 else f"{name}:{arch}"
        out[key] = version
    return out


def diff_packages(before: Iterable[Package], after: Iterable[Package]) -> tuple[PackageChange, ...]:
    """Changes from `before` to `after`, sorted by package name."""
    old = _by_name(before)
    new = _by_name(after)
    changes = [
        PackageChange(name, old.get(name), new.get(name))
        for name in sorted(old.keys() | new.keys())
        if old.get(name) != new.get(name)
    ]
    return tuple(changes)
