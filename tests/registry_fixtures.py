"""Test helpers for the distribution client: synthetic layouts and real registries.

`docker-registry` (Debian package docker-registry, distribution 2.8) runs on a free
127.0.0.1 port with a temporary config and storage: anonymous, htpasswd (bcrypt,
from apache2-utils) or token auth. The token variant is the real distribution
token flow: a small aiohttp token server (in a thread) signs RS256 JWTs with a
key whose self-signed certificate (made with openssl) is the registry's
rootcertbundle; the certificate travels in the JWT's x5c header.
Readiness is event-driven: we block on the registry's "listening on" log line.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import io
import json
import random
import secrets
import socket
import subprocess
import tarfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from factory.common import runner
from factory.common.canonical import sha256_digest
from factory.image.oci import (
    MT_CONFIG,
    MT_INDEX,
    MT_LAYER_GZIP,
    MT_MANIFEST,
    Descriptor,
    init_layout,
    write_blob,
    write_index,
    write_json_blob,
)

USER = "pusher"
PASSWORD = "s3cret-Pa55word-never-logged"


# -- synthetic layouts -----------------------------------------------------------------
def _layer(rng: random.Random, size: int, name: str, level: int = 1) -> tuple[bytes, str]:
    """A gzip'd tar holding one file of random bytes; returns (blob, diff_id)."""
    payload = rng.randbytes(size)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo(name)
        info.size, info.mtime, info.mode = size, 0, 0o644
        tar.addfile(info, io.BytesIO(payload))
    raw = buf.getvalue()
    return gzip.compress(raw, compresslevel=level, mtime=0), sha256_digest(raw)


def make_layout(
    dest: Path,
    *,
    platforms: Sequence[str] = ("amd64", "arm64"),
    layer_sizes: Sequence[int] = (2_000_000, 500_000),
    seed: int = 0,
    as_index: bool = True,
    ref_name: str | None = None,
) -> Descriptor:
    """An OCI layout with one image (an index of platforms, or a bare manifest)."""
    init_layout(dest)
    rng = random.Random(seed)
    manifests: list[Descriptor] = []
    for arch in platforms:
        layers: list[Descriptor] = []
        diff_ids: list[str] = []
        for i, size in enumerate(layer_sizes):
            blob, diff_id = _layer(rng, size, f"{arch}-{i}.bin")
            layers.append(Descriptor(MT_LAYER_GZIP, write_blob(dest, blob), len(blob)))
            diff_ids.append(diff_id)
        config = {
            "architecture": arch,
            "os": "linux",
            "created": "2024-01-01T00:00:00Z",
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "config": {"Cmd": ["/bin/sh"]},
        }
        cfg = write_json_blob(dest, config, MT_CONFIG)
        manifest = {
            "schemaVersion": 2,
            "mediaType": MT_MANIFEST,
            "config": cfg.to_json(),
            "layers": [d.to_json() for d in layers],
        }
        platform = {"architecture": arch, "os": "linux"}
        if arch == "arm64":
            platform["variant"] = "v8"
        manifests.append(write_json_blob(dest, manifest, MT_MANIFEST, platform=platform))
    if as_index:
        entries = [m.to_json() for m in manifests]
        index = {"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": entries}
        top = write_json_blob(dest, index, MT_INDEX)
    else:
        assert len(manifests) == 1
        top = Descriptor(MT_MANIFEST, manifests[0].digest, manifests[0].size)
    anns = {"org.opencontainers.image.ref.name": ref_name} if ref_name else {}
    top = Descriptor(top.media_type, top.digest, top.size, anns)
    write_index(dest, [top], {})
    return top


# -- token server ------------------------------------------------------------------------
def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class TokenServer:
    """aiohttp token endpoint in its own thread (usable from sync and async tests)."""

    key: Path
    cert_der: bytes
    service: str = "test-registry"
    issuer: str = "test-issuer"
    port: int = 0
    requests: list[dict[str, Any]] = field(default_factory=list)
    _loop: asyncio.AbstractEventLoop | None = None
    _runner: web.AppRunner | None = None

    def _sign(self, claims: dict[str, Any]) -> str:
        header = {"alg": "RS256", "typ": "JWT", "x5c": [base64.b64encode(self.cert_der).decode()]}
        head, body = _b64url(json.dumps(header).encode()), _b64url(json.dumps(claims).encode())
        signing_input = f"{head}.{body}"
        argv = ["openssl", "dgst", "-sha256", "-sign", self.key]
        sig = runner.run(argv, input_bytes=signing_input.encode(), capture=True).stdout
        return f"{signing_input}.{_b64url(sig)}"

    async def _token(self, request: web.Request) -> web.Response:
        scopes = request.query.getall("scope", [])
        authz = request.headers.get("Authorization", "")
        self.requests.append({"scopes": scopes, "authenticated": bool(authz)})
        user = None
        if authz:
            raw = base64.b64decode(authz.removeprefix("Basic ")).decode()
            u, _, p = raw.partition(":")
            if (u, p) != (USER, PASSWORD):
                return web.json_response({"errors": [{"code": "UNAUTHORIZED"}]}, status=401)
            user = u
        access = []
        for scope in scopes:
            typ, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            if user is not None:
                access.append({"type": typ, "name": name, "actions": actions.split(",")})
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": user or "",
            "aud": request.query.get("service", ""),
            "exp": now + 300,
            "nbf": now - 10,
            "iat": now,
            "jti": secrets.token_hex(8),
            "access": access,
        }
        token = await asyncio.to_thread(self._sign, claims)
        return web.json_response({"token": token, "expires_in": 300})

    def start(self) -> None:
        ready = threading.Event()

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            app = web.Application()
            app.router.add_get("/token", self._token)
            self._runner = web.AppRunner(app)
            loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            loop.run_until_complete(site.start())
            self.port = self._runner.addresses[0][1]
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=serve, daemon=True)
        self._thread.start()
        ready.wait(30)

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(30)

    @property
    def realm(self) -> str:
        return f"http://127.0.0.1:{self.port}/token"


