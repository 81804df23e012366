"""Recorder mode: a plain mirror served under snapshot URLs, frozen per timestamp."""

from __future__ import annotations

import datetime as dt
import pathlib
from datetime import timedelta

import aiohttp
import pytest

from tests.fakesnap import FakeSnapshot, sha256
from tests.proxy_fixtures import *  # noqa: F403
from tests.proxy_fixtures import Proxy

T1 = "20250101T000000Z"
T2 = "20250102T000000Z"
PKGS = "dists/bookworm/main/binary-amd64/Packages"


async def fetch(http: aiohttp.ClientSession, url: str, **kw: object) -> tuple[int, bytes]:
    async with http.get(url, **kw) as resp:  # type: ignore[arg-type]
        return resp.status, await resp.read()


async def fetch_like_apt(
    http: aiohttp.ClientSession, url: str, **kw: object
) -> tuple[int, bytes, int]:
    """Retry a body that arrives incomplete, as apt does; (status, body, broken answers)."""
    broken = 0
    while True:
        try:
            status, body = await fetch(http, url, **kw)
            return status, body, broken
        except aiohttp.ClientPayloadError:
            broken += 1
            assert broken < 3


async def test_freeze_survives_mirror_update(fake: FakeSnapshot, make_proxy, http) -> None:  # type: ignore[no-untyped-def]
    proxy: Proxy = await make_proxy(record=True)
    run0, run1 = fake.runs["debian"][0], fake.runs["debian"][1]
    status, body = await fetch(http, proxy.archive_url("debian", T1, "dists/bookworm/InRelease"))
    assert status == 200 and body == run0.files["dists/bookworm/InRelease"]
    fake.advance("debian")  # the mirror moves on mid-session
    for name in ("Packages.xz", "Packages.gz"):
        status, body = await fetch(http, proxy.archive_url("debian", T1, f"{PKGS[:-9]}/{name}"))
        assert status == 200 and sha256(body) == sha256(run0.files[f"{PKGS}{name[8:]}"])
    for name in ("Release", "Release.gpg"):
        status, body = await fetch(http, proxy.archive_url("debian", T1, f"dists/bookworm/{name}"))
        assert status == 200 and body == run0.files[f"dists/bookworm/{name}"]
    # a new timestamp freezes the mirror as it is now
    status, body = await fetch(http, proxy.archive_url("debian", T2, "dists/bookworm/InRelease"))
    assert status == 200 and body == run1.files["dists/bookworm/InRelease"]
    # the old timestamp still answers with what it froze
    status, body = await fetch(http, proxy.archive_url("debian", T1, "dists/bookworm/InRelease"))
    assert body == run0.files["dists/bookworm/InRelease"]
    assert fake.count("/mirror/debian/dists/bookworm/InRelease") == 2


async def test_record_pool_files_verified_and_forward_mode(
    fake: FakeSnapshot, make_proxy, http
) -> None:  # type: ignore[no-untyped-def]
    proxy: Proxy = await make_proxy(record=True)
    run0 = fake.runs["debian"][0]
    snap = f"http://snapshot.debian.org/archive/debian/{T1}/"
    for path in ("dists/bookworm/InRelease", f"{PKGS}.xz"):
        status, body = await fetch(http, snap + path, proxy=proxy.url)
        assert status == 200 and body == run0.files[path]
    pool = [p for p in run0.files if p.startswith("pool/")]
    fake.inject("/mirror/debian/pool/*", "corrupt", times=1)
    broken = 0
    for path in pool:
        # never a complete 200 with wrong bytes: either cut off, or right
        status, body, cut = await fetch_like_apt(http, snap + path, proxy=proxy.url)
        assert status == 200 and body == run0.files[path]
        broken += cut
    assert broken <= 1
    for path in pool:  # hits now
        status, body = await fetch(http, proxy.archive_url("debian", T1, path))
        assert body == run0.files[path]
    assert fake.count("/mirror/debian/pool/*") == len(pool) + 1  # one retry for the corruption
    assert proxy.metrics.get("verify_failures_total") == 1


async def test_record_unknown_suite_is_404(fake: FakeSnapshot, make_proxy, http) -> None:  # type: ignore[no-untyped-def]
    proxy: Proxy = await make_proxy(record=True)
    status, _ = await fetch(http, proxy.archive_url("debian", T1, "dists/nosuch/InRelease"))
    assert status == 404


