"""Benchmark: our cache proxy side by side with apt-cacher-ng, approx and nginx, loopback.

    .venv/bin/python benchmarks/bench_proxy.py [--seconds S] [--rounds N] [--only PART]

All three caches run as our own processes with temporary configs and caches, in
front of one local fake snapshot.debian.org (tests/fakesnap.py). Measured:

1. warm hits: requests/s for a small .deb (ab -k), MiB/s for a large one (a client
   reading into a 1 MiB buffer: ab's 8 KiB reads are slower than every peer), 1/16/64
   clients; nginx takes part here only (a caching reverse proxy, ``proxy_cache``, one
   worker per core as ours has, its access log written as ours is: the fastest
   general-purpose cache there is, the bar for "warm hits cost nothing");
2. cold misses: 16 clients ask for one file behind a slow upstream; upstream fetches;
3. ten snapshot timestamps sharing pool files: upstream bytes and disk bytes;
4. a hostile upstream: 10% of answers cut mid-body (client requests that fail, for a
   client that does not retry), and four downloads trickling at 100 B/s (how long
   another cold fetch waits behind them).

Peers are reached as they are normally used: apt-cacher-ng as an HTTP proxy,
approx by its repository prefix, nginx as a mirror. Needs: apache2-utils (ab),
apt-cacher-ng, approx, systemd (systemd-socket-activate, to run approx without inetd),
nginx (nginx-light).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fakesnap import FakeSnapshot, Run, make_runs, sha1  # noqa: E402

TIMESTAMPS = [f"202401{d:02d}T000000Z" for d in range(1, 11)]
LARGE = "pool/main/l/large/large_1.0_all.deb"
MEDIUM = "pool/main/m/medium/medium_1.0_all.deb"
SMALL = "pool/main/p/pkg0/pkg0_1.0_all.deb"


def free_low_port() -> int:
    """A free port below 32768: apt-cacher-ng 3.7 mangles larger port numbers."""
    for _ in range(200):
        port = random.randint(20000, 32000)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port below 32768")


def wait_http(url: str, proxy: str | None = None, timeout: float = 20) -> None:
    handlers = [urllib.request.ProxyHandler({"http": proxy} if proxy else {})]
    opener = urllib.request.build_opener(*handlers)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with opener.open(url, timeout=5) as resp:
                resp.read()
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} never answered")


def spawn(argv: list[str], stderr: Path, **kw: Any) -> subprocess.Popen[bytes]:
    """Start a server process, its stderr kept in a file for post-mortems."""
    with open(stderr, "wb") as err:
        return subprocess.Popen(argv, stderr=err, **kw)


def du(path: Path, skip: str | None = None) -> int:
    total = 0
    for dirpath, dirnames, files in os.walk(path):
        if skip and skip in dirnames:
            dirnames.remove(skip)
        for f in files:
            p = Path(dirpath, f)
            if not p.is_symlink():
                total += p.stat().st_size
    return total


# ------------------------------------------------------------- fake upstream
class Upstream:
    """The fake snapshot server on its own event loop thread."""

    def __init__(self, runs: dict[str, list[Run]]) -> None:
        self.fake = FakeSnapshot(runs)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def start(self) -> None:
        self.thread.start()
        port = free_low_port()
        asyncio.run_coroutine_threadsafe(self.fake.start(port), self.loop).result()

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.fake.stop(), self.loop).result()
        self.loop.call_soon_threadsafe(self.loop.stop)


# --------------------------------------------------------------------- peers
@dataclass
class Peer:
    name: str
    cache: Path
    proc: subprocess.Popen[bytes] | None = None
    proxy: str | None = None  # http proxy to use, if reached that way
    mirror_url: Callable[[str], str] = field(default=lambda p: p)  # pool path (plain mirror)
    snap_url: Callable[[str, str], str] = field(default=lambda ts, p: p)
    disk_skip: str | None = None

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def start_ours(tmp: Path, up: FakeSnapshot) -> Peer:
    cache = tmp / "ours"
    port_file = tmp / "ours.port"
    proc = spawn(
        [
            sys.executable,
            "-m",
            "cache_proxy",
            "--listen",
            "127.0.0.1:0",
            "--cache-dir",
            str(cache),
            "--upstream",
            up.snapshot_base,
            "--port-file",
            str(port_file),
            "--access-log",
            os.environ.get("BENCH_OURS_LOG", str(tmp / "ours-access.log")),
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL,
        stderr=tmp / "ours.err",
    )
    for _ in range(400):
        if port_file.exists():
            break
        time.sleep(0.025)
    addr = port_file.read_text().strip()
    wait_http(f"http://{addr}/healthz")
    ts0 = TIMESTAMPS[0]
    return Peer(
        "ours",
        cache,
        proc,
        mirror_url=lambda p: f"http://{addr}/archive/debian/{ts0}/{p}",
        snap_url=lambda ts, p: f"http://{addr}/archive/debian/{ts}/{p}",
    )


def start_acng(tmp: Path, up: FakeSnapshot) -> Peer:
    port = free_low_port()
    base = tmp / "acng"
    for d in ("cache", "log", "conf"):
        (base / d).mkdir(parents=True)
    (base / "conf/acng.conf").write_text(
        f"CacheDir: {base}/cache\nLogDir: {base}/log\nPort: {port}\nBindAddress: 127.0.0.1\n"
        f"SocketPath: {base}/socket\nForeGround: 1\nAllowUserPorts: 0\nRedirMax: 5\n"
        "ExThreshold: 4\n"
    )
    proc = spawn(
        ["apt-cacher-ng", "-c", str(base / "conf")],
        stdout=subprocess.DEVNULL,
        stderr=tmp / "acng.err",
    )
    proxy = f"http://127.0.0.1:{port}"
    wait_http(f"{up.origin}/mirror/debian/dists/bookworm/Release", proxy=proxy)
    return Peer(
        "apt-cacher-ng",
        base / "cache",
        proc,
        proxy=proxy,
        mirror_url=lambda p: f"{up.origin}/mirror/debian/{p}",
        snap_url=lambda ts, p: f"{up.origin}/archive/debian/{ts}/{p}",
        disk_skip="_xstore",
    )


def start_approx(tmp: Path, up: FakeSnapshot) -> Peer:
    port = free_low_port()
    base = tmp / "approx"
    (base / "cache").mkdir(parents=True)
    conf = base / "approx.conf"
    conf.write_text(
        f"mirror-debian {up.origin}/mirror/debian\nsnap {up.origin}/archive/debian\n"
        f"$cache {base}/cache\n$user root\n$group root\n$verbose false\n"
    )
    # approx is an inetd service: one process per connection, as in production.
    proc = spawn(
        [
            "systemd-socket-activate",
            "--inetd",
            "-a",
            "-l",
            f"127.0.0.1:{port}",
            "approx",
            "-c",
            str(conf),
        ],
        stdout=subprocess.DEVNULL,
        stderr=tmp / "approx.err",
    )
    addr = f"http://127.0.0.1:{port}"
    wait_http(f"{addr}/mirror-debian/dists/bookworm/Release")
    return Peer(
        "approx",
        base / "cache",
        proc,
        mirror_url=lambda p: f"{addr}/mirror-debian/{p}",
        snap_url=lambda ts, p: f"{addr}/snap/{ts}/{p}",
    )


NGINX_CONF = """
daemon off;
user {user};
worker_processes {workers};
pid {base}/nginx.pid;
error_log {base}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log {base}/access.log;
    sendfile on;
    tcp_nopush off;  # on: ~25 req/s for one keep-alive client (delayed ACKs)
    keepalive_requests 1000000;
    client_body_temp_path {base}/body;
    proxy_temp_path {base}/proxy;
    fastcgi_temp_path {base}/fastcgi;
    uwsgi_temp_path {base}/uwsgi;
    scgi_temp_path {base}/scgi;
    proxy_cache_path {base}/cache levels=1:2 keys_zone=debs:16m max_size=8g inactive=1y
                     use_temp_path=off;
    server {{
        listen 127.0.0.1:{port};
        location /mirror/ {{
            proxy_pass {origin};
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_cache debs;
            proxy_cache_valid 200 1y;
            proxy_cache_lock on;
            proxy_ignore_headers Cache-Control Expires;
        }}
    }}
}}
"""


def start_nginx(tmp: Path, up: FakeSnapshot) -> Peer:
    """nginx as a caching mirror of the fake's plain mirror (warm hits only)."""
    port = free_low_port()
    base = tmp / "nginx"
    (base / "cache").mkdir(parents=True)
    conf = base / "nginx.conf"
    conf.write_text(
        NGINX_CONF.format(
            user="root" if os.geteuid() == 0 else os.environ.get("USER", "nobody"),
            workers=len(os.sched_getaffinity(0)),
            base=base,
            port=port,
            origin=up.origin,
        )
    )
    proc = spawn(
        ["nginx", "-p", str(base), "-c", str(conf)],
        stdout=subprocess.DEVNULL,
        stderr=tmp / "nginx.err",
    )
    addr = f"http://127.0.0.1:{port}"
    wait_http(f"{addr}/mirror/debian/dists/bookworm/Release")
    return Peer(
        "nginx",
        base / "cache",
        proc,
        mirror_url=lambda p: f"{addr}/mirror/debian/{p}",
        snap_url=lambda ts, p: f"{addr}/mirror/debian/{p}",
    )


