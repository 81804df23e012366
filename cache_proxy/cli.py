"""``reprobase proxy`` / ``python -m cache_proxy``: flags resolved once into a ProxyConfig.

Order for every setting: command-line flag, then environment (``REPROBASE_PROXY_*``),
then default.
"""

from __future__ import annotations

import argparse
import errno
import ipaddress
import logging
import os
import socket
import sys
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Final, NoReturn

from cache_proxy import __version__
from cache_proxy.config import (
    DEFAULT_PORT,
    DEFAULT_UPSTREAM,
    MAX_WORKERS,
    Mode,
    ProxyConfig,
    RetryPolicy,
    default_workers,
    normalise_upstream,
    parse_listen,
    parse_size,
)
from cache_proxy.errors import UserError
from cache_proxy.loop import run_loop
from cache_proxy.paths import proxy_cache_dir, unsafe_path_reason

HELP: Final = (
    "Run the verifying, snapshot-aware cache proxy for snapshot.debian.org "
    "(mirror paths /archive/<archive>/<timestamp>/... and apt's Acquire::http::Proxy)."
)
ENV: Final = "REPROBASE_PROXY_"


def _env(name: str) -> str | None:
    return os.environ.get(ENV + name) or None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--listen",
        metavar="HOST:PORT",
        default=None,
        help=f"address to listen on (default 0.0.0.0:{DEFAULT_PORT}; port 0 picks one)",
    )
    parser.add_argument(
        "--cache-dir",
        metavar="DIR",
        type=Path,
        default=None,
        help="where blobs and the index live (default: /var/cache/reprobase/proxy as root, "
        "else $XDG_CACHE_HOME/reprobase/proxy, ~/.cache; see `reprobase paths`)",
    )
    parser.add_argument(
        "--upstream",
        metavar="URL",
        action="append",
        default=None,
        help=f"archive base URL, repeat for fail-over in order (default {DEFAULT_UPSTREAM}); "
        "with --record a plain mirror base: archive A is <URL>A/",
    )
    parser.add_argument(
        "--record",
        action="store_true",
        help="recorder mode: serve a plain Debian mirror under snapshot URLs, "
        "freezing its indexes the first time each timestamp is asked for",
    )
    parser.add_argument(
        "--record-window",
        metavar="DAYS",
        type=float,
        default=2.0,
        help="with --record: record a timestamp only if it is at most DAYS old (default 2): "
        "an older one would file today's packages under a past date; recordings already "
        "made are served whatever their age",
    )
    parser.add_argument(
        "--max-size",
        metavar="BYTES",
        default=None,
        help="cache size cap, e.g. 20G; least recently used blobs go first",
    )
    parser.add_argument(
        "--port-file",
        metavar="FILE",
        type=Path,
        default=None,
        help="once listening, atomically write HOST:PORT to FILE",
    )
    parser.add_argument(
        "--per-host-connections",
        metavar="N",
        type=int,
        default=4,
        help="upstream connections per host (default 4)",
    )
    parser.add_argument(
        "--retries",
        metavar="N",
        type=int,
        default=5,
        help="attempts per upstream mirror (default 5)",
    )
    parser.add_argument(
        "--backoff",
        metavar="SECONDS",
        type=float,
        default=0.5,
        help="initial retry backoff, doubled per attempt, jittered (default 0.5)",
    )
    parser.add_argument(
        "--read-timeout",
        metavar="SECONDS",
        type=float,
        default=60.0,
        help="longest silence from upstream during a download (default 60)",
    )
    parser.add_argument(
        "--volatile-hours",
        metavar="H",
        type=float,
        default=0.0,
        help="timestamps this close to now are treated as still changing",
    )
    parser.add_argument(
        "--workers",
        metavar="N",
        type=int,
        default=None,
        help="processes answering on the port (default: one per CPU core, at most 8); "
        "one downloads and writes, the others answer cache hits and relay the rest",
    )
    parser.add_argument(
        "--access-log",
        metavar="FILE",
        default=None,
        help="access log file, '-' for stderr (default), 'none' to disable",
    )
    parser.add_argument(
        "action",
        nargs="?",
        choices=("serve", "scrub"),
        default="serve",
        help="serve (default), or scrub: re-hash every stored blob, drop damaged ones "
        "and exit (0: all good, 1: some were dropped)",
    )
    parser.add_argument(
        "--metrics-allow",
        metavar="CIDR",
        action="append",
        default=None,
        help="answer /metrics only to these networks (repeatable; default: everyone)",
    )
    parser.add_argument(
        "--pin-allow",
        metavar="CIDR",
        action="append",
        default=None,
        help="networks whose clients may open build pin leases (POST /pins) and whose "
        "requests those leases pin (repeatable; default: loopback only)",
    )
    parser.add_argument(
        "--redirect-origin",
        metavar="URL",
        action="append",
        default=None,
        help="an origin (scheme://host[:port]) upstream redirects may lead to besides the "
        "upstreams themselves (repeatable)",
    )
    parser.add_argument(
        "--min-rate",
        metavar="BYTES",
        type=float,
        default=1024.0,
        help="an upstream connection slower than this many bytes/s over 30 s is dropped "
        "and its download resumed (default 1024)",
    )
    parser.add_argument(
        "--scrub-rate",
        metavar="BYTES",
        default=None,
        help="re-hash stored blobs in the background at this many bytes/s (e.g. 20M), "
        "dropping damaged ones; default: off (see the scrub action)",
    )
    parser.add_argument(
        "--deadline",
        metavar="SECONDS",
        type=float,
        default=6 * 3600.0,
        help="longest one upstream connection may take; then it is dropped and the "
        "download resumed from where it stopped (default 21600)",
    )


