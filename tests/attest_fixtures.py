"""Synthetic inputs for the attestation tests: a tiny root filesystem as the hook sees it."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

from factory.attest.sbom import Sbom, SbomSubject, sbom_from_facts
from factory.rootfs.debhashes import collect

STATUS = """\
Package: libc6
Status: install ok installed
Priority: optional
Architecture: amd64
Multi-Arch: same
Source: glibc (2.36-9+deb12u4)
Version: 2.36-9+deb12u4
Maintainer: GNU Libc Maintainers <debian-glibc@lists.debian.org>
Description: GNU C Library: Shared libraries
 Contains the standard libraries.
Homepage: https://www.gnu.org/software/libc/libc.html

Package: base-files
Status: install ok installed
Architecture: amd64
Version: 12.4+deb12u5
Maintainer: Santiago Vila <sanvila@debian.org>
Description: Debian base system miscellaneous files

Package: libgcc-s1
Status: install ok installed
Architecture: amd64
Source: gcc-12
Version: 12.2.0-14
Description: GCC support library

Package: removed-thing
Status: deinstall ok config-files
Architecture: amd64
Version: 1.0
"""
DEP5 = """\
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: glibc

Files: *
Copyright: 1991-2023 Free Software Foundation, Inc.
License: LGPL-2.1+

Files: debian/*
License: GPL-2+ or Artistic

Files: other/*
License: GPL-2+ with OpenSSL exception
"""
FREEFORM = "This is the Debian prepackaged version of base-files.\nCopyright (C) ...\n"


def deb_sha(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


def packages_list(names: list[tuple[str, str, str]]) -> str:
    paras = []
    for name, version, arch in names:
        paras.append(
            f"Package: {name}\nVersion: {version}\nArchitecture: {arch}\n"
            f"Filename: pool/main/{name[0]}/{name}/{name}_{version}_{arch}.deb\n"
            f"Size: 1234\nSHA256: {deb_sha(name + version)}\nDescription: x\n"
        )
    return "\n".join(paras)


def make_root(root: Path) -> Path:
    (root / "var/lib/dpkg").mkdir(parents=True)
    (root / "var/lib/dpkg/status").write_text(STATUS)
    lists = root / "var/lib/apt/lists"
    lists.mkdir(parents=True)
    main = "proxy.invalid:3142_archive_debian_20261201T000000Z_dists_bookworm"
    (lists / f"{main}_InRelease").write_bytes(b"signed release\n")
    (lists / f"{main}_main_binary-amd64_Packages").write_text(
        packages_list(
            [("base-files", "12.4+deb12u5", "amd64"), ("libgcc-s1", "12.2.0-14", "amd64"),
             ("libc6", "2.36-9", "amd64"), ("unrelated", "1", "amd64")]
        )
    )  # fmt: skip
    sec = "proxy.invalid:3142_archive_debian-security_20261201T000000Z_dists_bookworm-security"
    (lists / f"{sec}_InRelease").write_bytes(b"signed security release\n")
    (lists / f"{sec}_main_binary-amd64_Packages.gz").write_bytes(
        gzip.compress(packages_list([("libc6", "2.36-9+deb12u4", "amd64")]).encode(), mtime=0)
    )
    doc = root / "usr/share/doc"
    (doc / "libc6").mkdir(parents=True)
    (doc / "libc6/copyright").write_text(DEP5)
    (doc / "base-files").mkdir()
    (doc / "base-files/copyright").write_text(FREEFORM)
    (doc / "gcc-12-base").mkdir()
    (doc / "gcc-12-base/copyright").write_text(
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\n"
        "Files: *\nLicense: GPL-3+\n"
    )
    (doc / "libgcc-s1").symlink_to("gcc-12-base")
    return root


SUBJECT = SbomSubject(
    image="debian:bookworm",
    arch="amd64",
    platform="linux/amd64",
    snapshot="20261201T000000Z",
    epoch=1796083200,
    repositories=(
        ("debian", "http://snapshot.invalid/archive/debian/20261201T000000Z/"),
        ("debian-security", "http://snapshot.invalid/archive/debian-security/20261201T000000Z/"),
    ),
    tool_version="0.1.0",
)


def sample_sbom(root: Path) -> Sbom:
    return sbom_from_facts(collect(make_root(root)), SUBJECT)
