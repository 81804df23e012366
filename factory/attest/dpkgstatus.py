"""The installed packages of an image, from its dpkg status (var/lib/dpkg/status)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class InstalledPackage:
    name: str
    arch: str
    version: str
    source: str  # the source package (the binary's own name when dpkg names none)
    source_version: str
    maintainer: str = ""
    homepage: str = ""
    summary: str = ""  # the first line of Description

    @property
    def key(self) -> str:
        """How factory.rootfs.debhashes names it: `name version arch`."""
        return f"{self.name} {self.version} {self.arch}"


def _fields(para: str) -> dict[str, str]:
    out: dict[str, str] = {}
    last = ""
    for line in para.splitlines():
        if line[:1].isspace():
            continue  # continuation lines (Description, Conffiles): not needed
        k, sep, v = line.partition(":")
        if sep:
            last = k
            out[last] = v.strip()
    return out


def parse_source(field: str, name: str, version: str) -> tuple[str, str]:
    """`Source: glibc (2.36-9)` -> (glibc, 2.36-9); `Source: zlib` -> (zlib, version)."""
    if not field:
        return name, version
    src, _, rest = field.partition(" ")
    rest = rest.strip()
    if rest.startswith("(") and rest.endswith(")"):
        return src, rest[1:-1]
    return src, version


def parse_status(text: str) -> tuple[InstalledPackage, ...]:
    """Installed packages ("install ok installed"), sorted by name, arch, version."""
    out = []
    for para in text.split("\n\n"):
        f = _fields(para)
        if not f.get("Status", "").endswith(" installed") or "Package" not in f:
            continue
        name, version = f["Package"], f.get("Version", "")
        src, src_version = parse_source(f.get("Source", ""), name, version)
        out.append(
            InstalledPackage(
                name=name,
                arch=f.get("Architecture", ""),
                version=version,
                source=src,
                source_version=src_version,
                maintainer=f.get("Maintainer", ""),
                homepage=f.get("Homepage", ""),
                summary=f.get("Description", ""),
            )
        )
    return tuple(sorted(out))