def config_from_args(args: argparse.Namespace) -> ProxyConfig:
    listen = args.listen or _env("LISTEN") or f"0.0.0.0:{DEFAULT_PORT}"
    try:
        host, port = parse_listen(listen)
    except ValueError as exc:
        raise UserError(str(exc), hint="use --listen HOST:PORT, e.g. 127.0.0.1:3142") from exc
    cache_dir = args.cache_dir or proxy_cache_dir()  # $REPROBASE_PROXY_CACHE_DIR, else default
    ups = args.upstream or ((_env("UPSTREAM") or "").split() or [DEFAULT_UPSTREAM])
    max_size = None
    raw_size = args.max_size or _env("MAX_SIZE")
    if raw_size:
        try:
            max_size = parse_size(raw_size)
        except ValueError as exc:
            raise UserError(str(exc), hint="give --max-size as bytes or with K/M/G/T") from exc
    if max_size is not None and max_size <= 0:
        raise UserError(f"--max-size {raw_size} leaves no room for the cache", hint="e.g. 20G")
    _check_ranges(args)
    access = args.access_log or _env("ACCESS_LOG") or "-"
    if access not in ("-", "none"):
        _check_file_dir("--access-log", Path(access), cache_dir)
    if args.port_file is not None:
        _check_file_dir("--port-file", args.port_file, cache_dir)
    workers = args.workers
    if workers is None:
        raw = _env("WORKERS")
        if raw is not None and not raw.isdigit():
            raise UserError(f"REPROBASE_PROXY_WORKERS={raw!r} is not a number")
        workers = int(raw) if raw else default_workers()
    if not 1 <= workers <= MAX_WORKERS:
        raise UserError(
            f"--workers {workers} is out of range",
            hint=f"give 1 (a single process) to {MAX_WORKERS}",
        )
    try:
        return ProxyConfig(
            cache_dir=cache_dir.resolve(),
            upstreams=tuple(normalise_upstream(u) for u in ups),
            mode=Mode.RECORD if args.record else Mode.SNAPSHOT,
            record_window=_record_window(args.record_window),
            host=host,
            port=port,
            port_file=args.port_file,
            max_size=max_size,
            per_host_connections=args.per_host_connections,
            read_timeout=args.read_timeout,
            retry=RetryPolicy(attempts=max(1, args.retries), backoff_initial=args.backoff),
            volatile_window=timedelta(hours=args.volatile_hours),
            access_log=None if access == "none" else access,
            workers=workers,
            min_rate=args.min_rate,
            deadline=args.deadline,
            scrub_rate=_scrub_rate(args.scrub_rate),
            redirect_origins=tuple(args.redirect_origin or ()),
            metrics_networks=_networks(args.metrics_allow),
            pin_networks=_networks(args.pin_allow, "--pin-allow") or ("127.0.0.0/8", "::1/128"),
        )
    except ValueError as exc:
        raise UserError(
            str(exc), hint=f"--upstream takes http(s) URLs such as {DEFAULT_UPSTREAM}"
        ) from exc


