"""Pure logic of the proxy: timestamps, routing, indexes, verification, HTTP decisions."""

from __future__ import annotations

import gzip
import hashlib
import time
from datetime import UTC, datetime, timedelta

import pytest

from cache_proxy import debindex, httpsem, timestamps
from cache_proxy.config import Mode, parse_listen, parse_size
from cache_proxy.metrics import Metrics
from cache_proxy.routing import BadTarget, Kind, parse_archive_path
from cache_proxy.upstream import parse_retry_after
from cache_proxy.verify import Expect, Hasher, VerifyError
from tests.fakesnap import fake_clearsign, make_runs

ARCHIVES = ("debian", "debian-security")


@pytest.mark.parametrize(
    "spelling",
    ["20240102T030405Z", "20240102T030405", "2024-01-02T03:04:05Z", "20240102t030405z"],
)
def test_timestamp_spellings(spelling: str) -> None:
    assert timestamps.canonical(spelling) == "20240102T030405Z"


def test_timestamp_short_forms_and_errors() -> None:
    assert timestamps.canonical("20240102") == "20240102T000000Z"
    assert timestamps.canonical("20240102T0304Z") == "20240102T030400Z"
    for bad in ("2024", "20241301", "yesterday", "20240102T250000Z"):
        with pytest.raises(timestamps.BadTimestamp):
            timestamps.canonical(bad)


def test_volatile_only_in_the_future() -> None:
    now = datetime(2024, 6, 1, tzinfo=UTC)
    assert not timestamps.is_volatile("20240531T000000Z", now, timedelta(0))
    assert timestamps.is_volatile("20240602T000000Z", now, timedelta(0))
    assert timestamps.is_volatile("20240531T230000Z", now, timedelta(hours=6))


def test_routing_kinds() -> None:
    t = parse_archive_path("/archive/debian/20240101/dists/bookworm/InRelease", ARCHIVES)
    assert (t.archive, t.ts, t.kind, t.suite) == (
        "debian",
        "20240101T000000Z",
        Kind.RELEASE,
        "bookworm",
    )
    t = parse_archive_path(
        "/archive/debian/20240101/dists/bookworm/main/binary-amd64/by-hash/SHA256/" + "a" * 64,
        ARCHIVES,
    )
    assert t.kind is Kind.BY_HASH and t.by_hash == ("SHA256", "a" * 64)
    t = parse_archive_path("/archive/debian/20240101/dists/bookworm/main/i18n/Index", ARCHIVES)
    assert t.kind is Kind.INDEX
    t = parse_archive_path(
        "/archive/debian/20240101/pool/main/g/gcc/libstdc++6_1_amd64.deb", ARCHIVES
    )
    assert t.kind is Kind.FILE and t.quoted_path.endswith("libstdc++6_1_amd64.deb")
    assert t.key() == "url:debian/20240101T000000Z/pool/main/g/gcc/libstdc++6_1_amd64.deb"
    for bad in (
        "/archive/ubuntu/20240101/x",
        "/archive/debian/now/x",
        "/archive/debian/20240101/a/../b",
    ):
        with pytest.raises(BadTarget):
            parse_archive_path(bad, ARCHIVES)


def test_mode_urls() -> None:
    assert (
        Mode.SNAPSHOT.upstream_url("http://snapshot.debian.org/archive/", "debian", "T", "p")
        == "http://snapshot.debian.org/archive/debian/T/p"
    )
    assert Mode.RECORD.upstream_url("http://example.com/", "debian", "T", "p") == (
        "http://example.com/debian/p"
    )


def test_release_and_packages_parsing() -> None:
    run = make_runs("debian", "bookworm", ["20240101T000000Z"])[0]
    inrelease = run.files["dists/bookworm/InRelease"]
    assert debindex.release_text(inrelease) == run.files["dists/bookworm/Release"].decode()
    entries = debindex.parse_release(inrelease, "bookworm")
    xz = "dists/bookworm/main/binary-amd64/Packages.xz"
    assert entries[xz] == (len(run.files[xz]), hashlib.sha256(run.files[xz]).hexdigest())
    pkgs = debindex.parse_packages(run.files["dists/bookworm/main/binary-amd64/Packages"].decode())
    for path, (size, sha) in pkgs.items():
        assert size == len(run.files[path]) and sha == hashlib.sha256(run.files[path]).hexdigest()
    assert len(pkgs) == 6


def test_dash_escaped_clearsign() -> None:
    body = b"Origin: x\n- dashed\nSHA256:\n"
    signed = fake_clearsign(body).replace(b"\n- dashed", b"\n- - dashed")
    assert debindex.release_text(signed) == body.decode()


def test_sources_parsing(tmp_path) -> None:  # type: ignore[no-untyped-def]
    text = (
        "Package: hello\nDirectory: pool/main/h/hello\nChecksums-Sha256:\n"
        f" {'b' * 64} 1234 hello_1.dsc\n {'c' * 64} 99 hello_1.tar.xz\n"
    )
    path = tmp_path / "Sources.gz"
    path.write_bytes(gzip.compress(text.encode()))
    assert debindex.parse_index_file(path, "Sources", ".gz") == {
        "pool/main/h/hello/hello_1.dsc": (1234, "b" * 64),
        "pool/main/h/hello/hello_1.tar.xz": (99, "c" * 64),
    }


