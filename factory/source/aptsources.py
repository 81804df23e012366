"""Find the machine's configured Debian mirror from its apt sources.

Tests record this mirror (through the cache proxy's recorder mode) because
snapshot.debian.org is not reachable from every build machine. The mirror's
host is read at run time, never written into the code.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from factory.common.errors import UserError

APT_ETC = Path("/etc/apt")


@dataclass(frozen=True)
class HostAptEntry:
    uri: str
    suites: tuple[str, ...]
    components: tuple[str, ...]


def _deb822_stanzas(text: str) -> Iterator[dict[str, str]]:
    for block in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        key = None
        for line in block.splitlines():
            if line.startswith("#") or not line.strip():
                continue
            if line[0].isspace() and key:
                fields[key] += " " + line.strip()
                continue
            if ":" in line:
                key, _, value = line.partition(":")
                key = key.strip().lower()
                fields[key] = value.strip()
        if fields:
            yield fields


def parse_deb822(text: str) -> list[HostAptEntry]:
    out = []
    for st in _deb822_stanzas(text):
        if "deb" not in st.get("types", "").split():
            continue
        if st.get("enabled", "yes").lower() == "no":
            continue
        for uri in st.get("uris", "").split():
            out.append(
                HostAptEntry(
                    uri.rstrip("/") + "/",
                    tuple(st.get("suites", "").split()),
                    tuple(st.get("components", "").split()),
                )
            )
    return out


def parse_one_line(text: str) -> list[HostAptEntry]:
    out = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        parts = line.split()
        if len(parts) < 3 or parts[0] != "deb":
            continue
        rest = parts[1:]
        if rest[0].startswith("["):  # options like [arch=amd64 signed-by=...]
            while rest and not rest[0].endswith("]"):
                rest = rest[1:]
            rest = rest[1:]
        if len(rest) >= 2:
            out.append(HostAptEntry(rest[0].rstrip("/") + "/", (rest[1],), tuple(rest[2:])))
    return out


def system_sources(etc: Path = APT_ETC) -> list[HostAptEntry]:
    sources: list[HostAptEntry] = []
    main = etc / "sources.list"
    if main.is_file():
        sources += parse_one_line(main.read_text(errors="replace"))
    d = etc / "sources.list.d"
    if d.is_dir():
        for f in sorted(d.iterdir()):
            if f.suffix == ".sources":
                sources += parse_deb822(f.read_text(errors="replace"))
            elif f.suffix == ".list":
                sources += parse_one_line(f.read_text(errors="replace"))
    return sources


def system_debian_mirror(etc: Path = APT_ETC) -> str:
    """The URI of the machine's main Debian archive (not -security, not third-party)."""
    for src in system_sources(etc):
        if not src.uri.startswith(("http://", "https://")):
            continue
        if "-security" in " ".join(src.suites) or "security" in src.uri:
            continue
        if "main" in src.components and any(
            s in ("bookworm", "trixie", "stable", "testing", "sid", "unstable", "bullseye")
            for s in src.suites
        ):
            return src.uri
    raise UserError(
        "no Debian mirror found in the machine's apt sources",
        hint="pass --mirror URL, e.g. the URI of a 'deb' line in /etc/apt/sources.list",
    )
