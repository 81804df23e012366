"""Secrets and logs: no credentials in any output, client bytes escaped, one line per
malformed request, /metrics only for the networks given."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest

from cache_proxy.config import ProxyConfig
from cache_proxy.safety import logsafe, redact
from tests.fakesnap import FakeSnapshot, sha1
from tests.hostile_fixtures import raw_get
from tests.proxy_fixtures import *  # noqa: F403
from tests.proxy_fixtures import RUNS, Proxy

MakeProxy = Callable[..., Awaitable[Proxy]]
POOL = "pool/main/p/pkg1/pkg1_1.0_all.deb"
SECRET = "s3cret-Pa55"


def test_redact_and_logsafe() -> None:
    assert redact("GET http://u:pw@h:1/x and https://tok@h/") == (
        "GET http://***@h:1/x and https://***@h/"
    )
    assert redact("http://h/a@b") == "http://h/a@b"  # an @ in the path is no userinfo
    assert logsafe('a\nb"c\\d\x1b\u00e9') == 'a\\x0ab\\"c\\\\d\\x1b\\xe9'
    assert logsafe("/archive/debian/x") == "/archive/debian/x"
    assert len(logsafe("x" * 10000)) < 2100


def test_config_errors_do_not_show_the_password(tmp_path: Path) -> None:
    with pytest.raises(ValueError) as err:
        ProxyConfig(cache_dir=tmp_path, upstreams=(f"ftp://user:{SECRET}@mirror/",))
    assert SECRET not in str(err.value) and "***@mirror" in str(err.value)


async def test_upstream_credentials_in_no_body_log_or_metric(
    fake: FakeSnapshot,
    make_proxy: MakeProxy,
    http: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    up = f"http://mirror-user:{SECRET}@127.0.0.1:{fake.port}/archive/"
    proxy = await make_proxy(upstreams=(up,))
    data = fake.runs["debian"][0].files[POOL]
    fake.inject(f"/file/{sha1(data)}", "503", times=100)
    async with http.get(proxy.archive_url("debian", RUNS[0], POOL)) as resp:
        body = await resp.text()
        assert resp.status in (502, 503, 504)
    fake.faults.clear()
    missing = "pool/main/n/nope/nope_1_all.deb"
    async with http.get(proxy.archive_url("debian", RUNS[0], missing)) as resp:
        body += await resp.text()
        assert resp.status == 404
    async with http.get(f"{proxy.url}/metrics") as resp:
        metrics = await resp.text()
    assert fake.authorizations  # the credentials were used, upstream...
    for text in (body, metrics, caplog.text):  # ...and shown nowhere
        assert SECRET not in text and "mirror-user" not in text
    assert "***@127.0.0.1" in caplog.text  # the URL is still named, without them


async def test_client_credentials_not_logged_nor_sent_upstream(
    fake: FakeSnapshot, make_proxy: MakeProxy, tmp_path: Path
) -> None:
    log_file = tmp_path / "access.log"
    proxy = await make_proxy(access_log=str(log_file))
    target = f"http://client-user:{SECRET}@127.0.0.1:{fake.port}/archive/debian/{RUNS[0]}/{POOL}"
    auth = f"Authorization: Basic {SECRET}\r\nProxy-Authorization: Basic {SECRET}\r\n"
    got = await raw_get(proxy.server.address, target, headers=auth)
    assert got.status == 200
    assert got.body == fake.runs["debian"][0].files[POOL]
    await proxy.server.stop()  # flushes the access log
    text = log_file.read_text()
    assert SECRET not in text and "client-user" not in text
    assert "http://***@127.0.0.1" in text
    assert all(SECRET not in a for a in fake.authorizations)


async def test_log_lines_escape_client_bytes(
    fake: FakeSnapshot, make_proxy: MakeProxy, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    log_file = tmp_path / "access.log"
    proxy = await make_proxy(access_log=str(log_file))
    # With the Release known, an unlisted pool path is logged (decoded: %0a is a newline).
    release = await raw_get(
        proxy.server.address, f"/archive/debian/{RUNS[0]}/dists/bookworm/InRelease"
    )
    assert release.status == 200
    targets = [
        f"/archive/debian/{RUNS[0]}/pool/main/x/x%0aFORGED%20200/x_1_all.deb",
        f'/archive/debian/{RUNS[0]}/pool/main/x/q"uote/x_1_all.deb',
        f"/archive/debian/{RUNS[0]}/pool/main/x/%1b%5b31m/x_1_all.deb",
    ]
    for target in targets:
        got = await raw_get(proxy.server.address, target)
        assert got.status == 404
    await proxy.server.stop()
    lines = log_file.read_text().splitlines()
    assert len(lines) == len(targets) + 1  # one line per request, whatever it held
    assert all(line.count('"') - line.count('\\"') == 2 for line in lines), lines
    for record in caplog.records:
        text = record.getMessage()
        assert "\n" not in text and "\x1b" not in text, text
    assert any("/\\x1b[31m/" in r.getMessage() for r in caplog.records)  # logged, escaped


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GARBAGE\r\n\r\n",
        b"GET /\x01 HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET http://[::1 HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /archive/debian/20240101/\xff HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET http://snapshot.debian.org:99999/x HTTP/1.1\r\nHost: x\r\n\r\n",
    ],
)
async def test_malformed_request_is_one_line_not_a_traceback(
    fake: FakeSnapshot,
    make_proxy: MakeProxy,
    caplog: pytest.LogCaptureFixture,
    request_bytes: bytes,
) -> None:
    caplog.set_level(logging.DEBUG)
    proxy = await make_proxy()
    caplog.clear()
    host, port = proxy.server.address.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(request_bytes)
    await writer.drain()
    status = (await asyncio.wait_for(reader.readline(), 10)).split()[1]
    writer.close()
    assert status == b"400"
    ours = [r for r in caplog.records if r.name.startswith(("cache_proxy", "aiohttp"))]
    assert len(ours) == 1, [r.getMessage() for r in ours]
    assert ours[0].exc_info is None and ours[0].levelno <= logging.INFO
    assert "\n" not in ours[0].getMessage() and "Traceback" not in caplog.text


@pytest.mark.parametrize(("networks", "status"), [(("10.0.0.0/8",), 403), (("127.0.0.0/8",), 200)])
async def test_metrics_limited_to_given_networks(
    fake: FakeSnapshot,
    make_proxy: MakeProxy,
    http: aiohttp.ClientSession,
    networks: tuple[str, ...],
    status: int,
) -> None:
    proxy = await make_proxy(metrics_networks=networks)
    async with http.get(f"{proxy.url}/metrics") as resp:
        assert resp.status == status
        text = await resp.text()
    assert ("reprobase_proxy_hits_total" in text) == (status == 200)
    async with http.get(f"{proxy.url}/healthz") as resp:  # health stays open
        assert resp.status == 200


async def test_metrics_allow_flag_is_checked(tmp_path: Path) -> None:
    from cache_proxy.cli import build_parser, config_from_args
    from cache_proxy.errors import UserError

    args = build_parser().parse_args(
        ["--cache-dir", str(tmp_path), "--metrics-allow", "10.0.0.0/8", "--metrics-allow", "::1"]
    )
    assert config_from_args(args).metrics_networks == ("10.0.0.0/8", "::1")
    bad = build_parser().parse_args(["--cache-dir", str(tmp_path), "--metrics-allow", "10.0.0"])
    with pytest.raises(UserError, match="metrics-allow"):
        config_from_args(bad)
