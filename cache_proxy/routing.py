"""Which archive file a request names: mirror-mode paths and forward-proxy URIs.

Mirror mode is snapshot.debian.org's own layout, ``/archive/<archive>/<ts>/<path>``;
forward mode receives the same URL in absolute form (RFC 9112 §3.2.2) from apt
configured with ``Acquire::http::Proxy``. Both become one ``Target``.
"""

from __future__ import annotations

import enum
import functools
import re
from dataclasses import dataclass
from typing import Final
from urllib.parse import quote

from cache_proxy import timestamps

_ARCHIVE_PATH: Final = re.compile(r"^/archive/(?P<archive>[^/]+)/(?P<ts>[^/]+)/(?P<path>.+)$")
_ARCHIVE_NAME: Final = re.compile(r"^[a-z0-9][a-z0-9.+-]*$")
_BY_HASH: Final = re.compile(
    r"^dists/.+/by-hash/(?P<algo>MD5Sum|SHA1|SHA256|SHA512)/(?P<hex>[0-9a-f]+)$"
)
_RELEASE: Final = re.compile(r"^dists/(?P<suite>[^/]+)/(?P<name>InRelease|Release|Release\.gpg)$")
_INDEX_NAME: Final = re.compile(r"^(?P<kind>Packages|Sources)(?P<ext>\.xz|\.gz|\.bz2|\.lzma)?$")
FILE_SHA1: Final = re.compile(r"^/file/(?P<sha1>[0-9a-f]{40})$")
_UNSAFE_SEGMENTS: Final = frozenset({"", ".", ".."})
# RFC 3986 §3.3 pchar minus '%': what may stay literal in an upstream path.
_PATH_SAFE: Final = "/-._~!$&'()*+,;=:@"


class BadTarget(ValueError):
    """The request does not name an archive file we serve."""


class Kind(enum.Enum):
    RELEASE = "release"  # dists/<suite>/{InRelease,Release,Release.gpg}: signed roots
    BY_HASH = "by-hash"  # dists/.../by-hash/<algo>/<hex>: named by their content
    INDEX = "index"  # other dists/ files, listed in the suite's Release
    FILE = "file"  # pool/ and the rest, listed in Packages/Sources
    SHA1 = "sha1"  # snapshot's /file/<sha1>: named by its content, under no timestamp


@dataclass(frozen=True)
class Target:
    archive: str
    ts: str  # canonical spelling
    path: str  # relative to the archive root, decoded, no leading '/'

    @classmethod
    def by_sha1(cls, sha1: str) -> Target:
        """snapshot.debian.org's ``/file/<sha1>``: no archive, no timestamp."""
        return cls("", "", sha1)

    @functools.cached_property
    def kind(self) -> Kind:
        if not self.archive:
            return Kind.SHA1
        if _RELEASE.match(self.path):
            return Kind.RELEASE
        if _BY_HASH.match(self.path):
            return Kind.BY_HASH
        if self.path.startswith("dists/"):
            return Kind.INDEX
        return Kind.FILE

    @property
    def suite(self) -> str | None:
        parts = self.path.split("/")
        return parts[1] if len(parts) > 2 and parts[0] == "dists" else None

    @property
    def by_hash(self) -> tuple[str, str] | None:
        m = _BY_HASH.match(self.path)
        return (m["algo"], m["hex"]) if m else None

    @property
    def quoted_path(self) -> str:
        return quote(self.path, safe=_PATH_SAFE)

    @property
    def request_path(self) -> str:
        """This file's path on a snapshot-style server (ours included)."""
        if self.kind is Kind.SHA1:
            return f"/file/{self.path}"
        return f"/archive/{self.archive}/{self.ts}/{self.quoted_path}"

    def key(self, ts: str | None = None) -> str:
        """The alias under which this file is remembered (with ``ts`` if resolved)."""
        if self.kind is Kind.SHA1:
            return f"sha1:{self.path}"
        return f"url:{self.archive}/{ts or self.ts}/{self.path}"

    def with_ts(self, ts: str) -> Target:
        return Target(self.archive, ts, self.path)


def index_kind(path: str) -> tuple[str, str] | None:
    """('Packages'|'Sources', compression extension) if ``path`` names such an index."""
    m = _INDEX_NAME.match(path.rsplit("/", 1)[-1])
    return (m["kind"], m["ext"] or "") if m else None