def _record_window(days: float) -> timedelta:
    if not 0 < days <= 366 or days != days:  # days != days: NaN
        raise UserError(
            f"--record-window {days:g} is out of range",
            hint="give the days a recording may reach back, e.g. 2 (at most 366)",
        )
    return timedelta(days=days)


def _scrub_rate(raw: str | None) -> float:
    if raw is None:
        return 0.0
    try:
        rate = parse_size(raw)
    except ValueError:
        raise UserError(f"--scrub-rate {raw!r} is not a rate", hint="e.g. 20M (bytes/s)") from None
    if rate <= 0:
        raise UserError(f"--scrub-rate {raw} is out of range", hint="give more than 0, e.g. 20M")
    return float(rate)


def _networks(raw: list[str] | None, flag: str = "--metrics-allow") -> tuple[str, ...] | None:
    if raw is None:
        return None
    for net in raw:
        try:
            ipaddress.ip_network(net, strict=False)
        except ValueError:
            raise UserError(
                f"{flag} {net!r} is not a network", hint="e.g. 10.0.0.0/8 or ::1/128"
            ) from None
    return tuple(raw)


def _check_ranges(args: argparse.Namespace) -> None:
    """Numbers that would make the proxy hang, spin or never fetch are refused."""
    checks = (
        ("--per-host-connections", args.per_host_connections, 1, "at least 1"),
        ("--retries", args.retries, 1, "at least 1 (one attempt, no retry)"),
        ("--backoff", args.backoff, 0, "0 or more seconds"),
        ("--volatile-hours", args.volatile_hours, 0, "0 or more hours"),
        ("--min-rate", args.min_rate, 0, "0 (no minimum) or more bytes/s"),
    )
    for flag, value, least, what in checks:
        if value < least:
            raise UserError(f"{flag} {value} is out of range", hint=f"give {what}")
    if not args.deadline > 0:
        raise UserError(
            f"--deadline {args.deadline} is out of range", hint="give more than 0 seconds"
        )
    if not args.read_timeout > 0:
        raise UserError(
            f"--read-timeout {args.read_timeout} is out of range", hint="give more than 0 seconds"
        )


def _is_port_file(path: Path) -> bool:
    """A file an earlier proxy wrote: one HOST:PORT line."""
    try:
        if not path.is_file() or path.stat().st_size > 300:
            return False
        text = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return False
    _host, sep, port = text.rpartition(":")
    return bool(sep) and port.isdigit() and "\n" not in text


def _check_file_dir(flag: str, path: Path, cache_dir: Path) -> None:
    """A file the proxy writes once running: its directory must be writable, and exist
    already unless it is the cache directory or one of its parents (created at start)."""
    parent = path.absolute().parent
    if path.is_dir():
        raise UserError(f"cannot write {flag} {path}: it is a directory", hint="give a file")
    if flag == "--port-file" and path.exists() and not _is_port_file(path):
        raise UserError(
            f"refusing to replace --port-file {path}: it is not a port file (HOST:PORT)",
            hint="give a new path",
        )
    cache = cache_dir.absolute()
    will_exist = parent.exists() or parent == cache or parent in cache.parents
    why = unsafe_path_reason(path) if will_exist else f"{parent} is not a directory"
    if why is not None:
        raise UserError(
            f"cannot write {flag} {path}: {why}", hint="give a file in a writable directory"
        )


def is_store(path: Path) -> bool:
    """A directory the proxy may fill: empty, a store already (its index or blobs), or
    holding only what is started beside one (a log, a port file)."""
    if (path / "index.sqlite").is_file() or (path / "blobs").is_dir():
        return True
    return all(p.suffix == ".log" or p.name.startswith(".port") for p in path.iterdir())


def _check_store(cache_dir: Path) -> None:
    """The proxy fills its cache directory: an existing one must be empty or a store."""
    if not cache_dir.is_dir():
        if cache_dir.exists():
            raise UserError(f"--cache-dir {cache_dir} is not a directory", hint="give a directory")
        return
    if not is_store(cache_dir):
        raise UserError(
            f"--cache-dir {cache_dir} holds files that are not a reprobase proxy store",
            hint="give a new or empty directory, or an existing proxy store",
        )