async def test_pool_file_before_its_packages_is_still_verified(
    fake: FakeSnapshot, make_proxy, http
) -> None:  # type: ignore[no-untyped-def]
    """apt asks for Packages first; a client that does not still gets checked bytes."""
    proxy: Proxy = await make_proxy(record=True)
    run0 = fake.runs["debian"][0]
    status, _ = await fetch(http, proxy.archive_url("debian", T1, "dists/bookworm/InRelease"))
    assert status == 200
    pool = sorted(p for p in run0.files if p.startswith("pool/"))
    # Same length, wrong bytes: a length check alone would store and serve this.
    fake.inject(f"/mirror/debian/{pool[0]}", "corrupt", times=1)
    status, body, _ = await fetch_like_apt(http, proxy.archive_url("debian", T1, pool[0]))
    assert status == 200 and body == run0.files[pool[0]]
    assert proxy.metrics.get("verify_failures_total") == 1
    assert fake.count(f"/mirror/debian/{pool[0]}") == 2
    # The proxy fetched the frozen Packages itself, once, by the hash Release lists.
    assert fake.count("/mirror/debian/dists/bookworm/main/binary-amd64/by-hash/*") == 1
    for path in pool[1:]:
        status, body = await fetch(http, proxy.archive_url("debian", T1, path))
        assert status == 200 and body == run0.files[path]
    assert fake.count("/mirror/debian/dists/bookworm/main/binary-amd64/by-hash/*") == 1
    assert proxy.metrics.get("unlisted_total") == 0


async def test_file_in_no_index_is_counted(fake: FakeSnapshot, make_proxy, http) -> None:  # type: ignore[no-untyped-def]
    proxy: Proxy = await make_proxy(record=True)
    run0 = fake.runs["debian"][0]
    pool = sorted(p for p in run0.files if p.startswith("pool/"))
    # No suite frozen under this timestamp yet: nothing to check it against.
    status, body = await fetch(http, proxy.archive_url("debian", T1, pool[0]))
    assert status == 200 and body == run0.files[pool[0]]
    assert proxy.metrics.get("unlisted_total") == 1


async def test_no_new_recording_under_a_past_timestamp(  # type: ignore[no-untyped-def]
    fake: FakeSnapshot, make_proxy, http, tmp_path
) -> None:
    """A recording holds the mirror as it is now: filing it under an old timestamp would
    be a false pin. Recordings already made keep being served."""
    cache = tmp_path / "recordings"
    first: Proxy = await make_proxy(record=True, cache_dir=cache)  # no window: records T1
    status, body = await fetch(http, first.archive_url("debian", T1, "dists/bookworm/InRelease"))
    assert status == 200
    strict: Proxy = await make_proxy(record=True, cache_dir=cache, record_window=timedelta(days=2))
    status, again = await fetch(http, strict.archive_url("debian", T1, "dists/bookworm/InRelease"))
    assert status == 200 and again == body  # the existing recording of T1
    status, text = await fetch(http, strict.archive_url("debian", T2, "dists/bookworm/InRelease"))
    assert status == 409 and b"is not the state of" in text
    assert fake.count("/mirror/debian/dists/bookworm/InRelease") == 1  # T2 never asked


def test_recording_window_edges() -> None:
    from cache_proxy.recorder import refuse_untrue_recording
    from cache_proxy.upstream import UpstreamError

    now = dt.datetime(2026, 12, 1, 12, tzinfo=dt.UTC)
    window = timedelta(days=2)
    refuse_untrue_recording(window, "debian", "20261201T000000Z", "bookworm", now)
    refuse_untrue_recording(window, "debian", "20261130T000000Z", "bookworm", now)
    for ts in ("19900101T000000Z", "20261125T000000Z", "20261202T000000Z"):
        with pytest.raises(UpstreamError):
            refuse_untrue_recording(window, "debian", ts, "bookworm", now)
    refuse_untrue_recording(None, "debian", "19900101T000000Z", "bookworm", now)


def test_record_window_is_a_flag(tmp_path: pathlib.Path) -> None:
    """Issue 12: how far back a new recording may be filed is the operator's to choose."""
    from cache_proxy.cli import build_parser, config_from_args
    from cache_proxy.errors import UserError

    def window(*flags: str) -> timedelta | None:
        args = build_parser().parse_args(["--cache-dir", str(tmp_path / "c"), "--record", *flags])
        return config_from_args(args).record_window

    assert window() == timedelta(days=2)
    assert window("--record-window", "0.5") == timedelta(hours=12)
    for bad in ("0", "-1", "367", "nan"):
        with pytest.raises(UserError, match=r"--record-window .* is out of range"):
            window("--record-window", bad)
