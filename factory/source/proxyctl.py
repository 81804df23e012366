"""Start, query and stop a reprobase cache proxy as a child process.

The factory's builds go through the proxy so the second build (and every later
one) fetches nothing from upstream; the proxy is bound to loopback on an
ephemeral port and its address never reaches an image.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from factory.common import runner
from factory.common.errors import UserError
from factory.source.snapshot import SNAPSHOT_BASE

SNAPSHOT_UPSTREAM = SNAPSHOT_BASE  # the proxy fetches the archive base itself
UPSTREAM_BYTES = "reprobase_proxy_upstream_bytes_total"
BUILD_PIN_TTL = 3 * 3600  # s: the proxy ends a build's pin lease by itself after this


@dataclass(frozen=True)
class ProxyLaunch:
    cache_dir: Path
    upstream: str  # archive base: snapshot.debian.org/archive/ or a plain mirror's base
    record: bool  # recorder mode: upstream is a plain Debian mirror, frozen per timestamp
    log_path: Path | None = None


@dataclass
class ProxyHandle:
    url: str  # http://127.0.0.1:PORT/
    process: subprocess.Popen[bytes] | None

    def metrics(self) -> dict[str, float]:
        return read_metrics(self.url)

    def pinned(self) -> contextlib.AbstractContextManager[str | None]:
        return pinned(self.url)

    def upstream_bytes(self) -> int | None:
        value = self.metrics().get(UPSTREAM_BYTES)
        return None if value is None else int(value)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _get(url: str, timeout: float = 5.0, method: str = "GET") -> tuple[int, bytes]:
    req = urllib.request.Request(url, method=method)
    # Talk to loopback directly even if the environment sets http_proxy.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(req, timeout=timeout) as resp:
            return int(resp.status), bytes(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, b""
    except (urllib.error.URLError, OSError):
        return 0, b""


@contextlib.contextmanager
def pinned(url: str | None) -> Iterator[str | None]:
    """The proxy at url keeps what is fetched inside from eviction (cache_proxy.pins):
    a lease opened before, released after, ended by its TTL if we die. A proxy that
    cannot pin (none, an older one) just serves on: the lease is None."""
    base = (url or "").rstrip("/")
    status, body = _get(f"{base}/pins?ttl={BUILD_PIN_TTL}", method="POST") if url else (0, b"")
    try:
        lease = str(json.loads(body)["lease"]) if status == 201 else None
    except (ValueError, KeyError, TypeError):
        lease = None
    try:
        yield lease
    finally:
        if lease is not None:
            _get(f"{base}/pins/{lease}", method="DELETE")


def fetch(url: str, via: str | None = None, timeout: float = 60.0) -> tuple[int, bytes]:
    """GET url, through the HTTP proxy via when given (as apt does), else directly."""
    if url.startswith("file:"):
        path = Path(urllib.parse.urlsplit(url).path)
        return (200, b"") if path.is_file() else (404, b"no such file")
    handler = urllib.request.ProxyHandler({"http": via, "https": via} if via else {})
    opener = urllib.request.build_opener(handler)
    try:
        with opener.open(urllib.request.Request(url), timeout=timeout) as resp:
            return int(resp.status), b""
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()[:4096]
    except (urllib.error.URLError, OSError) as exc:
        return 0, str(getattr(exc, "reason", exc)).encode()


def url_status(url: str, timeout: float = 5.0) -> int:
    """The HTTP status of a GET of url (0: no answer)."""
    return _get(url, timeout=timeout)[0]


def healthy(url: str) -> bool:
    return _get(url.rstrip("/") + "/healthz", timeout=2.0)[0] == 200


_METRIC = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+([-+0-9.eEinfNa]+)$")


def parse_metrics(text: str) -> dict[str, float]:
    """Prometheus text: sum each metric over its labels (and keep labelled keys too)."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        m = _METRIC.match(line.strip())
        if not m:
            continue
        name, labels, value = m.group(1), m.group(2), float(m.group(3))
        out[name] = out.get(name, 0.0) + value
        if labels:
            out[name + labels] = value
    return out


def read_metrics(url: str) -> dict[str, float]:
    status, body = _get(url.rstrip("/") + "/metrics")
    return parse_metrics(body.decode()) if status == 200 else {}


def start(cfg: ProxyLaunch, timeout: float = 60.0) -> ProxyHandle:
    cfg.cache_dir.mkdir(parents=True, exist_ok=True)
    port_file = cfg.cache_dir / f".port-{os.getpid()}"
    port_file.unlink(missing_ok=True)
    argv = [
        sys.executable,
        "-m",
        "cache_proxy",
        "--listen",
        "127.0.0.1:0",
        "--cache-dir",
        str(cfg.cache_dir),
        "--upstream",
        cfg.upstream,
        "--port-file",
        str(port_file),
    ]
    if cfg.record:
        argv.append("--record")
    env = runner.clean_env(keep=("PYTHONPATH", "HOME"))
    proc = runner.spawn(argv, env=env, log_path=cfg.log_path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise UserError(
                f"the cache proxy exited at start (code {proc.returncode})",
                hint=f"see {cfg.log_path}" if cfg.log_path else "run with --debug",
            )
        if port_file.exists():
            url = f"http://{port_file.read_text().strip()}/"
            if healthy(url):
                port_file.unlink(missing_ok=True)
                return ProxyHandle(url, proc)
        time.sleep(0.05)  # polling the port file and /healthz, not waiting blindly
    proc.kill()
    raise UserError("the cache proxy did not become healthy within 60s")


@contextlib.contextmanager
def running(cfg: ProxyLaunch) -> Iterator[ProxyHandle]:
    handle = start(cfg)
    try:
        yield handle
    finally:
        handle.stop()


def snapshot_reachable(timeout: float = 5.0) -> bool:
    """Can we reach snapshot.debian.org at all? (Not from these build machines.)"""
    status, _ = _get(SNAPSHOT_UPSTREAM, timeout=timeout)
    return 200 <= status < 400