def make_token_server(tmp: Path) -> TokenServer:
    key, cert = tmp / "token.key", tmp / "token.pem"
    runner.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            key,
            "-out",
            cert,
            "-days",
            "2",
            "-subj",
            "/CN=reprobase-test-token-issuer",
        ]
    )
    der = runner.run(["openssl", "x509", "-in", cert, "-outform", "DER"], capture=True).stdout
    ts = TokenServer(key, der)
    ts.start()
    return ts


# -- docker-registry -----------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Registry:
    root: Path
    auth: str | None = None  # None, "htpasswd" or "token"
    port: int = field(default_factory=free_port)
    token_server: TokenServer | None = None
    proc: subprocess.Popen[bytes] | None = None
    log_lines: list[str] = field(default_factory=list)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def ref(self, repo: str, tag: str | None = None) -> str:
        return f"{self.host}/{repo}" + (f":{tag}" if tag else "")

    def _config(self) -> Path:
        lines = [
            "version: 0.1",
            "log: {level: info, formatter: text}",
            "storage:",
            f"  filesystem: {{rootdirectory: {self.root / 'storage'}}}",
            "  delete: {enabled: true}",
            "http:",
            f"  addr: 127.0.0.1:{self.port}",
            "  secret: fixed-secret-so-upload-state-survives-restarts",
        ]
        if self.auth == "htpasswd":
            # -i: the password goes through stdin, never into a logged argv.
            line = runner.run(
                ["htpasswd", "-Bin", USER], input_bytes=PASSWORD.encode(), capture=True
            )
            line = line.stdout.decode().strip()
            (self.root / "htpasswd").write_text(line + "\n")
            htpasswd = self.root / "htpasswd"
            lines += ["auth:", f"  htpasswd: {{realm: test, path: {htpasswd}}}"]
        elif self.auth == "token":
            assert self.token_server is not None
            ts = self.token_server
            cert = self.root / "token.pem"
            lines += [
                "auth:",
                "  token:",
                f"    realm: {ts.realm}",
                f"    service: {ts.service}",
                f"    issuer: {ts.issuer}",
                f"    rootcertbundle: {cert}",
            ]
        path = self.root / "config.yml"
        path.write_text("\n".join(lines) + "\n")
        return path

    def start(self) -> None:
        config = self._config()
        self.proc = subprocess.Popen(
            [runner.require_tool("docker-registry"), "serve", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=runner.clean_env(),
        )
        assert self.proc.stderr is not None
        stream = self.proc.stderr
        for raw in stream:  # blocks on the registry's own log, no polling sleeps
            line = raw.decode("utf-8", "replace")
            self.log_lines.append(line)
            if "listening on" in line:
                break
        else:
            raise RuntimeError("docker-registry exited:\n" + "".join(self.log_lines[-20:]))
        self._drainer = threading.Thread(target=self._drain, args=(stream,), daemon=True)
        self._drainer.start()
        try:
            with urllib.request.urlopen(f"http://{self.host}/v2/", timeout=10) as resp:
                assert resp.status == 200
        except urllib.error.HTTPError as exc:
            assert exc.code == 401, exc

    def _drain(self, stream: Any) -> None:
        with stream:
            for raw in stream:
                self.log_lines.append(raw.decode("utf-8", "replace"))

    def _reap(self) -> None:
        drainer: threading.Thread | None = getattr(self, "_drainer", None)
        if drainer is not None:
            drainer.join(30)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)
        self._reap()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._reap()


def start_registry(root: Path, auth: str | None = None) -> Registry:
    root.mkdir(parents=True, exist_ok=True)
    ts = None
    if auth == "token":
        ts = make_token_server(root)
    reg = Registry(root, auth, token_server=ts)
    reg.start()
    return reg


def skopeo_raw(ref: str, creds: str | None = None) -> bytes:
    """Bytes of a manifest as skopeo reads them from the registry."""
    argv = ["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{ref}"]
    if creds:
        argv[3:3] = ["--creds", creds]
    return runner.run(argv, capture=True).stdout


def env_with_creds() -> dict[str, str]:
    return {"REPROBASE_REGISTRY_USER": USER, "REPROBASE_REGISTRY_PASSWORD": PASSWORD}


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    reg = start_registry(tmp_path_factory.mktemp("registry"))
    yield reg
    reg.stop()


@pytest.fixture(scope="module")
def basic_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    reg = start_registry(tmp_path_factory.mktemp("registry-basic"), auth="htpasswd")
    yield reg
    reg.stop()


@pytest.fixture(scope="module")
def token_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    reg = start_registry(tmp_path_factory.mktemp("registry-token"), auth="token")
    yield reg
    reg.stop()
    assert reg.token_server is not None
    reg.token_server.stop()


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("layout")
    make_layout(path)
    return path


def unique_repo(prefix: str = "test") -> str:
    return f"{prefix}/r{secrets.token_hex(4)}"