# ------------------------------------------------------------------ measures
def ab(
    peer: Peer, url: str, concurrency: int, seconds: float, n: int | None = None
) -> dict[str, float]:
    argv = ["ab", "-q", "-k", "-r", "-c", str(concurrency)]
    argv += ["-n", str(n)] if n else ["-t", str(seconds), "-n", "10000000"]
    if peer.proxy:
        argv += ["-X", peer.proxy.removeprefix("http://")]
    out = subprocess.run([*argv, url], capture_output=True, text=True, timeout=seconds + 120).stdout

    def num(pattern: str) -> float:
        m = re.search(pattern, out)
        return float(m.group(1)) if m else 0.0

    return {
        "rps": num(r"Requests per second:\s+([\d.]+)"),
        "kbps": num(r"Transfer rate:\s+([\d.]+)"),
        "failed": num(r"Failed requests:\s+(\d+)") + num(r"Non-2xx responses:\s+(\d+)"),
        "time": num(r"Time taken for tests:\s+([\d.]+)"),
        "complete": num(r"Complete requests:\s+(\d+)"),
    }


def pull(peer: Peer, url: str, clients: int, requests: int) -> float:
    """MiB/s for ``requests`` GETs of a large file over ``clients`` keep-alive connections.

    ab reads 8 KiB per call and, on loopback, saturates its own core before any of
    the caches does, so every peer measured the same ab. Each client here is its own
    forked process reading the body with ``recv_into`` a 1 MiB buffer: threads in
    one process took turns at one GIL between reads, and with 16 connections that
    client, not the caches, set the pace. The clock runs from the moment every
    client is connected-ready until the last one is done.
    """
    parts = urllib.parse.urlsplit(url)
    if peer.proxy:
        proxy = urllib.parse.urlsplit(peer.proxy)
        address = (proxy.hostname or "127.0.0.1", proxy.port or 80)
        target = url
    else:
        address = (parts.hostname or "127.0.0.1", parts.port or 80)
        target = parts.path
    request = f"GET {target} HTTP/1.1\r\nHost: {parts.netloc}\r\n\r\n".encode()
    shares = [requests // clients + (i < requests % clients) for i in range(clients)]
    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()
    done_r, done_w = os.pipe()
    children = []
    for share in shares:
        pid = os.fork()
        if pid == 0:  # the child: only sockets and pipes, then _exit
            status = 1
            try:
                os.close(go_w)
                status = _pull_child(address, request, share, ready_w, go_r, done_w)
            finally:
                os._exit(status)
        children.append(pid)
    for fd in (ready_w, go_r, done_w):
        os.close(fd)
    try:
        _read_exactly(ready_r, clients)
        start = time.monotonic()
        os.write(go_w, b"g" * clients)
        report = _read_exactly(done_r, 8 * clients)
        elapsed = time.monotonic() - start
    finally:
        for fd in (ready_r, go_w, done_r):
            os.close(fd)
        failed = [pid for pid in children if os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])]
    moved = [_int64(report[i : i + 8]) for i in range(0, len(report), 8)]
    if failed or len(moved) != clients or min(moved) < 0:
        raise RuntimeError(f"{peer.name}: {len(failed)} of {clients} clients failed")
    return sum(moved) / (1 << 20) / elapsed