def test_hasher_catches_truncation_corruption_and_by_hash() -> None:
    data = b"x" * 1000
    good = Expect(size=1000, sha256=hashlib.sha256(data).hexdigest())
    h = Hasher(good, 1000)
    h.update(data)
    assert h.finish().sha1 == hashlib.sha1(data).hexdigest()
    h = Hasher(good, 1000)
    h.update(data[:500])
    with pytest.raises(VerifyError, match="truncated"):
        h.finish()
    h = Hasher(good, 1000)
    h.update(b"y" * 1000)
    with pytest.raises(VerifyError, match="SHA-256"):
        h.finish()
    with pytest.raises(VerifyError):
        Hasher(good, 999)
    h = Hasher(Expect(by_hash=("MD5Sum", hashlib.md5(data).hexdigest())), None)
    h.update(data)
    h.finish()
    h = Hasher(Expect(sha1="0" * 40), None)
    h.update(data)
    with pytest.raises(VerifyError, match="SHA-1"):
        h.finish()


def test_http_decisions() -> None:
    assert (
        httpsem.content_type("pool/main/a/a_1_all.deb") == "application/vnd.debian.binary-package"
    )
    assert httpsem.content_type("dists/x/InRelease").startswith("text/plain")
    assert httpsem.content_type("dists/x/main/binary-amd64/Packages.xz") == "application/x-xz"
    t = 1704067200.0
    assert httpsem.not_modified(httpsem.http_date(t), t)
    assert not httpsem.not_modified(httpsem.http_date(t - 10), t)
    assert not httpsem.not_modified("garbage", t)
    assert httpsem.strong_etag_match('"a-b"', '"a-b"')
    assert not httpsem.strong_etag_match('W/"a-b"', '"a-b"')


def test_retry_after_forms() -> None:
    now = time.time()
    assert parse_retry_after("7", now) == 7.0
    assert 59 <= (parse_retry_after(httpsem.http_date(now + 60), now) or 0) <= 61
    assert parse_retry_after("soon", now) is None


def test_config_parsers() -> None:
    assert parse_size("10G") == 10 << 30 and parse_size("512MiB") == 512 << 20
    assert parse_size("1000") == 1000
    assert parse_listen("127.0.0.1:0") == ("127.0.0.1", 0)
    assert parse_listen(":3142") == ("0.0.0.0", 3142)
    assert parse_listen("[::1]:80") == ("::1", 80)
    with pytest.raises(ValueError):
        parse_listen("host:port")


def test_metrics_text_format() -> None:
    m = Metrics()
    m.inc("upstream_requests_total", status="200")
    m.inc("upstream_requests_total", status="429")
    m.inc("upstream_bytes_total", 1234)
    text = m.render()
    assert 'reprobase_proxy_upstream_requests_total{status="429"} 1\n' in text
    assert "reprobase_proxy_upstream_bytes_total 1234\n" in text
    assert "# TYPE reprobase_proxy_cache_bytes gauge\n" in text


def test_listing_candidates_for_pool_files() -> None:
    from cache_proxy.routing import listing_candidates

    release = [
        f"dists/{suite}/{comp}/{d}/{name}"
        for suite in ("bookworm", "bookworm-updates")
        for comp in ("main", "contrib")
        for d in (
            "binary-amd64",
            "binary-arm64",
            "binary-all",
            "source",
            "debian-installer/binary-amd64",
        )
        for name in (
            ("Sources", "Sources.xz", "Sources.gz")
            if d == "source"
            else ("Packages", "Packages.gz", "Packages.xz")
        )
    ] + ["dists/bookworm/main/i18n/Translation-en.bz2", "dists/bookworm/Contents-amd64.gz"]
    assert listing_candidates("pool/main/h/hello/hello_2.10-3_arm64.deb", release) == [
        "dists/bookworm/main/binary-arm64/Packages.xz",
        "dists/bookworm-updates/main/binary-arm64/Packages.xz",
    ]
    assert listing_candidates("pool/contrib/x/x/x_1_all.deb", release)[:2] == [
        "dists/bookworm/contrib/binary-all/Packages.xz",
        "dists/bookworm/contrib/binary-amd64/Packages.xz",
    ]
    assert listing_candidates("pool/main/d/d-i/d-i_1_amd64.udeb", release) == [
        "dists/bookworm/main/debian-installer/binary-amd64/Packages.xz",
        "dists/bookworm-updates/main/debian-installer/binary-amd64/Packages.xz",
    ]
    assert listing_candidates("pool/main/h/hello/hello_2.10.orig.tar.gz", release) == [
        "dists/bookworm/main/source/Sources.xz",
        "dists/bookworm-updates/main/source/Sources.xz",
    ]
    assert listing_candidates("pool/main/h/hello/hello_2.10_riscv64.deb", release) == []
    assert listing_candidates("README", release) == []
    assert listing_candidates("pool/main/h/hello/hello_2.10_amd64.deb", []) == []


def test_file_door_paths() -> None:
    from cache_proxy.routing import Kind, file_url, parse_file_path

    sha = "0123456789abcdef0123456789abcdef01234567"
    target = parse_file_path(f"/file/{sha}")
    assert target is not None and target.kind is Kind.SHA1
    assert target.request_path == f"/file/{sha}" and target.key() == f"sha1:{sha}"
    assert parse_file_path(f"/file/{sha.upper()}") is None
    assert parse_file_path(f"/file/{sha}/x") is None
    assert parse_file_path("/archive/debian/20240101/x") is None
    assert file_url("http://snapshot.debian.org/archive/", sha) == (
        f"http://snapshot.debian.org/file/{sha}"
    )
    assert file_url("http://mirror.invalid/debian/", sha) is None
