"""A small but faithful fake of snapshot.debian.org (and of a plain Debian mirror).

    runs = make_runs("debian", "bookworm", ["20240101T000000Z", "20240102T000000Z"])
    fake = FakeSnapshot({"debian": runs})
    await fake.start()          # fake.snapshot_base == "http://127.0.0.1:PORT/archive/"
    fake.inject("*/pool/*", "503", times=2)
    ...
    fake.count("/file/<sha1>")  # requests seen per path
    await fake.stop()

Snapshot layout (``/archive/<archive>/<ts>/<path>``): any spelling of an instant
resolves to the newest run not after it, by a 301 to the run's own spelling; files
of a run answer ``302 /file/<sha1>`` (pool files always, dists files if
``redirect_dists``); ``/file/<sha1>`` serves the bytes. Plain-mirror layout
(``/mirror/<archive>/<path>``) serves the *current* run (``advance()`` moves it
on) and keeps older runs' by-hash files, as real mirrors do.

Faults, injected per path glob, each for ``times`` requests: ``429`` (with
Retry-After), ``503``, ``reset`` (connection closed, no answer), ``truncate``
(half the body, then close), ``corrupt`` (right length, wrong bytes), ``slow``
(body trickles out in chunks ``delay`` seconds apart).

Hostile ones: ``gzip`` (the body gzip-compressed, ``Content-Encoding: gzip``),
``redirect`` (302 to ``location``, another port or host), ``trickle`` (one byte every
``delay`` seconds), ``bigheader`` (a 64 KiB header field), ``pad`` (the right body and
then more bytes, chunked), ``cut-at`` (``at`` bytes, then close, with the full
Content-Length; a later ``Range: bytes=N-`` is answered 206). ``framing="chunked"``
(on the server) answers every body without a Content-Length. ``range_requests``
records each Range header received.
"""

from __future__ import annotations

import asyncio
import bz2
import email.utils
import fnmatch
import gzip
import hashlib
import io
import lzma
import random
import re
import subprocess
import tarfile
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from aiohttp import web

TS_FORMAT = "%Y%m%dT%H%M%SZ"
_TS = re.compile(r"^(\d{4})-?(\d{2})-?(\d{2})(?:[Tt](\d{2}):?(\d{2})?:?(\d{2})?)?[Zz]?$")


