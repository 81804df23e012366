"""The installed package set of a root filesystem (name, version, architecture).

Used for no-change nights (same set as the last published image: re-tag, don't
rebuild downstream) and for the report's package-set changes.
"""

from __future__ import annotations

import tarfile
from pathlib import Path

from factory.common.canonical import canonical_json, sha256_digest

STATUS_PATHS = ("var/lib/dpkg/status", "./var/lib/dpkg/status")
Package = tuple[str, str, str]


def parse_status(text: str) -> list[Package]:
    pkgs: list[Package] = []
    for para in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in para.splitlines():
            if line[:1].isspace() or ":" not in line:
                continue
            k, _, v = line.partition(":")
            fields[k] = v.strip()
        if fields.get("Status", "").endswith(" installed") and "Package" in fields:
            pkgs.append(
                (fields["Package"], fields.get("Version", ""), fields.get("Architecture", ""))
            )
    return sorted(pkgs)


def packages_from_tar(tar_path: Path) -> list[Package]:
    with tarfile.open(tar_path, "r:") as tf:
        return packages_in(tf)


def packages_in(tf: tarfile.TarFile) -> list[Package]:
    """The package set of an open root filesystem tar (its members already read once)."""
    for name in STATUS_PATHS:
        try:
            f = tf.extractfile(name)
        except KeyError:
            continue
        if f is not None:
            return parse_status(f.read().decode("utf-8", "replace"))
    return []


def packages_digest(pkgs: list[Package]) -> str:
    return sha256_digest(canonical_json([list(p) for p in pkgs]))
