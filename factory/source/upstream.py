"""Where a build's packages come from: resolved in one place, in one documented order.

1. `--mirror URL`: a plain Debian archive, used directly (the image records it).
2. `--proxy URL`: an already running reprobase cache proxy; `--upstream` says what
   it serves (snapshot or record), for the image's provenance.
3. Otherwise a cache proxy is started for the build, on loopback, with
   `--upstream`: `snapshot` (snapshot.debian.org, strict), `record` (the machine's
   configured Debian mirror, frozen per timestamp by the proxy's recorder mode)
   or `auto` (snapshot when reachable, else record, and say so).
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import tempfile
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cache_proxy.paths import proxy_cache_dir
from factory.common.errors import UserError
from factory.source import proxyctl
from factory.source.aptsources import system_debian_mirror
from factory.source.buildsource import BuildSource
from factory.source.origin import NO_SECURITY, Origin
from factory.source.snapshot import Timestamp

log = logging.getLogger("reprobase.upstream")
UPSTREAMS = ("auto", "snapshot", "record")


@dataclass(frozen=True)
class SourceChoice:
    mirror: str | None = None
    security_mirror: str | None = None
    proxy: str | None = None
    upstream: str = "auto"
    cache_dir: Path | None = None

    def validate(self) -> None:
        """Refuse impossible combinations and malformed URLs or paths, before any build."""
        for flag, url in (
            ("--mirror", self.mirror),
            ("--security-mirror", self.security_mirror),
            ("--proxy", self.proxy),
        ):
            if url is not None and not (flag == "--security-mirror" and url == NO_SECURITY):
                check_http_url(flag, url)
        if self.upstream not in UPSTREAMS:
            raise UserError(
                f"unknown --upstream {self.upstream!r}", hint="use auto, snapshot or record"
            )
        if self.mirror and self.proxy:
            raise UserError(
                "--mirror and --proxy are exclusive",
                hint="point --mirror at the proxy, or use --proxy alone",
            )
        if self.security_mirror and not self.mirror:
            raise UserError(
                "--security-mirror needs --mirror",
                hint="the proxy and snapshot.debian.org bring their own security archive",
            )
        if self.proxy and self.upstream == "auto":
            raise UserError(
                "--proxy needs --upstream snapshot or --upstream record",
                hint="say what the proxy serves, so the image records it",
            )
        if not self.mirror and not self.proxy:
            check_cache_dir(self.cache_dir or default_cache_dir())


def check_http_url(flag: str, url: str) -> None:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or any(c.isspace() for c in url):
        raise UserError(
            f"{flag} {url!r} is not an http(s) URL",
            hint=f"e.g. {flag} http://MIRROR/debian (a URI from /etc/apt/sources.list)",
        )


def check_cache_dir(path: Path) -> None:
    """The proxy's store must be a directory we can create or write, and an existing one
    must be a store already (or empty): the proxy never fills a directory of the user's."""
    if path.is_dir() and not is_proxy_store(path):
        raise UserError(
            f"cannot use --cache-dir {path}: the directory holds files that are not a "
            "reprobase proxy store",
            hint="give a new or empty directory, or an existing proxy store",
        )
    check_writable("--cache-dir", path)


def is_proxy_store(path: Path) -> bool:
    """A directory the cache proxy may fill (the proxy's own rule)."""
    from cache_proxy.cli import is_store

    return is_store(path)


def check_writable(flag: str, path: Path) -> None:
    """path is a directory that exists or can be made: create and remove a probe directory
    in its nearest existing ancestor (root passes permission bits, not /proc)."""
    existing = path.absolute()
    while not existing.exists():
        existing = existing.parent
    try:
        if not existing.is_dir():
            raise NotADirectoryError(f"{existing} is not a directory")
        os.rmdir(tempfile.mkdtemp(prefix=".reprobase-probe-", dir=existing))
    except OSError as exc:
        raise UserError(
            f"cannot use {flag} {path}: {exc.strerror or exc}",
            hint=f"give {flag} a directory on a writable file system",
        ) from None


@dataclass(frozen=True)
class ResolvedSource:
    apt: BuildSource
    packages_from: Origin
    mirror: str | None  # recorded in the image (never a loopback address)
    proxy: proxyctl.ProxyHandle | None
    security_mirror: str | None = None  # mirror builds: the security archive, or "none"


def default_cache_dir() -> Path:
    """The same store `reprobase proxy` uses by default (cache_proxy.paths)."""
    return proxy_cache_dir()


