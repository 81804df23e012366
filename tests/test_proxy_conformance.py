"""RFC 9110 conformance, side by side with nginx serving the same bytes with the same mtime.

Each case sends one request to the proxy (a cached file) and to nginx (the same file
on disk) and compares status, Content-Range and body; entity-tags differ by
construction (each server makes its own), so cases that need one use each server's.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from cache_proxy.config import ProxyConfig
from cache_proxy.server import ProxyServer
from tests.fakesnap import FakeSnapshot, make_runs, sha256
from tests.proxy_fixtures import FAST_RETRY, RUNS

pytestmark = pytest.mark.skipif(
    shutil.which("nginx") is None, reason="needs nginx (apt-get install nginx-light)"
)
POOL = "pool/main/p/pkg1/pkg1_1.0_all.deb"
BIG = "pool/main/b/big/big_1.0_all.deb"  # above SMALL_BLOB: FileResponse's own path


@dataclass
class Pair:
    proxy: str  # base URLs: the file is at <base>/archive/debian/<ts>/<path>
    nginx: str
    size: dict[str, int]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


NGINX_CONF = """
daemon off;
user root;  # its workers read the test's private temporary directory
pid {tmp}/nginx.pid;
error_log /dev/stderr warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    server {{
        listen 127.0.0.1:{port};
        root {tmp}/www;
        # RFC 9110 §13.1.3: not modified if the file is not newer than the date (nginx's
        # default, "exact", asks for the very same date).
        if_modified_since before;
    }}
}}
"""


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[Pair]:
    extra = {BIG: os.urandom(600 << 10)}
    fake = FakeSnapshot({"debian": make_runs("debian", "bookworm", RUNS[:1], extra=extra)})
    await fake.start()
    server = ProxyServer(
        ProxyConfig(
            cache_dir=tmp_path / "cache",
            upstreams=(fake.snapshot_base,),
            host="127.0.0.1",
            port=0,
            retry=FAST_RETRY,
            access_log=None,
        )
    )
    await server.start()
    proxy = f"http://{server.address}"
    run = fake.runs["debian"][0]
    sizes = {}
    async with aiohttp.ClientSession() as http:
        for path in (POOL, BIG):
            async with http.get(f"{proxy}/archive/debian/{RUNS[0]}/{path}") as resp:
                assert await resp.read() == run.files[path]
            # nginx serves the same bytes with the same mtime as the stored blob.
            blob = tmp_path / "cache/blobs/sha256" / sha256(run.files[path])[:2]
            st = (blob / sha256(run.files[path])).stat()
            dest = tmp_path / "www/archive/debian" / RUNS[0] / path
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(run.files[path])
            os.utime(dest, ns=(st.st_atime_ns, st.st_mtime_ns))
            sizes[path] = len(run.files[path])
    port = free_port()
    conf = tmp_path / "nginx.conf"
    conf.write_text(NGINX_CONF.format(tmp=tmp_path, port=port))
    nginx = await asyncio.create_subprocess_exec("nginx", "-p", str(tmp_path), "-c", str(conf))
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(500):
                try:
                    async with http.get(f"{base}/archive/debian/{RUNS[0]}/{POOL}") as resp:
                        if resp.status == 200:
                            break
                except aiohttp.ClientError:
                    await asyncio.sleep(0.02)
        yield Pair(proxy, base, sizes)
    finally:
        nginx.terminate()
        await nginx.wait()
        await server.stop()
        await fake.stop()


async def answer(
    http: aiohttp.ClientSession, method: str, url: str, headers: dict[str, str]
) -> tuple[int, str | None, bytes, dict[str, str]]:
    async with http.request(method, url, headers=headers) as resp:
        return (
            resp.status,
            resp.headers.get("Content-Range"),
            await resp.read(),
            dict(resp.headers),
        )


async def validators(http: aiohttp.ClientSession, url: str) -> tuple[str, str]:
    async with http.head(url) as resp:
        return resp.headers["ETag"], resp.headers["Last-Modified"]


# Each case: name, method, headers ({etag} and {date} are each server's own validators,
# {old} a date before the file's, {new} one after it).
CASES = [
    ("plain", "GET", {}),
    ("head", "HEAD", {}),
    ("range first bytes", "GET", {"Range": "bytes=0-99"}),
    ("range open end", "GET", {"Range": "bytes=100-"}),
    ("range suffix", "GET", {"Range": "bytes=-100"}),
    ("range past the end is clipped", "GET", {"Range": "bytes=100-99999999"}),
    ("range unsatisfiable", "GET", {"Range": "bytes=99999999-"}),
    ("range not bytes unit: ignored", "GET", {"Range": "items=0-5"}),
    ("range syntax error: ignored", "GET", {"Range": "bytes=abc"}),
    ("range with HEAD", "HEAD", {"Range": "bytes=0-99"}),
    ("if-range etag matches", "GET", {"Range": "bytes=0-99", "If-Range": "{etag}"}),
    ("if-range etag differs", "GET", {"Range": "bytes=0-99", "If-Range": '"nope"'}),
    ("if-range weak etag never matches", "GET", {"Range": "bytes=0-99", "If-Range": "W/{etag}"}),
    ("if-range date matches", "GET", {"Range": "bytes=0-99", "If-Range": "{date}"}),
    ("if-range old date", "GET", {"Range": "bytes=0-99", "If-Range": "{old}"}),
    ("if-modified-since same", "GET", {"If-Modified-Since": "{date}"}),
    ("if-modified-since older", "GET", {"If-Modified-Since": "{old}"}),
    ("if-modified-since newer", "GET", {"If-Modified-Since": "{new}"}),
    ("if-modified-since garbage", "GET", {"If-Modified-Since": "yesterday"}),
    ("if-none-match etag", "GET", {"If-None-Match": "{etag}"}),
    ("if-none-match star", "GET", {"If-None-Match": "*"}),
    ("if-none-match other", "GET", {"If-None-Match": '"nope"'}),
    (
        "if-none-match wins over ims",
        "GET",
        {"If-None-Match": '"nope"', "If-Modified-Since": "{new}"},
    ),
    ("if-match etag", "GET", {"If-Match": "{etag}"}),
    ("if-match other", "GET", {"If-Match": '"nope"'}),
    ("if-unmodified-since old", "GET", {"If-Unmodified-Since": "{old}"}),
    ("if-unmodified-since new", "GET", {"If-Unmodified-Since": "{new}"}),
    ("head if-none-match", "HEAD", {"If-None-Match": "{etag}"}),
]
# Accept-Ranges is optional on a 206 (RFC 9110 §14.3: nginx leaves it out, we send it).
COMPARED = ("Last-Modified", "Content-Length")
OLD = "Mon, 01 Jan 2001 00:00:00 GMT"
NEW = "Fri, 01 Jan 2100 00:00:00 GMT"


@pytest.mark.parametrize("path", [POOL, BIG], ids=["small", "large"])
async def test_same_answers_as_nginx(pair: Pair, path: str) -> None:
    differ = []
    async with aiohttp.ClientSession(auto_decompress=False) as http:
        for name, method, template in CASES:
            got = {}
            for who, base in (("proxy", pair.proxy), ("nginx", pair.nginx)):
                url = f"{base}/archive/debian/{RUNS[0]}/{path}"
                etag, date = await validators(http, url)
                headers = {
                    k: v.format(etag=etag, date=date, old=OLD, new=NEW) for k, v in template.items()
                }
                status, crange, body, fields = await answer(http, method, url, headers)
                same = tuple(fields.get(h) for h in COMPARED) if status in (200, 206) else ()
                got[who] = (status, crange, body, same)
            for who in got:  # an error's body is each server's own prose
                status, crange, body, same = got[who]
                got[who] = (status, crange, body if status < 300 else b"", same)
            if got["proxy"] != got["nginx"]:
                p, n = got["proxy"], got["nginx"]
                differ.append(
                    f"{name}: proxy {p[0]} {p[1]} {len(p[2])}B {p[3]}, "
                    f"nginx {n[0]} {n[1]} {len(n[2])}B {n[3]}"
                )
    assert not differ, "\n".join(differ)
