"""Proxy configuration: one frozen dataclass, resolved once from the command line."""

from __future__ import annotations

import enum
import ipaddress
import os
import re
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

from cache_proxy.safety import redact

SNAPSHOT_HOST: Final = "snapshot.debian.org"
DEFAULT_UPSTREAM: Final = f"http://{SNAPSHOT_HOST}/archive/"
DEFAULT_PORT: Final = 3142
MAX_WORKERS: Final = 64


class Mode(enum.Enum):
    """How an upstream base URL is laid out."""

    SNAPSHOT = "snapshot"  # <base><archive>/<timestamp>/<path>, timestamps resolved upstream
    RECORD = "record"  # <base><archive>/<path>, a plain mirror frozen per timestamp here

    def upstream_url(self, base: str, archive: str, ts: str, path: str) -> str:
        if self is Mode.SNAPSHOT:
            return f"{base}{archive}/{ts}/{path}"
        return f"{base}{archive}/{path}"


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5  # per mirror, first try included
    backoff_initial: float = 0.5  # seconds; exponential with jitter
    backoff_max: float = 30.0
    retry_after_max: float = 120.0  # never sleep longer than this on a Retry-After


@dataclass(frozen=True)
class ProxyConfig:
    cache_dir: Path
    upstreams: tuple[str, ...] = (DEFAULT_UPSTREAM,)
    mode: Mode = Mode.SNAPSHOT
    host: str = "0.0.0.0"
    port: int = DEFAULT_PORT
    port_file: Path | None = None
    max_size: int | None = None  # bytes; None = unbounded
    per_host_connections: int = 4
    connect_timeout: float = 15.0
    read_timeout: float = 60.0  # between two reads; no total timeout (large .debs)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    volatile_window: timedelta = timedelta(hours=0)
    volatile_ttl: float = 60.0  # seconds a volatile answer is reused
    # Recorder mode: a timestamp is recorded (frozen from the mirror as it is now) only
    # if it is at most this old; an older one would label today's packages with a past
    # date. Recordings already made are served whatever their age. None: no limit.
    record_window: timedelta | None = timedelta(days=2)
    access_log: str | None = "-"  # "-" stderr, a path, or None
    archives: tuple[str, ...] = ("debian", "debian-security", "debian-debug", "debian-ports")
    workers: int = 1  # processes on the port: the primary plus workers-1 hit workers
    # Hostile upstream: every size and time of a download is bounded.
    max_header_bytes: int = 8190  # one header line or field (aiohttp's own default)
    max_headers: int = 128  # header fields in one upstream answer
    max_body: int = 8 << 30  # a body with no known length stops here (largest .debs ~2 GiB)
    min_rate: float = 1024.0  # bytes/s over ``rate_window``, else the attempt is dropped
    rate_window: float = 30.0
    slow_rate: float = 64 * 1024.0  # bytes/s over ``slow_after`` seconds: below, the
    slow_after: float = 1.0  # download gives its connection slot to others
    deadline: float = 6 * 3600.0  # seconds one upstream connection may take (then resumed)
    resumes: int = 3  # Range requests to continue one cut or dropped attempt
    # Origins (scheme://host[:port]) besides the upstreams' own that redirects may lead to.
    redirect_origins: tuple[str, ...] = ()
    scrub_rate: float = 0.0  # bytes/s the background scrub re-hashes blobs at; 0: off
    # Networks /metrics answers to (CIDR); None: everyone who reaches the port.
    metrics_networks: tuple[str, ...] | None = None
    # Networks that may open build pin leases, and whose requests a lease pins (see pins).
    pin_networks: tuple[str, ...] = ("127.0.0.0/8", "::1/128")

    def __post_init__(self) -> None:
        if not self.upstreams:
            raise ValueError("at least one upstream is needed")
        for up in self.upstreams:
            parts = urlsplit(up)
            shown = redact(up)  # an error line must not carry the upstream's password
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"upstream {shown!r} is not an http(s) URL")
            if not up.endswith("/"):
                raise ValueError(f"upstream {shown!r} must end with '/'")
        for origin in self.redirect_origins:
            parts = urlsplit(origin)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"redirect origin {redact(origin)!r} is not an http(s) origin")
        for net in (*(self.metrics_networks or ()), *self.pin_networks):
            ipaddress.ip_network(net, strict=False)  # ValueError names the bad one
        if not 1 <= self.workers <= MAX_WORKERS:
            raise ValueError(f"workers must be between 1 and {MAX_WORKERS}, not {self.workers}")

    @property
    def metrics_nets(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] | None:
        if self.metrics_networks is None:
            return None
        return tuple(ipaddress.ip_network(n, strict=False) for n in self.metrics_networks)

    @property
    def pin_nets(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        return tuple(ipaddress.ip_network(n, strict=False) for n in self.pin_networks)

    @property
    def allowed_hosts(self) -> frozenset[str]:
        """``host:port`` pairs a forward-proxy request may name: upstreams and snapshot."""
        hosts = {f"{SNAPSHOT_HOST}:80"}
        for up in self.upstreams:
            parts = urlsplit(up)
            assert parts.hostname is not None
            default = 443 if parts.scheme == "https" else 80
            hosts.add(f"{parts.hostname.lower()}:{parts.port or default}")
        return frozenset(hosts)


_SIZE: Final = re.compile(r"^(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)$", re.IGNORECASE)


def parse_size(text: str) -> int:
    """``10G``, ``512MiB``, ``1000000`` -> bytes (binary multiples)."""
    m = _SIZE.match(text.strip())
    if m is None:
        raise ValueError(f"not a size: {text!r}")
    mult = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}[m[2].lower()]
    return int(float(m[1]) * mult)


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT``, ``[::1]:PORT``, ``:PORT`` or ``PORT``."""
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = "", text
    host = host.strip("[]") or "0.0.0.0"
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"not a port in {text!r}")
    return host, int(port)


def normalise_upstream(url: str) -> str:
    return url if url.endswith("/") else url + "/"


def default_workers() -> int:
    """One process per core the proxy may run on, at most 8 (warm hits are CPU-bound)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return max(1, min(cores, 8))
