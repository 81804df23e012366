"""Verification of a download against everything known about it, before it is stored."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from typing import Final

_ALGOS: Final = {"MD5Sum": "md5", "SHA1": "sha1", "SHA256": "sha256", "SHA512": "sha512"}


class VerifyError(Exception):
    """The bytes received are not the bytes expected (truncated, corrupted, other file)."""


@dataclass(frozen=True)
class Expect:
    """What a download must be. ``None`` fields are unknown and not checked."""

    size: int | None = None
    sha256: str | None = None
    sha1: str | None = None
    by_hash: tuple[str, str] | None = None  # (Release algorithm name, hex) from a by-hash path

    def merge(self, **kw: object) -> Expect:
        return replace(self, **{k: v for k, v in kw.items() if v is not None})  # type: ignore[arg-type]

    @property
    def strong(self) -> bool:
        """True if a content hash is known (not only a length)."""
        return bool(self.sha256 or self.sha1 or self.by_hash)


@dataclass(frozen=True)
class Digest:
    size: int
    sha256: str
    sha1: str


class Hasher:
    """Incremental hashes of a download; ``finish`` checks them against an ``Expect``."""

    def __init__(
        self, expect: Expect, content_length: int | None, max_body: int | None = None
    ) -> None:
        self.expect = expect
        self.content_length = content_length
        # The first bound known: the expected size, the announced length, else the cap.
        self.limit = next(
            (n for n in (expect.size, content_length, max_body) if n is not None), None
        )
        self.size = 0
        self._sha256 = hashlib.sha256()
        self._sha1 = hashlib.sha1()
        self._extra = None
        if expect.by_hash and expect.by_hash[0] not in ("SHA256", "SHA1"):
            self._extra = hashlib.new(_ALGOS[expect.by_hash[0]])
        if expect.size is not None and content_length is not None and expect.size != content_length:
            raise VerifyError(f"Content-Length {content_length}, expected size {expect.size}")

    def update(self, chunk: bytes) -> None:
        self.size += len(chunk)
        self._sha256.update(chunk)
        self._sha1.update(chunk)
        if self._extra is not None:
            self._extra.update(chunk)
        if self.limit is not None and self.size > self.limit:
            raise VerifyError(f"more than {self.limit} bytes received")

    def finish(self) -> Digest:
        d = Digest(self.size, self._sha256.hexdigest(), self._sha1.hexdigest())
        e = self.expect
        # RFC 9112 §6.3: a body shorter than its Content-Length is incomplete.
        if self.content_length is not None and d.size != self.content_length:
            raise VerifyError(f"got {d.size} of {self.content_length} bytes (truncated)")
        if e.size is not None and d.size != e.size:
            raise VerifyError(f"size {d.size}, expected {e.size}")
        if e.sha256 is not None and d.sha256 != e.sha256:
            raise VerifyError(f"SHA-256 {d.sha256}, expected {e.sha256}")
        if e.sha1 is not None and d.sha1 != e.sha1:
            raise VerifyError(f"SHA-1 {d.sha1}, expected {e.sha1}")
        if e.by_hash is not None:
            algo, want = e.by_hash
            got = {"SHA256": d.sha256, "SHA1": d.sha1}.get(algo)
            if got is None:
                assert self._extra is not None
                got = self._extra.hexdigest()
            if got != want:
                raise VerifyError(f"{algo} {got}, expected {want} (by-hash path)")
        return d
