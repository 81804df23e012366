"""What both SBOM formats say, decided once: the image, its packages, their hashes.

Pure: built from the facts factory.rootfs.debhashes read in the chroot (dpkg status,
copyright files, apt's verified SHA-256 of each .deb). Document ids are derived from
the content (UUID 5), never random, and the creation time is SOURCE_DATE_EPOCH: the
same image gives the same SBOM bytes on every build.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from factory.attest import licenses
from factory.attest.dpkgstatus import InstalledPackage, parse_status
from factory.common.canonical import canonical_json

TOOL = "reprobase"
# a fixed namespace for the content-derived document ids (uuid5 of the canonical content)
ID_NAMESPACE = uuid.UUID("5b0c1f0e-8d2a-4c3e-9a57-2f6b1e0d7c41")


@dataclass(frozen=True)
class DebFile:
    sha256: str
    size: int
    filename: str  # pool/main/...
    archive: str = "debian"  # or debian-security


@dataclass(frozen=True)
class SbomPackage:
    pkg: InstalledPackage
    deb: DebFile | None
    licenses: tuple[str, ...] | None  # Debian's names; None: no machine-readable file
    copyright_file: bool  # the image has /usr/share/doc/NAME/copyright

    def purl(self, repository_url: str) -> str:
        """purl-spec's deb type: pkg:deb/debian/NAME@VERSION?arch=ARCH&repository_url=URL."""
        q = f"arch={quote(self.pkg.arch, safe='')}"
        if repository_url:
            q += f"&repository_url={quote(repository_url, safe='')}"
        return (
            f"pkg:deb/debian/{quote(self.pkg.name, safe='')}@{quote(self.pkg.version, safe='')}?{q}"
        )

    def repository_url(self, subject: SbomSubject) -> str:
        return subject.repository_url(self.deb.archive if self.deb else "debian")

    def license_expression(self) -> str | None:
        if not self.licenses:
            return None
        return licenses.spdx_expression(self.licenses)


@dataclass(frozen=True)
class SbomSubject:
    image: str  # debian:bookworm
    arch: str  # Debian architecture name
    platform: str  # linux/amd64
    snapshot: str  # YYYYMMDDTHHMMSSZ
    epoch: int  # SOURCE_DATE_EPOCH
    # archive ("debian", "debian-security") -> its URL: the snapshot's (or the mirror's)
    repositories: tuple[tuple[str, str], ...]
    tool_version: str

    def repository_url(self, archive: str) -> str:
        return dict(self.repositories).get(archive, "")

    @property
    def created(self) -> str:
        return dt.datetime.fromtimestamp(self.epoch, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    @property
    def name(self) -> str:
        return f"{self.image} {self.platform} @ {self.snapshot}"


@dataclass(frozen=True)
class Sbom:
    subject: SbomSubject
    packages: tuple[SbomPackage, ...]

    def content_id(self, kind: str) -> uuid.UUID:
        """A stable document id: the same content always gets the same one."""
        return uuid.uuid5(ID_NAMESPACE, kind + ":" + canonical_json(self.summary()).decode())

    def summary(self) -> dict[str, Any]:
        s = self.subject
        return {
            "image": s.image,
            "platform": s.platform,
            "snapshot": s.snapshot,
            "packages": [
                [p.pkg.name, p.pkg.version, p.pkg.arch, p.deb.sha256 if p.deb else ""]
                for p in self.packages
            ],
        }

    def counts(self) -> dict[str, int]:
        return {
            "packages": len(self.packages),
            "with_sha256": sum(1 for p in self.packages if p.deb),
            "with_license": sum(1 for p in self.packages if p.licenses),
            "without_copyright_file": sum(1 for p in self.packages if not p.copyright_file),
        }


def _copyright_text(copyrights: dict[str, str], name: str) -> str | None:
    """The package's copyright file, following a symlinked doc dir (libgcc-s1 -> gcc-12-base)."""
    seen = set()
    while name in copyrights and name not in seen:
        seen.add(name)
        text = copyrights[name]
        if not text.startswith("->"):
            return text
        name = text[2:]
    return None


def sbom_from_facts(facts: dict[str, Any], subject: SbomSubject) -> Sbom:
    copyrights: dict[str, str] = facts.get("copyright", {})
    debs: dict[str, dict[str, Any]] = facts.get("debs", {})
    out = []
    for pkg in parse_status(facts.get("status", "")):
        d = debs.get(pkg.key)
        deb = (
            DebFile(d["sha256"], int(d["size"]), d["filename"], d.get("archive", "debian"))
            if d
            else None
        )
        text = _copyright_text(copyrights, pkg.name)
        names = licenses.declared(text) if text is not None else None
        out.append(SbomPackage(pkg, deb, names, text is not None))
    return Sbom(subject, tuple(out))
