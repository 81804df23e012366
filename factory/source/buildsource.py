"""The apt sources a build uses (build time only: never what the image's sources say)."""

from __future__ import annotations

from dataclasses import dataclass

from factory.source.snapshot import Timestamp, has_security, snapshot_url


@dataclass(frozen=True)
class BuildSource:
    """Where packages come from during the build.

    `kind` is the archive's shape, not the image's origin (factory.source.origin): a
    recorded mirror is served by the proxy under snapshot-style URLs, so it is "snapshot".
    """

    kind: str  # "snapshot" (snapshot.debian.org URLs, possibly via the proxy) or "mirror"
    debian_url: str
    security_url: str | None
    proxy: str | None = None  # http://127.0.0.1:PORT/ — build time only

    @classmethod
    def snapshot(cls, ts: Timestamp, proxy: str | None) -> BuildSource:
        return cls(
            "snapshot", snapshot_url("debian", ts), snapshot_url("debian-security", ts), proxy
        )

    @classmethod
    def mirror(
        cls, url: str, security_url: str | None = None, proxy: str | None = None
    ) -> BuildSource:
        return cls("mirror", url.rstrip("/") + "/", security_url, proxy)

    def lines(self, suite: str, components: tuple[str, ...]) -> list[str]:
        comps = " ".join(components)
        opt = "[check-valid-until=no] " if self.kind == "snapshot" else ""
        out = [f"deb {opt}{self.debian_url} {s} {comps}" for s in (suite, f"{suite}-updates")]
        if self.security_url and has_security(suite):
            out.append(f"deb {opt}{self.security_url} {suite}-security {comps}")
        return out
