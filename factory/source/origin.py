"""Where an image's packages came from: the one enum every stage asks.

The values are what images say (label ``org.reprobase.packages-from``): changing one
changes every image's bytes, so they are fixed.
"""

from __future__ import annotations

import enum

from factory.common.errors import UserError

NO_SECURITY = "none"  # --security-mirror none: a mirror build without security updates


class Origin(enum.Enum):
    SNAPSHOT = "snapshot.debian.org"
    RECORDED_MIRROR = "recorded-mirror"  # the machine's mirror, frozen per timestamp by the proxy
    MIRROR = "mirror"  # a plain Debian archive as it was at build time

    @classmethod
    def from_label(cls, text: str | None, where: str) -> Origin:
        """The image's label; images from before the label came from snapshot.debian.org."""
        if text is None:
            return cls.SNAPSHOT
        try:
            return cls(text)
        except ValueError:
            raise UserError(
                f"{where}: unknown packages-from {text!r}",
                hint="expected " + ", ".join(o.value for o in cls),
            ) from None

    @property
    def pinned(self) -> bool:
        """True only when the packages are pinned to snapshot.debian.org."""
        return self is Origin.SNAPSHOT

    @property
    def label(self) -> str:
        """A few words for the dashboard: where, and whether that is a pin."""
        return {
            Origin.SNAPSHOT: "snapshot.debian.org (pinned)",
            Origin.RECORDED_MIRROR: "a recorded Debian mirror (not snapshot.debian.org)",
            Origin.MIRROR: "a Debian mirror at build time (not pinned)",
        }[self]

    @property
    def proxy_upstream(self) -> str:
        """What a cache proxy serving this origin is started with (--upstream)."""
        return "record" if self is Origin.RECORDED_MIRROR else "snapshot"

    def pin_statement(self, mirror: str | None, security_mirror: str | None) -> str:
        """What the packages really came from, in words (the description says it)."""
        name = mirror or "(unnamed)"
        if self is Origin.MIRROR:
            sec = (
                "without the security archive: security updates are missing"
                if security_mirror in (None, NO_SECURITY)
                else f"with the security archive {security_mirror}"
            )
            return (
                f"packages from the Debian mirror {name} as it was at "
                f"build time, {sec}; not pinned to snapshot.debian.org"
            )
        if self is Origin.RECORDED_MIRROR:
            return (
                f"packages from the Debian mirror {name}, recorded by "
                "the reprobase proxy under the snapshot timestamp; not snapshot.debian.org"
            )
        return "packages pinned to snapshot.debian.org"

    def rebuild_flags(self, mirror: str | None, security_mirror: str | None) -> list[str]:
        """The `reprobase build` flags that rebuild from this origin."""
        if self is Origin.RECORDED_MIRROR:
            return ["--upstream", "record"]
        if self is Origin.MIRROR and mirror:
            return ["--mirror", mirror, "--security-mirror", security_mirror or NO_SECURITY]
        return []
