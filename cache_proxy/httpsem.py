"""HTTP decisions for responses we build ourselves (``blobresponse`` answers stored blobs).

Pure functions: the async shell in ``app`` applies them.
"""

from __future__ import annotations

import email.utils
import os
from typing import Final

from cache_proxy.routing import Target

_TYPES: Final = {
    ".deb": "application/vnd.debian.binary-package",
    ".udeb": "application/vnd.debian.binary-package",
    ".dsc": "text/prs.lines.tag",
    ".xz": "application/x-xz",
    ".gz": "application/gzip",
    ".bz2": "application/x-bzip2",
    ".lzma": "application/x-lzma",
    ".zst": "application/zstd",
    ".gpg": "application/pgp-signature",
    ".diff": "text/x-diff",
}
IMMUTABLE: Final = "public, max-age=31536000, immutable"  # RFC 8246


def content_type(path: str) -> str:
    name = path.rsplit("/", 1)[-1]
    if name in ("InRelease", "Release", "Packages", "Sources", "Index") or name.startswith(
        "Translation-"
    ):
        return "text/plain; charset=utf-8"
    dot = name.rfind(".")
    return (
        _TYPES.get(name[dot:], "application/octet-stream")
        if dot >= 0
        else ("application/octet-stream")
    )


def cache_control(target: Target, volatile: bool) -> str:
    """Past snapshots never change (RFC 9111 §5.2.2.1 max-age); future ones may."""
    return "no-cache" if volatile else IMMUTABLE


def http_date(epoch: float) -> str:
    return email.utils.formatdate(epoch, usegmt=True)


def not_modified(if_modified_since: str | None, mtime: float | None) -> bool:
    """RFC 9110 §13.1.3: true if the representation is not newer than the given date."""
    if not if_modified_since or not mtime:
        return False
    try:
        since = email.utils.parsedate_to_datetime(if_modified_since)
    except (TypeError, ValueError):
        return False
    if since.tzinfo is None:
        return False
    return int(mtime) <= since.timestamp()


def parse_http_date(value: str | None) -> float | None:
    if not value:
        return None
    try:
        dt = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return dt.timestamp() if dt.tzinfo is not None else None


def is_bytes_range(value: str) -> bool:
    """RFC 9110 §14.2: a Range in a unit we do not know ("items=0-5") is ignored (the
    whole representation is sent); only the bytes unit (case-insensitive) is ours."""
    unit, sep, _ = value.strip().partition("=")
    return bool(sep) and unit.strip().lower() == "bytes"


def is_entity_tag(value: str) -> bool:
    return value.startswith(('"', "W/"))


def file_etag(st: os.stat_result) -> str:
    """The ETag aiohttp's FileResponse sends for a file with this stat."""
    return f'"{st.st_mtime_ns:x}-{st.st_size:x}"'


def strong_etag_match(if_range: str, etag: str) -> bool:
    """RFC 9110 §8.8.3.2 strong comparison; weak tags never match in If-Range."""
    return not if_range.startswith("W/") and if_range.strip() == etag