def parse_ts(text: str) -> datetime | None:
    m = _TS.match(text)
    if not m:
        return None
    parts = [int(x) if x else 0 for x in m.groups()]
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha1(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


# ------------------------------------------------------------------ archives
def make_deb(name: str, version: str, arch: str = "all", payload: bytes = b"") -> bytes:
    """A real, minimal .deb (ar: debian-binary, control.tar.gz, data.tar.gz), deterministic."""

    def tar(members: dict[str, bytes]) -> bytes:
        buf = io.BytesIO()
        with (
            gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as gz,
            tarfile.open(fileobj=gz, mode="w", format=tarfile.GNU_FORMAT) as tf,
        ):
            for path, data in members.items():
                info = tarfile.TarInfo(path)
                info.size, info.mtime, info.mode = len(data), 0, 0o644
                tf.addfile(info, io.BytesIO(data))
        return buf.getvalue()

    control = (
        f"Package: {name}\nVersion: {version}\nArchitecture: {arch}\n"
        f"Maintainer: Fake <fake@example.com>\nDescription: fake package {name}\n"
    ).encode()
    members = [
        ("debian-binary", b"2.0\n"),
        ("control.tar.gz", tar({"./control": control})),
        ("data.tar.gz", tar({f"./usr/share/{name}/payload": payload})),
    ]
    out = io.BytesIO(b"!<arch>\n")
    for member, data in members:
        out.write(f"{member:<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(data):<10}`\n".encode())
        out.write(data)
        if len(data) % 2:
            out.write(b"\n")
    return out.getvalue()


@dataclass
class Run:
    archive: str
    ts: str  # canonical
    files: dict[str, bytes] = field(default_factory=dict)  # archive-relative path -> bytes

    @property
    def when(self) -> datetime:
        when = parse_ts(self.ts)
        assert when is not None
        return when


def _release(suite: str, date: datetime, indexes: dict[str, bytes]) -> bytes:
    lines = [
        "Origin: Debian",
        "Label: Debian",
        "Suite: stable",
        f"Codename: {suite}",
        f"Date: {email.utils.format_datetime(date, usegmt=True)}",
        "Acquire-By-Hash: yes",
        "Architectures: amd64 all",
        "Components: main",
        "Description: fake archive for reprobase tests",
        "SHA256:",
    ]
    for path, data in sorted(indexes.items()):
        lines.append(f" {sha256(data)} {len(data):>8} {path}")
    return ("\n".join(lines) + "\n").encode()


def fake_clearsign(release: bytes) -> bytes:
    """InRelease-shaped (RFC 4880 §7), the signature is not real."""
    return (
        b"-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\n"
        + release
        + b"-----BEGIN PGP SIGNATURE-----\n\nZmFrZQ==\n=ZmFr\n-----END PGP SIGNATURE-----\n"
    )


def fake_detached(release: bytes) -> bytes:
    return (
        b"-----BEGIN PGP SIGNATURE-----\n\n"
        + sha256(release).encode()
        + b"\n-----END PGP SIGNATURE-----\n"
    )


Signer = Callable[[bytes], tuple[bytes, bytes]]  # Release -> (InRelease, Release.gpg)


def gpg_signer(home: Path) -> tuple[Signer, Path]:
    """A throw-away OpenPGP key (needs gpg); returns the signer and the public keyring file."""
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    gpg = [
        "gpg",
        "--homedir",
        str(home),
        "--batch",
        "--yes",
        "--quiet",
        "--pinentry-mode",
        "loopback",
        "--passphrase",
        "",
    ]
    subprocess.run(
        [*gpg, "--quick-gen-key", "fake-archive@example.com", "ed25519", "sign", "never"],
        check=True,
        capture_output=True,
    )
    keyring = home / "archive.gpg"
    subprocess.run(
        [*gpg, "--output", str(keyring), "--export", "fake-archive@example.com"],
        check=True,
        capture_output=True,
    )

    def sign(release: bytes) -> tuple[bytes, bytes]:
        inrel = subprocess.run(
            [*gpg, "--clearsign"], input=release, check=True, capture_output=True
        ).stdout
        detached = subprocess.run(
            [*gpg, "--armor", "--detach-sign"], input=release, check=True, capture_output=True
        ).stdout
        return inrel, detached

    return sign, keyring


def stop_gpg_agent(home: Path) -> None:
    """gpg leaves an agent running for ``home``; a test must not leave it behind."""
    subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"], check=False)


def make_runs(
    archive: str,
    suite: str,
    timestamps: list[str],
    packages: int = 6,
    size: int = 4096,
    changed_per_run: int = 1,
    extra: dict[str, bytes] | None = None,
    seed: int = 1,
    arch: str = "amd64",
    signer: Signer | None = None,
) -> list[Run]:
    """Runs of one suite; each run changes ``changed_per_run`` packages, shares the rest.

    ``extra`` pool files (path -> bytes) are listed in Packages of every run.
    """
    rng = random.Random(seed)
    versions = {f"pkg{i}": 1 for i in range(packages)}
    payloads: dict[tuple[str, int], bytes] = {}
    runs = []
    for n, ts in enumerate(timestamps):
        if n:
            for name in rng.sample(sorted(versions), min(changed_per_run, packages)):
                versions[name] += 1
        run = Run(archive, ts)
        stanzas = []
        for name, ver in sorted(versions.items()):
            if (name, ver) not in payloads:
                payloads[(name, ver)] = rng.randbytes(size)
            deb = make_deb(name, f"{ver}.0", "all", payloads[(name, ver)])
            path = f"pool/main/{name[0]}/{name}/{name}_{ver}.0_all.deb"
            run.files[path] = deb
            stanzas.append(_stanza(name, f"{ver}.0", path, deb))
        for path, data in sorted((extra or {}).items()):
            run.files[path] = data
            base = path.rsplit("/", 1)[-1].split("_")[0]
            stanzas.append(_stanza(base, "1.0", path, data))
        packages_text = "\n".join(stanzas).encode()
        comp = f"main/binary-{arch}"
        indexes = {
            f"{comp}/Packages": packages_text,
            f"{comp}/Packages.xz": lzma.compress(packages_text),
            f"{comp}/Packages.gz": gzip.compress(packages_text, mtime=0),
            f"{comp}/Packages.bz2": bz2.compress(packages_text),
        }
        for rel, data in indexes.items():
            run.files[f"dists/{suite}/{rel}"] = data
            d = rel.rsplit("/", 1)[0]
            run.files[f"dists/{suite}/{d}/by-hash/SHA256/{sha256(data)}"] = data
        release = _release(suite, run.when, indexes)
        run.files[f"dists/{suite}/Release"] = release
        inrelease, detached = (
            signer(release) if signer else (fake_clearsign(release), fake_detached(release))
        )
        run.files[f"dists/{suite}/InRelease"] = inrelease
        run.files[f"dists/{suite}/Release.gpg"] = detached
        runs.append(run)
    return runs


def _stanza(name: str, version: str, path: str, data: bytes) -> str:
    return (
        f"Package: {name}\nVersion: {version}\nArchitecture: all\n"
        f"Maintainer: Fake <fake@example.com>\nInstalled-Size: 1\n"
        f"Filename: {path}\nSize: {len(data)}\nMD5sum: {hashlib.md5(data).hexdigest()}\n"
        f"SHA256: {sha256(data)}\nDescription: fake package {name}\n"
    )


# -------------------------------------------------------------------- server
@dataclass
class Fault:
    pattern: str
    kind: str  # 429 | 503 | reset | truncate | corrupt | slow | gzip | redirect | trickle ...
    times: int = 1
    retry_after: str | None = None
    delay: float = 0.05
    location: str = ""  # redirect: where to
    at: int = 0  # cut-at: bytes sent before the cut


class FakeSnapshot:
    """The fake server. ``runs``: archive -> runs in time order."""

    def __init__(
        self,
        runs: dict[str, list[Run]],
        redirect_dists: bool = False,
        chunk: int = 16384,
        redirect_pool: bool = True,
    ) -> None:
        self.runs = {a: sorted(rs, key=lambda r: r.ts) for a, rs in runs.items()}
        self.redirect_dists = redirect_dists
        self.redirect_pool = redirect_pool  # False: answer pool files 200 in place
        self.chunk = chunk
        self.by_sha1: dict[str, bytes] = {}
        for rs in self.runs.values():
            for run in rs:
                for data in run.files.values():
                    self.by_sha1[sha1(data)] = data
        self.current = {a: 0 for a in self.runs}  # plain-mirror layout: index of the current run
        self.requests: Counter[str] = Counter()
        self.statuses: Counter[int] = Counter()
        self.bytes_sent = 0
        self.faults: list[Fault] = []
        self.slow_seconds = 0.0  # whole-body delay for every body (cold-miss benchmark)
        self.framing = "length"  # or "chunked": no Content-Length on any body
        self.accept_encodings: list[str] = []  # Accept-Encoding of every request
        self.authorizations: list[str] = []  # Authorization headers received
        self.range_requests: list[str] = []  # Range headers received
        self.honour_ranges = True  # False: Range is ignored, the whole body is sent (200)
        self.faults_on_ranges = False  # True: a request with Range meets the faults too
        self.active = 0  # requests being answered right now
        self.max_active = 0  # the most seen at once (per-host connection limit checks)
        self._runner: web.AppRunner | None = None
        self.port = 0

    # --- control
    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def snapshot_base(self) -> str:
        return f"{self.origin}/archive/"

    @property
    def mirror_base(self) -> str:
        return f"{self.origin}/mirror/"

    def inject(
        self,
        pattern: str,
        kind: str,
        times: int = 1,
        retry_after: str | None = None,
        delay: float = 0.05,
        location: str = "",
        at: int = 0,
    ) -> Fault:
        fault = Fault(pattern, kind, times, retry_after, delay, location, at)
        self.faults.append(fault)
        return fault

    def advance(self, archive: str = "debian") -> None:
        """Plain-mirror layout: the mirror moves on to its next run."""
        self.current[archive] = min(self.current[archive] + 1, len(self.runs[archive]) - 1)

    def count(self, pattern: str) -> int:
        """Requests seen whose path matches the glob ``pattern``."""
        return sum(n for p, n in self.requests.items() if fnmatch.fnmatchcase(p, pattern))

    def reset_counts(self) -> None:
        self.requests.clear()
        self.statuses.clear()
        self.bytes_sent = 0

    def resolve(self, archive: str, ts: str) -> Run | None:
        when = parse_ts(ts)
        if when is None or archive not in self.runs:
            return None
        older = [r for r in self.runs[archive] if r.when <= when]
        return older[-1] if older else None

    async def start(self, port: int = 0) -> str:
        app = web.Application(middlewares=[self._track])
        app.router.add_get("/archive/{archive}/{ts}/{path:.+}", self._archive)
        app.router.add_get("/file/{sha1}", self._file)
        app.router.add_get("/mirror/{archive}/{path:.+}", self._mirror)
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        assert site._server is not None
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        return self.snapshot_base

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    # --- handlers
    def _fault(self, path: str) -> Fault | None:
        for fault in self.faults:
            if fault.times > 0 and fnmatch.fnmatchcase(path, fault.pattern):
                fault.times -= 1
                return fault
        return None

    def _note(self, request: web.Request) -> Fault | None:
        self.requests[request.path] += 1
        self.accept_encodings.append(request.headers.get("Accept-Encoding", ""))
        if "Authorization" in request.headers:
            self.authorizations.append(request.headers["Authorization"])
        if "Range" in request.headers:
            self.range_requests.append(request.headers["Range"])
            if not self.faults_on_ranges:
                return None  # a resumed request is answered plainly
        return self._fault(request.path)

    @web.middleware
    async def _track(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            return await handler(request)
        finally:
            self.active -= 1

    async def _archive(self, request: web.Request) -> web.StreamResponse:
        fault = self._note(request)
        archive, ts, path = (request.match_info[k] for k in ("archive", "ts", "path"))
        run = self.resolve(archive, ts)
        if run is None:
            return self._status(404)
        if ts != run.ts:
            raise web.HTTPMovedPermanently(f"/archive/{archive}/{run.ts}/{path}")
        data = run.files.get(path)
        if data is None:
            return self._status(404)
        if (path.startswith("pool/") and self.redirect_pool) or self.redirect_dists:
            if fault is not None and fault.kind in ("429", "503", "reset", "redirect"):
                return await self._body(request, data, run.when, fault)
            raise web.HTTPFound(f"/file/{sha1(data)}")
        return await self._body(request, data, run.when, fault)

    async def _file(self, request: web.Request) -> web.StreamResponse:
        fault = self._note(request)
        data = self.by_sha1.get(request.match_info["sha1"])
        if data is None:
            return self._status(404)
        return await self._body(request, data, datetime(2024, 1, 1, tzinfo=UTC), fault)

    async def _mirror(self, request: web.Request) -> web.StreamResponse:
        fault = self._note(request)
        archive, path = request.match_info["archive"], request.match_info["path"]
        runs = self.runs.get(archive)
        if not runs:
            return self._status(404)
        cur = self.current[archive]
        data = runs[cur].files.get(path)
        if data is None and "/by-hash/" in path:
            data = next((r.files[path] for r in runs[:cur] if path in r.files), None)
        if data is None or (path.startswith("pool/") and not self._in_any(runs[: cur + 1], path)):
            return self._status(404)
        return await self._body(request, data, runs[cur].when, fault)

    @staticmethod
    def _in_any(runs: list[Run], path: str) -> bool:
        return any(path in r.files for r in runs)

    def _status(self, status: int, headers: dict[str, str] | None = None) -> web.Response:
        self.statuses[status] += 1
        return web.Response(status=status, text=f"{status}\n", headers=headers)

    async def _body(
        self, request: web.Request, data: bytes, when: datetime, fault: Fault | None
    ) -> web.StreamResponse:
        kind = fault.kind if fault else None
        if kind == "429":
            hdr = {"Retry-After": fault.retry_after} if fault and fault.retry_after else None
            return self._status(429, hdr)
        if kind == "503":
            return self._status(503)
        if kind == "reset":
            assert request.transport is not None
            request.transport.abort()
            return web.Response(status=500)
        if kind == "redirect":
            assert fault is not None
            self.statuses[302] += 1
            return web.Response(status=302, headers={"Location": fault.location})
        last_modified = email.utils.format_datetime(when, usegmt=True)
        rng = re.match(r"^bytes=(\d+)-$", request.headers.get("Range", ""))
        if rng and self.honour_ranges and int(rng[1]) < len(data):
            return await self._partial(request, data, int(rng[1]), last_modified)
        self.statuses[200] += 1
        body = data
        headers = {"Last-Modified": last_modified, "Content-Type": "application/octet-stream"}
        if kind == "corrupt":
            mid = len(data) // 2
            body = data[:mid] + bytes([data[mid] ^ 0xFF]) + data[mid + 1 :]
        elif kind == "gzip":
            body = gzip.compress(data, mtime=0)
            headers["Content-Encoding"] = "gzip"
        elif kind == "bigheader":
            headers["X-Padding"] = "x" * 65536
        elif kind == "pad":
            body = data + b"\0" * 4096
        resp = web.StreamResponse(headers=headers)
        if self.framing == "length" and kind != "pad":
            resp.content_length = len(body)
        await resp.prepare(request)
        end = len(body) // 2 if kind == "truncate" else len(body)
        if kind == "cut-at":
            assert fault is not None
            end = fault.at
        if kind == "trickle":
            assert fault is not None
            for i in range(len(body)):
                await asyncio.sleep(fault.delay)
                await resp.write(body[i : i + 1])
                self.bytes_sent += 1
            await resp.write_eof()
            return resp
        delay = fault.delay if kind == "slow" and fault else 0.0
        pieces = max(1, -(-end // self.chunk))
        per_piece = self.slow_seconds / pieces if self.slow_seconds else 0.0
        for off in range(0, end, self.chunk):
            if delay or per_piece:
                await asyncio.sleep(delay or per_piece)
            piece = body[off : min(end, off + self.chunk)]
            await resp.write(piece)
            self.bytes_sent += len(piece)
        if kind in ("truncate", "cut-at"):
            transport = request.transport
            assert transport is not None
            for _ in range(200):  # let what was written reach the client, then cut
                if not transport.get_write_buffer_size():
                    break
                await asyncio.sleep(0.005)
            await asyncio.sleep(0.01)
            transport.abort()
            return resp
        await resp.write_eof()
        return resp

    async def _partial(
        self, request: web.Request, data: bytes, start: int, last_modified: str
    ) -> web.StreamResponse:
        """RFC 9110 §14.4: 206 with Content-Range for ``bytes=start-``."""
        self.statuses[206] += 1
        body = data[start:]
        resp = web.Response(
            status=206,
            body=body,
            headers={
                "Last-Modified": last_modified,
                "Content-Range": f"bytes {start}-{len(data) - 1}/{len(data)}",
                "Content-Type": "application/octet-stream",
            },
        )
        self.bytes_sent += len(body)
        return resp