def is_loopback_url(url: str) -> bool:
    host = urllib.parse.urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def public_url(url: str | None) -> str | None:
    """A URL fit to record in an image: never a loopback proxy, never credentials."""
    if not url or is_loopback_url(url) or url.startswith("file:"):
        return None
    parts = urllib.parse.urlsplit(url)
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def preflight(src: ResolvedSource, suite: str) -> None:
    """Ask for the suite's Release the way apt will (through the proxy, if any) before the
    first build: a wrong mirror or a refused pin is one line now, not a failed mmdebstrap."""
    url = f"{src.apt.debian_url.rstrip('/')}/dists/{suite}/InRelease"
    status, body = proxyctl.fetch(url, via=src.apt.proxy)
    if status == 200:
        return
    if status == 404:  # some mirrors have only Release
        status, body = proxyctl.fetch(url[: -len("InRelease")] + "Release", via=src.apt.proxy)
        if status == 200:
            return
    said = body.decode("utf-8", "replace").strip().splitlines()[:1]
    why = f"HTTP {status}" if status else "no answer"
    via = f" through the proxy {src.apt.proxy}" if src.apt.proxy else ""
    raise UserError(
        f"{url} cannot be read{via} ({why}{': ' + said[0][:300] if said else ''})",
        hint="check --mirror/--proxy, the network, or the snapshot date",
    )


def security_beside(mirror_url: str, suite: str | None = None) -> str | None:
    """The security archive next to a mirror (.../debian -> .../debian-security), if it
    answers; None when there is none (the image then says it has no security updates)."""
    u = mirror_url.rstrip("/")
    if not u.endswith("/debian"):
        return None
    candidate = u + "-security/"
    probe = f"dists/{suite}-security/Release" if suite else "dists/"
    if candidate.startswith("file:"):
        path = Path(urllib.parse.urlsplit(candidate).path) / probe
        return candidate if path.exists() else None
    status = proxyctl.url_status(candidate + probe)
    return candidate if 200 <= status < 400 else None


def mirror_base(mirror_url: str) -> str:
    """http://mirror.invalid/debian/ -> http://mirror.invalid/: archive <a> is <base><a>/."""
    u = mirror_url.rstrip("/")
    if not u.endswith("/debian"):
        raise UserError(
            f"cannot record {mirror_url}: its path does not end in /debian/",
            hint="pass --mirror URL to build from it directly",
        )
    return u[: -len("debian")]


def choose_upstream(upstream: str) -> tuple[str, bool]:
    """Returns (proxy upstream base, record?)."""
    if upstream not in UPSTREAMS:
        raise UserError(f"unknown --upstream {upstream!r}", hint="use auto, snapshot or record")
    if upstream == "snapshot":
        # Strict: scheduled publication must never silently fall back to a mirror.
        if not proxyctl.snapshot_reachable():
            raise UserError(
                "snapshot.debian.org cannot be reached and the upstream is strict (snapshot)",
                hint="check the network, or use --upstream auto/record to record a mirror",
            )
        return proxyctl.SNAPSHOT_UPSTREAM, False
    if upstream == "auto" and proxyctl.snapshot_reachable():
        return proxyctl.SNAPSHOT_UPSTREAM, False
    mirror = system_debian_mirror()
    if upstream == "auto":
        log.warning(
            "snapshot.debian.org cannot be reached: recording the machine's configured Debian "
            "mirror instead (images will say they came from a recorded mirror)"
        )
    return mirror_base(mirror), True


@contextlib.contextmanager
def resolve(
    choice: SourceChoice, pin: Timestamp, log_dir: Path, suite: str | None = None
) -> Iterator[ResolvedSource]:
    """suite: the recipe's, to find a mirror's security archive (dists/SUITE-security)."""
    choice.validate()
    if choice.mirror:
        if choice.proxy:
            raise UserError(
                "--mirror and --proxy are exclusive",
                hint="point --mirror at the proxy, or use --proxy alone",
            )
        security = choice.security_mirror or security_beside(choice.mirror, suite)
        if security is None:
            log.warning(
                "warning: no security archive beside %s: the image will lack security "
                "updates, and says so (give --security-mirror URL, or --security-mirror none)",
                choice.mirror,
            )
            security = NO_SECURITY
        apt = BuildSource.mirror(choice.mirror, None if security == NO_SECURITY else security)
        recorded = security if security == NO_SECURITY else public_url(security)
        yield ResolvedSource(apt, Origin.MIRROR, public_url(choice.mirror), None, recorded)
        return
    if choice.proxy:
        if choice.upstream == "auto":
            raise UserError(
                "--proxy needs --upstream snapshot or --upstream record",
                hint="say what the proxy serves, so the image records it",
            )
        origin = Origin.RECORDED_MIRROR if choice.upstream == "record" else Origin.SNAPSHOT
        yield ResolvedSource(
            BuildSource.snapshot(pin, choice.proxy),
            origin,
            None,
            proxyctl.ProxyHandle(choice.proxy, None),
        )
        return
    base, record = choose_upstream(choice.upstream)
    log_dir.mkdir(parents=True, exist_ok=True)
    cfg = proxyctl.ProxyLaunch(
        choice.cache_dir or default_cache_dir(), base, record, log_dir / "proxy.log"
    )
    with proxyctl.running(cfg) as handle:
        origin = Origin.RECORDED_MIRROR if record else Origin.SNAPSHOT
        yield ResolvedSource(
            BuildSource.snapshot(pin, handle.url),
            origin,
            public_url(base) if record else None,
            handle,
        )