_POOL_FILE: Final = re.compile(r"^pool/(?P<component>[^/]+)/.+/(?P<name>[^/]+)$")
_BINARY_NAME: Final = re.compile(r"_(?P<arch>[a-z0-9-]+)\.(?P<type>deb|udeb)$")
_SOURCE_NAME: Final = re.compile(r"\.(dsc|tar(\.(gz|xz|bz2|lzma|zst))?|diff\.gz|asc)$")
_COMPRESSION_RANK: Final = {".xz": 0, ".gz": 1, ".bz2": 2, ".lzma": 3, "": 4}


def listing_candidates(path: str, release_paths: list[str]) -> list[str]:
    """The Packages/Sources files, among those a Release lists, that would list ``path``.

    For a pool file asked for before its index: binary packages are listed under
    ``<component>/binary-<arch>`` (``debian-installer/`` for .udeb), and an
    ``_all`` package in ``binary-all`` or in any architecture's list, so we try
    ``binary-all`` then one architecture; sources under ``<component>/source``.
    One file per list, the best compressed; suites in name order.
    """
    m = _POOL_FILE.match(path)
    if m is None:
        return []
    component, name = m["component"], m["name"]
    binary = _BINARY_NAME.search(name)
    if binary:
        prefix = "debian-installer/binary-" if binary["type"] == "udeb" else "binary-"
        arch = binary["arch"]
        wanted_kind = "Packages"
    elif _SOURCE_NAME.search(name):
        prefix, arch, wanted_kind = "source", "", "Sources"
    else:
        return []
    # (suite, directory) -> best (rank, path)
    best: dict[tuple[str, str], tuple[int, str]] = {}
    for listed in release_paths:
        parts = listed.split("/")
        if len(parts) < 5 or parts[0] != "dists" or parts[2] != component:
            continue
        kind = index_kind(listed)
        directory = "/".join(parts[3:-1])
        if kind is None or kind[0] != wanted_kind or not directory.startswith(prefix):
            continue
        if binary and arch != "all" and directory != prefix + arch:
            continue
        if not binary and directory != prefix:
            continue
        rank = _COMPRESSION_RANK.get(kind[1], 9)
        key = (parts[1], directory)
        if key not in best or rank < best[key][0]:
            best[key] = (rank, listed)
    out: list[str] = []
    for suite in sorted({s for s, _ in best}):
        dirs = sorted(d for s, d in best if s == suite)
        if binary and arch == "all":
            # binary-all first, then the first architecture's list (arch:all is in each)
            alls = [d for d in dirs if d == prefix + "all"]
            dirs = alls + [d for d in dirs if d != prefix + "all"][:1]
        out.extend(best[(suite, d)][1] for d in dirs)
    return out


def parse_file_path(path: str) -> Target | None:
    """``/file/<sha1>`` (40 lowercase hex digits), else None."""
    m = FILE_SHA1.match(path)
    return Target.by_sha1(m["sha1"]) if m else None


def file_url(base: str, sha1: str) -> str | None:
    """The ``/file/`` URL next to an archive base such as ``http://host/archive/``."""
    if not base.endswith("/archive/"):
        return None
    return f"{base[: -len('archive/')]}file/{sha1}"


@functools.lru_cache(maxsize=16384)
def parse_archive_path(path: str, archives: tuple[str, ...]) -> Target:
    """Parse a decoded ``/archive/<archive>/<ts>/<path>`` request path."""
    m = _ARCHIVE_PATH.match(path)
    if m is None:
        raise BadTarget("not an /archive/<archive>/<timestamp>/<path> URL")
    archive = m["archive"]
    if not _ARCHIVE_NAME.match(archive) or archive not in archives:
        raise BadTarget(f"archive {archive!r} is not served")
    try:
        ts = timestamps.canonical(m["ts"])
    except timestamps.BadTimestamp as exc:
        raise BadTarget(f"{m['ts']!r} is not a snapshot timestamp") from exc
    rel = m["path"]
    segments = rel.split("/")
    if any(s in _UNSAFE_SEGMENTS for s in segments) or "\\" in rel or "\x00" in rel:
        raise BadTarget("path has empty, '.' or '..' segments")
    return Target(archive, ts, rel)


def forward_host_allowed(host: str | None, port: int | None, allowed: frozenset[str]) -> bool:
    """Forward requests may only name our upstreams: we are not an open proxy."""
    if not host:
        return False
    return f"{host.lower()}:{port or 80}" in allowed