def _check_address(host: str) -> None:
    """The --listen host must be an address of this machine: bind to it on a free port."""
    try:
        infos = socket.getaddrinfo(host, 0, type=socket.SOCK_STREAM)
        family, kind, proto, _name, addr = infos[0]
        with socket.socket(family, kind, proto) as probe:
            probe.bind(addr)
    except (OSError, IndexError) as exc:
        reason = (
            "this machine has no such address"
            if getattr(exc, "errno", None) == errno.EADDRNOTAVAIL
            else str(getattr(exc, "strerror", None) or exc)
        )
        raise UserError(
            f"cannot listen on {host}: {reason}",
            hint="give an address of this machine, e.g. --listen 127.0.0.1:3142",
        ) from None


def scrub(config: ProxyConfig) -> int:
    """``reprobase proxy scrub``: re-hash every blob, drop the damaged; 1 if any were.

    Safe beside a running proxy (sqlite WAL; a blob it evicts meanwhile is skipped),
    which learns of dropped blobs when it next misses them.
    """
    from cache_proxy.index import Index, IndexDamaged
    from cache_proxy.scrub import scrub_store
    from cache_proxy.store import BlobStore

    if not (config.cache_dir / "index.sqlite").is_file():
        raise UserError(f"no proxy cache in {config.cache_dir}", hint="give its --cache-dir DIR")
    try:
        index = Index.open_checked(config.cache_dir / "index.sqlite")
    except IndexDamaged as exc:
        raise UserError(
            f"the index {config.cache_dir / 'index.sqlite'} is damaged: {exc}",
            hint="start the proxy on this cache directory: it rebuilds the index from the blobs",
        ) from None
    try:
        report = scrub_store(BlobStore(config.cache_dir), index)
    finally:
        index.close()
    print(report.line())
    return 1 if report.dropped else 0


def run(args: argparse.Namespace) -> int:
    from cache_proxy.server import serve_forever

    config = config_from_args(args)
    if args.action == "scrub":
        return scrub(config)
    _check_address(config.host)  # before the cache directory is created
    _check_store(config.cache_dir)
    try:
        config.cache_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(
            f"cannot create cache directory {config.cache_dir}: {exc.strerror}",
            hint="pass --cache-dir DIR on a writable file system",
        ) from exc
    try:
        run_loop(serve_forever(config))
    except socket.gaierror as exc:
        raise UserError(
            f"cannot listen on {config.host}:{config.port}: {exc.strerror}",
            hint="give an address of this machine, e.g. --listen 127.0.0.1:3142",
        ) from None
    except OSError as exc:
        if exc.errno in (errno.EADDRINUSE, errno.EACCES):
            raise UserError(
                f"cannot listen on {config.host}:{config.port}: {exc.strerror}",
                hint="choose another --listen port, or 0 for any free one",
            ) from None
        if exc.errno == errno.EADDRNOTAVAIL:
            raise UserError(
                f"cannot listen on {config.host}:{config.port}: this machine has no such address",
                hint="give an address of this machine, e.g. --listen 127.0.0.1:3142",
            ) from None
        raise
    return 0


class _Parser(argparse.ArgumentParser):
    """A usage mistake is one line, as with `reprobase proxy` (exit 2)."""

    def error(self, message: str) -> NoReturn:
        print(f"error: {self.prog}: {message} (hint: see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(2)


def build_parser(prog: str = "reprobase-proxy") -> argparse.ArgumentParser:
    parser = _Parser(prog=prog, description=HELP)
    parser.add_argument("--version", action="version", version=f"{prog} {__version__}")
    parser.add_argument("--debug", action="store_true", help="verbose logs and tracebacks")
    add_arguments(parser)
    return parser


def main(argv: Sequence[str] | None = None, prog: str = "reprobase-proxy") -> int:
    """`reprobase-proxy` and `python -m cache_proxy`: the proxy alone, without the factory.

    Same flags, one-line errors, --debug and exit codes as `reprobase proxy`.
    """
    args = build_parser(prog).parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s %(message)s" if args.debug else "%(message)s",
        stream=sys.stderr,
    )
    try:
        return run(args)
    except UserError as exc:
        if args.debug:
            raise
        print(exc.render().replace("\n", " "), file=sys.stderr)
        return 2
    except OSError as exc:  # a file system refusal nobody turned into a UserError
        if args.debug:
            raise
        where = f" {exc.filename}" if exc.filename else ""
        print(
            f"error: cannot use{where}: {exc.strerror or exc} (hint: check the path)",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