def _int64(data: bytes) -> int:
    return int.from_bytes(data, "little", signed=True)


def _read_exactly(fd: int, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = os.read(fd, n - len(data))
        if not chunk:
            raise RuntimeError("a benchmark client died")
        data += chunk
    return data


def _pull_child(
    address: tuple[str, int], request: bytes, count: int, ready: int, go: int, done: int
) -> int:
    total = -1
    started = False
    try:
        buf = memoryview(bytearray(1 << 20))
        with socket.create_connection(address) as sock:
            os.write(ready, b"r")
            started = True
            os.read(go, 1)
            total = 0
            for _ in range(count):
                sock.sendall(request)
                head = b""
                while b"\r\n\r\n" not in head:
                    chunk = sock.recv(65536)
                    if not chunk:
                        raise RuntimeError("closed the connection")
                    head += chunk
                header, _, body = head.partition(b"\r\n\r\n")
                length = re.search(rb"(?im)^content-length:\s*(\d+)", header)
                if not header.startswith(b"HTTP/1.1 200") or length is None:
                    raise RuntimeError(f"{header[:200]!r}")
                remaining = int(length[1]) - len(body)
                while remaining > 0:
                    n = sock.recv_into(buf[: min(len(buf), remaining)])
                    if n == 0:
                        raise RuntimeError("cut a body short")
                    remaining -= n
                total += int(length[1])
    except (OSError, RuntimeError) as exc:
        print(f"benchmark client: {exc}", file=sys.stderr)
        if not started:
            os.write(ready, b"r")  # let the parent start anyway; it sees the failure
        total = -1
    os.write(done, total.to_bytes(8, "little", signed=True))
    return 0 if total >= 0 else 1


def get(peer: Peer, url: str) -> int:
    handlers = [urllib.request.ProxyHandler({"http": peer.proxy} if peer.proxy else {})]
    opener = urllib.request.build_opener(*handlers)
    try:
        with opener.open(url, timeout=60) as resp:
            return len(resp.read()) if resp.status == 200 else -1
    except (OSError, http.client.HTTPException):  # refused, reset, or a body cut short
        return -1


@dataclass
class Table:
    rows: list[tuple[str, dict[str, float], set[str]]] = field(default_factory=list)

    def add(self, name: str, values: dict[str, float], failed: set[str] | None = None) -> None:
        """``failed``: peers whose number means nothing (they could not serve the files)."""
        self.rows.append((name, values, failed or set()))
        print(f"  {name}: " + ", ".join(f"{k}={v:,.1f}" for k, v in values.items()), flush=True)

    def render(self) -> str:
        peers = ["ours", "apt-cacher-ng", "approx", "nginx"]
        against = (("apt-cacher-ng", 11), ("approx", 13), ("nginx", 12))
        head = f"{'measure':<44}" + "".join(f"{p:>15}" for p in peers)
        head += f"{'ours/acng':>11}{'ours/approx':>13}{'ours/nginx':>12}"
        lines = [head, "-" * len(head)]
        for name, values, failed in self.rows:
            cells = "".join(
                f"{'failed':>15}" if p in failed else f"{values.get(p, float('nan')):>15,.1f}"
                for p in peers
            )
            ratios = ""
            for peer, width in against:
                v = values.get(peer, 0.0)
                good = v and peer not in failed and "ours" not in failed
                ratios += f"{values['ours'] / v:>{width}.2f}" if good else f"{'n/a':>{width}}"
            lines.append(f"{name:<44}{cells}{ratios}")
        return "\n".join(lines)


def side_by_side(
    peers: list[Peer], rounds: int, measure: Callable[[Peer], float]
) -> dict[str, float]:
    """Median of ``rounds`` runs per peer, the peers' order rotated every round.

    The machine is shared and noisy; interleaving puts every peer through the
    same slow and fast moments, and the median drops the outliers. Each run
    starts with the disks synced: the access logs of a hundred thousand small
    hits are written back by the kernel later, and that work must not land in
    whichever peer happens to be measured next.
    """
    values: dict[str, list[float]] = {p.name: [] for p in peers}
    for r in range(rounds):
        for p in peers[r % len(peers) :] + peers[: r % len(peers)]:
            os.sync()
            values[p.name].append(measure(p))
    for name, v in values.items():  # every round, so the spread behind a median shows
        print(f"    {name} rounds: " + " ".join(f"{x:,.0f}" for x in v), flush=True)
    return {name: statistics.median(v) for name, v in values.items()}


def warm(peers: list[Peer], table: Table, seconds: float, rounds: int) -> None:
    for p in peers:  # prime
        for path in (SMALL, LARGE):
            assert get(p, p.mirror_url(path)) > 0, f"{p.name} cannot serve {path}"
    for c in (1, 16, 64):
        table.add(
            f"warm small .deb, {c} clients (req/s)",
            side_by_side(
                peers, rounds, lambda p, c=c: ab(p, p.mirror_url(SMALL), c, seconds)["rps"]
            ),
        )
    for c in (1, 16, 64):
        n = {1: 60, 16: 160, 64: 256}[c]
        table.add(
            f"warm 32 MiB .deb, {c} clients (MiB/s)",
            side_by_side(peers, rounds, lambda p, c=c, n=n: pull(p, p.mirror_url(LARGE), c, n)),
        )


def cold(peers: list[Peer], up: Upstream, table: Table) -> None:
    fake = up.fake
    data = fake.runs["debian"][0].files[MEDIUM]
    fetches: dict[str, float] = {}
    seconds: dict[str, float] = {}
    fake.slow_seconds = 2.0
    try:
        for p in peers:
            fake.reset_counts()
            res = ab(p, p.mirror_url(MEDIUM), 16, 60, n=16)
            fetches[p.name] = fake.count(f"/file/{sha1(data)}") + fake.count(
                f"/mirror/debian/{MEDIUM}"
            )
            seconds[p.name] = res["time"]
            if res["failed"]:
                print(f"  {p.name}: {res['failed']:.0f} of 16 cold requests failed")
    finally:
        fake.slow_seconds = 0.0
    table.add("cold: 16 clients, 1 file, slow upstream: fetches", fetches)
    table.add("cold: time until all 16 served (s)", seconds)


def timestamps(peers: list[Peer], up: Upstream, table: Table, redirects: bool, label: str) -> None:
    """Every file of ten timestamps; pool files mostly shared between them."""
    fake = up.fake
    fake.redirect_pool = redirects
    first: dict[str, float] = {}
    total: dict[str, float] = {}
    disk1: dict[str, float] = {}
    disk: dict[str, float] = {}
    ok: dict[str, float] = {}
    for p in peers:
        before = fake.bytes_sent
        disk0 = du(p.cache, p.disk_skip)
        served = 0
        for i, ts in enumerate(TIMESTAMPS):
            run = fake.resolve("debian", ts)
            assert run is not None
            # As apt does: the indexes first, then the .debs (8 at a time).
            indexes = ["dists/bookworm/InRelease", "dists/bookworm/main/binary-amd64/Packages.xz"]
            sizes = [get(p, p.snap_url(ts, q)) for q in indexes]
            debs = sorted(q for q in run.files if q.startswith("pool/main/p/"))
            with ThreadPoolExecutor(8) as pool:
                sizes += list(pool.map(lambda q, ts=ts, p=p: get(p, p.snap_url(ts, q)), debs))
            served += sum(1 for s in sizes if s > 0)
            if i == 0:
                first[p.name] = (fake.bytes_sent - before) / 1e6
                disk1[p.name] = (du(p.cache, p.disk_skip) - disk0) / 1e6
        total[p.name] = (fake.bytes_sent - before) / 1e6
        disk[p.name] = (du(p.cache, p.disk_skip) - disk0) / 1e6
        ok[p.name] = served
    fake.redirect_pool = True
    wanted = len(TIMESTAMPS) * (
        2 + sum(1 for q in fake.runs["debian"][0].files if q.startswith("pool/main/p/"))
    )
    failed = {name for name, n in ok.items() if n < wanted}
    table.add(f"{label}: files served OK of {wanted}", ok)
    table.add(f"{label}: upstream MB, first timestamp", first, failed)
    table.add(f"{label}: upstream MB, all ten", total, failed)
    table.add(f"{label}: disk MB, first timestamp", disk1, failed)
    table.add(f"{label}: disk MB, all ten", disk, failed)


def one_by_one(tmp: Path, up: Upstream) -> Iterator[Peer]:
    """Each peer alone and cold, stopped before the next starts (a hostile upstream's
    trickles must not outlive the peer they were meant for)."""
    tmp.mkdir(parents=True)
    for start in (start_ours, start_acng, start_approx):
        peer = start(tmp, up.fake)
        try:
            yield peer
        finally:
            peer.stop()


def truncations(tmp: Path, up: Upstream, table: Table) -> None:
    """10% of the answers of a timestamp cut in the middle; each peer cold, no retries."""
    fake = up.fake
    failed: dict[str, float] = {}
    wanted = 0
    ts = TIMESTAMPS[3]
    run = fake.resolve("debian", ts)
    assert run is not None
    debs = sorted(q for q in run.files if q.startswith("pool/main/p/"))
    indexes = ["dists/bookworm/InRelease", "dists/bookworm/main/binary-amd64/Packages.xz"]
    fake.redirect_pool = False  # pool files answered in place: every peer can follow
    for i, p in enumerate(one_by_one(tmp, up)):
        for q in indexes:  # as apt does: the indexes first (they are not cut here)
            assert get(p, p.snap_url(ts, q)) > 0, f"{p.name} cannot serve {q}"
        for q in random.Random(i).sample(debs, max(1, len(debs) // 10)):
            fake.inject(f"/archive/debian/{ts}/{q}", "truncate")
            fake.inject(f"/mirror/debian/{q}", "truncate")
        with ThreadPoolExecutor(8) as pool:
            sizes = list(pool.map(lambda q, p=p: get(p, p.snap_url(ts, q)), debs))
        fake.faults.clear()
        failed[p.name] = sum(1 for q, n in zip(debs, sizes, strict=True) if n != len(run.files[q]))
        wanted = len(debs)
    fake.redirect_pool = True
    table.add(f"cut 10% of answers: failed requests of {wanted}", failed)


def trickles(tmp: Path, up: Upstream, table: Table, cap: float = 60.0) -> None:
    """Four downloads trickling at 100 B/s; then the time one other cold fetch takes
    (at most ``cap`` seconds are waited)."""
    fake = up.fake
    waited: dict[str, float] = {}
    ts = TIMESTAMPS[5]
    run = fake.resolve("debian", ts)
    assert run is not None
    debs = sorted(q for q in run.files if q.startswith("pool/main/p/"))
    slow, other = debs[:4], debs[4]
    fake.redirect_pool = False  # pool files answered in place: every peer can follow
    for p in one_by_one(tmp, up):
        busy = fake.active
        for q in slow:
            fake.inject(f"/archive/debian/{ts}/{q}", "trickle", delay=0.01)
            fake.inject(f"/mirror/debian/{q}", "trickle", delay=0.01)
        pool = ThreadPoolExecutor(5)
        for q in slow:
            pool.submit(get, p, p.snap_url(ts, q))
        deadline = time.monotonic() + 10
        while fake.active < busy + 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        start = time.monotonic()
        job = pool.submit(get, p, p.snap_url(ts, other))
        with contextlib.suppress(TimeoutError):
            job.result(timeout=cap)
        waited[p.name] = time.monotonic() - start
        fake.faults.clear()
        pool.shutdown(wait=False, cancel_futures=True)  # the peer's stop ends the trickles
    fake.redirect_pool = True
    table.add(f"4 trickling downloads: another cold fetch (s, cap {cap:g})", waited)


@contextlib.contextmanager
def started(tmp: Path, up: Upstream) -> Iterator[list[Peer]]:
    """The three caches, cold, each in its own directory under ``tmp``."""
    tmp.mkdir(parents=True)
    peers: list[Peer] = []
    try:
        for start in (start_ours, start_acng, start_approx):
            peers.append(start(tmp, up.fake))
        yield peers
    finally:
        for p in peers:
            p.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0, help="per warm measurement")
    parser.add_argument(
        "--rounds", type=int, default=3, help="warm runs per peer, interleaved (median)"
    )
    parser.add_argument(
        "--only",
        choices=("warm", "cold", "timestamps", "hostile"),
        action="append",
        help="run only these parts (repeatable); default: all",
    )
    args = parser.parse_args()
    missing = [
        t
        for t in ("ab", "apt-cacher-ng", "approx", "systemd-socket-activate", "nginx")
        if shutil.which(t) is None
    ]
    if missing:
        print(
            f"error: missing {', '.join(missing)} (hint: apt-get install apache2-utils "
            "apt-cacher-ng approx systemd nginx-light)",
            file=sys.stderr,
        )
        return 2
    rng = random.Random(3)
    runs = {
        "debian": make_runs(
            "debian",
            "bookworm",
            TIMESTAMPS,
            packages=40,
            size=64 << 10,
            changed_per_run=2,
            extra={LARGE: rng.randbytes(32 << 20), MEDIUM: rng.randbytes(2 << 20)},
        )
    }
    up = Upstream(runs)
    up.start()
    table = Table()
    with tempfile.TemporaryDirectory(prefix="bench-proxy-") as tmpdir:
        tmp = Path(tmpdir)
        try:
            parts = set(args.only or ("warm", "cold", "timestamps", "hostile"))
            if parts & {"warm", "cold"}:
                with started(tmp / "warm", up) as peers:
                    if "warm" in parts:
                        print("warm hits", flush=True)
                        nginx = start_nginx(tmp / "warm", up.fake)
                        try:
                            warm([*peers, nginx], table, args.seconds, args.rounds)
                        finally:
                            nginx.stop()
                    if "cold" in parts:
                        print("cold misses", flush=True)
                        cold(peers, up, table)
            if "timestamps" in parts:
                with started(tmp / "ts1", up) as peers:
                    print("ten timestamps, pool files answered in place", flush=True)
                    timestamps(peers, up, table, False, "10 ts, 200 in place")
                with started(tmp / "ts2", up) as peers:
                    print("ten timestamps, snapshot's 302 /file/<sha1>", flush=True)
                    timestamps(peers, up, table, True, "10 ts, 302 /file/")
            if "hostile" in parts:
                print("a hostile upstream", flush=True)
                truncations(tmp / "cut", up, table)
                trickles(tmp / "trickle", up, table)
        finally:
            up.stop()
    print()
    print(table.render())
    return 0


if __name__ == "__main__":
    sys.exit(main())
