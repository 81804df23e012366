"""Image references: `[registry/]repository[:tag][@digest]`.

Grammar from distribution/reference (the one docker, podman and skopeo share):
the first path component is a registry host when it contains '.' or ':' or
is 'localhost'; otherwise the registry is Docker Hub, whose single-component
names live under 'library/'. Registries on loopback addresses are spoken to
over plain HTTP, as container tools do; REPROBASE_INSECURE_REGISTRIES adds
more hosts (comma-separated host[:port]).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from factory.common.errors import UserError

DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"
INSECURE_ENV = "REPROBASE_INSECURE_REGISTRIES"

# distribution/reference regexp.go, simplified to what the grammar accepts.
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPO_RE = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
_LOOPBACK = ("localhost", "127.0.0.1", "::1", "[::1]")


@dataclass(frozen=True)
class Reference:
    registry: str  # host[:port] as written by the user; docker.io for Docker Hub
    repository: str
    tag: str | None = None
    digest: str | None = None

    def __post_init__(self) -> None:
        _host, sep, port = self.registry.rpartition(":")
        if sep and "]" not in port and not (port.isdigit() and 0 < int(port) < 65536):
            raise UserError(f"invalid registry port {port!r} in {self.registry!r}")
        if not _REPO_RE.match(self.repository):
            raise UserError(f"invalid repository name {self.repository!r}")
        if self.tag is not None and not TAG_RE.match(self.tag):
            raise UserError(f"invalid tag {self.tag!r}")
        if self.digest is not None and not _DIGEST_RE.match(self.digest):
            raise UserError(
                f"invalid digest {self.digest!r}", hint="only sha256 digests are supported"
            )

    @property
    def api_host(self) -> str:
        """host[:port] to connect to (Docker Hub's API is not at docker.io)."""
        return DOCKER_HUB_API if self.registry == DOCKER_HUB else self.registry

    @property
    def hostname(self) -> str:
        host = self.registry
        if host.startswith("["):
            return host[1 : host.index("]")]
        return host.rsplit(":", 1)[0] if host.count(":") == 1 else host

    @property
    def insecure(self) -> bool:
        """True when the registry is spoken to over plain HTTP."""
        if self.hostname in _LOOPBACK or self.hostname.startswith("127."):
            return True
        extra = os.environ.get(INSECURE_ENV, "")
        allowed = {h.strip() for h in extra.split(",") if h.strip()}
        return self.registry in allowed or self.hostname in allowed

    @property
    def base_url(self) -> str:
        scheme = "http" if self.insecure else "https"
        return f"{scheme}://{self.api_host}"

    @property
    def reference(self) -> str:
        """What goes after /manifests/: the digest when pinned, else the tag."""
        return self.digest or self.tag or "latest"

    def with_tag(self, tag: str | None) -> Reference:
        return Reference(self.registry, self.repository, tag, None)

    def with_digest(self, digest: str) -> Reference:
        return Reference(self.registry, self.repository, None, digest)

    def __str__(self) -> str:
        s = f"{self.registry}/{self.repository}"
        if self.tag:
            s += f":{self.tag}"
        if self.digest:
            s += f"@{self.digest}"
        return s


def parse_reference(text: str, *, default_tag: str | None = "latest") -> Reference:
    """Parse `[registry/]repository[:tag][@digest]`; a bare name gets `default_tag`."""
    original = text
    text = text.strip()
    for prefix in ("docker://", "oci://"):
        if text.startswith(prefix):
            text = text[len(prefix) :]
    if not text:
        raise UserError("empty image reference")
    digest: str | None = None
    if "@" in text:
        text, digest = text.split("@", 1)
    registry = DOCKER_HUB
    first, sep, rest = text.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost" or first.startswith("[")):
        registry, text = first, rest
    tag: str | None = None
    last_slash = text.rfind("/")
    colon = text.rfind(":")
    if colon > last_slash:
        text, tag = text[:colon], text[colon + 1 :]
    if registry in ("index.docker.io", "registry-1.docker.io"):
        registry = DOCKER_HUB
    if registry == DOCKER_HUB and "/" not in text:
        text = "library/" + text
    if tag is None and digest is None:
        tag = default_tag
    try:
        return Reference(registry, text, tag, digest)
    except UserError as exc:
        raise UserError(
            f"invalid image reference {original!r}: {exc.message}",
            hint="write it as registry/repository:tag, e.g. 127.0.0.1:5000/debian:bookworm",
        ) from None
