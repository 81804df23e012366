"""The cache's parts on their own: lookup, flights, index learning, eviction, ranges, paths.

Pure logic without any server; the parts that keep state run on a real sqlite
index and blob store in a temporary directory. One real-server test at the end
checks a large single range goes out whole and right through the sendfile thread.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import make_mocked_request

from cache_proxy.blobresponse import single_range
from cache_proxy.config import ProxyConfig
from cache_proxy.eviction import Evictor
from cache_proxy.fetch import Flights, Job
from cache_proxy.flight import Flight
from cache_proxy.index import AccessTimes, AsyncIndex, BlobRow, Index
from cache_proxy.learning import IndexLearner, index_role
from cache_proxy.lookup import Lookup, RowMemo, Runs
from cache_proxy.metrics import Metrics
from cache_proxy.paths import unsafe_path_reason
from cache_proxy.routing import Target
from cache_proxy.store import BlobStore
from cache_proxy.tasks import Tasks
from cache_proxy.upstream import UpstreamError
from cache_proxy.verify import Expect
from tests.fakesnap import FakeSnapshot, make_runs
from tests.proxy_fixtures import *  # noqa: F403
from tests.proxy_fixtures import BIG, RUNS, Proxy

TS = "20240101T000000Z"


def row(n: int, size: int = 10) -> BlobRow:
    return BlobRow(f"{n:064x}", size, f"{n:040x}", 0.0, "application/octet-stream")


# ----------------------------------------------------------------- memory
def test_row_memo_is_a_bounded_lru_that_forgets_by_blob() -> None:
    memo = RowMemo(2)
    memo.put("a", row(1))
    memo.put("b", row(2))
    memo.put("a", row(1))  # used again: now the newest
    memo.put("c", row(3))
    assert memo.get("b") is None and memo.get("a") == row(1) and len(memo) == 2
    memo.put("d", row(1))
    memo.forget(row(1).sha256)  # every key naming the blob goes
    assert memo.get("a") is None and memo.get("d") is None and memo.get("c") == row(3)
    memo.clear()
    assert len(memo) == 0


def test_runs_expire_and_only_immutable_ones_are_forever() -> None:
    runs = Runs()
    runs.set("debian", "T1", "R1", None)
    runs.set("debian", "T2", "R2", 100.0)
    assert runs.get("debian", "T1", 1e12) == "R1" and runs.forever("debian", "T1") == "R1"
    assert runs.get("debian", "T2", 99.0) == "R2" and runs.get("debian", "T2", 100.0) is None
    assert runs.forever("debian", "T2") is None and runs.get("other", "T1", 0.0) is None


def test_index_role_names_what_a_file_teaches() -> None:
    def role(path: str) -> tuple[str, str] | None:
        return index_role(Target("debian", TS, path), path)

    assert role("dists/bookworm/InRelease") == ("Release", "bookworm")
    assert role("dists/bookworm/Release") == ("Release", "bookworm")
    assert role("dists/bookworm/Release.gpg") is None
    assert role("dists/bookworm/main/binary-amd64/Packages.xz") == ("Packages", ".xz")
    assert role("pool/main/p/pkg0/pkg0_1_all.deb") is None
    assert index_role(Target.by_sha1("0" * 40), "x") is None
    by_hash = Target("debian", TS, "dists/bookworm/main/binary-amd64/by-hash/SHA256/" + "a" * 64)
    logical = "dists/bookworm/main/binary-amd64/Packages"
    assert index_role(by_hash, logical) == ("Packages", "")


# ------------------------------------------------------------------ tasks
async def test_tasks_are_held_and_cancelled_together() -> None:
    tasks = Tasks()
    ended: list[str] = []

    async def forever() -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            ended.append("x")

    for _ in range(3):
        tasks.spawn(forever())
    await asyncio.sleep(0)
    assert len(tasks) == 3
    await tasks.cancel_all()
    assert ended == ["x"] * 3 and len(tasks) == 0


# ---------------------------------------------------------------- flights
async def test_flights_single_flight_recent_and_failures() -> None:
    metrics = Metrics()
    tasks = Tasks()
    flights = Flights(metrics, tasks)
    gate = asyncio.Event()

    async def body(f: Flight) -> None:
        await gate.wait()
        f.finish(row(1), from_attempt=False)

    first = flights.start("k", body)
    second = flights.start("k", body)
    assert isinstance(first, Flight) and second is first and first.waiters == 2
    assert metrics.get("misses_total") == 1 and metrics.get("coalesced_total") == 1
    gate.set()
    assert await first.done == row(1)
    await asyncio.sleep(0)
    assert "k" not in flights.active
    assert flights.start("k", body) == row(1)  # ended meanwhile: its result, a hit
    flights.recent.forget(row(1).sha256)

    async def broken(f: Flight) -> None:
        raise UpstreamError("no", 502)

    failed = flights.start("bad", broken)
    assert isinstance(failed, Flight)
    with pytest.raises(UpstreamError):
        await failed.done

    async def stuck(f: Flight) -> None:
        await asyncio.sleep(3600)

    stopped = flights.start("stuck", stuck)
    assert isinstance(stopped, Flight)
    await asyncio.sleep(0)
    await tasks.cancel_all()
    with pytest.raises(UpstreamError, match="shutting down"):
        await stopped.done


def test_job_key_is_the_file_under_its_run() -> None:
    target = Target("debian", "20240101T120000Z", "pool/x.deb")
    assert Job(target, None, Expect(), False).key == target.key()
    assert Job(target, TS, Expect(), False).key == target.key(TS)
    sha1 = Target.by_sha1("0" * 40)
    assert Job(sha1, "", Expect(), False).key == sha1.key()


# ------------------------------------------------- lookup and learning, on sqlite
@dataclass
class Parts:
    config: ProxyConfig
    metrics: Metrics
    index: AsyncIndex
    store: BlobStore
    tasks: Tasks
    learner: IndexLearner
    lookup: Lookup

    async def put(self, data: bytes, keys: list[str] = []) -> BlobRow:  # noqa: B006
        sha = hashlib.sha256(data).hexdigest()
        tmp = self.store.new_tmp()
        tmp.write_bytes(data)
        self.store.commit(tmp, sha)
        blob = BlobRow(sha, len(data), hashlib.sha1(data).hexdigest(), 0.0, "text/plain")
        await self.index.call(Index.add_blob, blob, keys, None, time.time())
        return blob


@pytest.fixture
async def parts(tmp_path: Path) -> AsyncIterator[Parts]:
    config = ProxyConfig(cache_dir=tmp_path, volatile_window=timedelta(days=1))
    metrics = Metrics()
    store = BlobStore(tmp_path)
    store.open()
    index = AsyncIndex(tmp_path / "index.sqlite")
    await index.open()
    tasks = Tasks()
    atimes = AccessTimes(index, metrics)
    learner = IndexLearner(index, store, tasks)
    lookup = Lookup(config, metrics, index, learner, atimes)
    yield Parts(config, metrics, index, store, tasks, learner, lookup)
    await tasks.cancel_all()
    await index.close()


async def test_lookup_by_alias_by_hash_and_memory(parts: Parts) -> None:
    target = Target("debian", TS, "pool/main/a.deb")
    assert await parts.lookup.cached(target, TS) is None
    blob = await parts.put(b"a deb", [target.key(TS)])
    assert await parts.lookup.cached(target, TS) == blob  # step 1: its alias
    assert parts.lookup.lookup_hot(target) is None  # the run is not known to memory yet
    parts.lookup.runs.set("debian", TS, TS, None)
    assert parts.lookup.lookup_hot(target) == blob  # remembered: a past run is immutable
    other = await parts.put(b"an index")
    by_hash = Target("debian", TS, f"dists/bookworm/main/by-hash/SHA256/{other.sha256}")
    assert await parts.lookup.cached(by_hash, TS) == other  # step 2, then aliased:
    assert await parts.index.call(Index.alias, by_hash.key(TS), time.time()) == other
    by_sha1 = Target("debian", TS, f"dists/bookworm/main/by-hash/SHA1/{other.sha1}")
    assert await parts.lookup.cached(by_sha1, TS) == other
    assert await parts.lookup.hit(target, TS) == blob
    assert parts.metrics.get("hits_total") == 1


async def test_lookup_remembers_nothing_volatile(parts: Parts) -> None:
    now = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    target = Target("debian", now, "pool/main/a.deb")
    blob = await parts.put(b"fresh", [target.key(now)])
    assert parts.lookup.volatile(now) and parts.lookup.expires(now) is not None
    assert await parts.lookup.cached(target, now) == blob
    assert len(parts.lookup.hot) == 0
    assert parts.lookup.expires(TS) is None


async def test_learner_links_release_then_packages_and_lookup_finds_files(parts: Parts) -> None:
    run = make_runs("debian", "bookworm", [TS])[0]
    release_target = Target("debian", TS, "dists/bookworm/InRelease")
    release = await parts.put(run.files["dists/bookworm/InRelease"], [release_target.key(TS)])
    await parts.learner.note(release_target, TS, release)  # a Release: parsed before return
    xz = "dists/bookworm/main/binary-amd64/Packages.xz"
    assert await parts.learner.expectation("debian", TS, xz) == (
        len(run.files[xz]),
        hashlib.sha256(run.files[xz]).hexdigest(),
    )
    assert xz in await parts.learner.release_listing("debian", TS)
    packages_target = Target("debian", TS, "dists/bookworm/main/binary-amd64/Packages")
    packages = await parts.put(run.files[packages_target.path])
    # Step 3: the Release lists it, so it is found under its path without an alias.
    assert await parts.lookup.cached(packages_target, TS) == packages
    await parts.learner.note(packages_target, TS, packages)  # parsed in the background
    pool = next(p for p in run.files if p.startswith("pool/"))
    deb = await parts.put(run.files[pool])
    assert await parts.lookup.cached(Target("debian", TS, pool), TS) == deb  # waits for it
    assert await parts.learner.listed(Target("debian", TS, pool), TS)


async def test_learner_forgets_an_unparsable_index(parts: Parts) -> None:
    target = Target("debian", TS, "dists/bookworm/main/binary-amd64/Packages.xz")
    junk = await parts.put(b"not xz at all")
    await parts.learner.note(target, TS, junk)
    await parts.learner.parsed("debian", TS)
    assert not parts.learner._linked  # tried again next time


# ---------------------------------------------------------------- eviction
async def test_eviction_keeps_pinned_blobs_and_reports(parts: Parts) -> None:
    config = ProxyConfig(cache_dir=parts.config.cache_dir, max_size=25)
    removed: list[str] = []
    passes: list[int] = []
    evictor = Evictor(
        config,
        parts.metrics,
        parts.index,
        parts.store,
        AccessTimes(parts.index, parts.metrics),
        removed.append,
        lambda: passes.append(1),
    )
    blobs = [await parts.put(bytes([n]) * 10) for n in range(3)]
    assert evictor.pin(blobs[0].sha256) is None  # served: it stays
    for b in blobs:
        evictor.added(b.size)
    await evictor.settled()
    assert evictor.size <= 25 and passes == [1]
    assert removed == [blobs[1].sha256]
    assert parts.store.path(blobs[0].sha256).exists()
    assert not parts.store.path(blobs[1].sha256).exists()
    assert evictor.busy(blobs[0].sha256) and not evictor.busy(blobs[2].sha256)
    evictor.unpin(blobs[0].sha256)
    assert not evictor.busy(blobs[0].sha256) and evictor.problems() == []
    assert parts.metrics.get("evictions_total") == 1


async def test_a_blob_being_deleted_cannot_be_pinned(parts: Parts) -> None:
    evictor = Evictor(
        parts.config,
        parts.metrics,
        parts.index,
        parts.store,
        AccessTimes(parts.index, parts.metrics),
        lambda sha: None,
        lambda: None,
    )
    blob = await parts.put(b"going")
    evictor.added(blob.size)
    dropping = asyncio.create_task(evictor.drop(blob.sha256, blob.size))
    await asyncio.sleep(0)
    deletion = evictor.pin(blob.sha256)
    assert deletion is not None  # await it, then look the file up again
    await deletion
    await dropping
    assert evictor.size == 0 and not evictor.busy(blob.sha256)
    assert await parts.index.call(Index.blob, blob.sha256) is None


# ------------------------------------------------------------------ ranges
def _request(**headers: str) -> aiohttp.web.Request:
    return make_mocked_request("GET", "/", headers=headers)


def test_single_range_is_computed_as_file_response_does(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"x" * 1000)
    st = os.stat(path)

    def rng(value: str, **more: str) -> tuple[int, int] | None:
        return single_range(_request(Range=value, **more), st)

    assert rng("bytes=0-99") == (0, 100)
    assert rng("bytes=900-") == (900, 100)
    assert rng("bytes=-100") == (900, 100)
    assert rng("bytes=-5000") == (0, 1000)
    assert rng("bytes=100-99999") == (100, 900)
    assert rng("bytes=1000-") is None  # unsatisfiable: FileResponse's 416
    assert rng("bytes=5-1") is None and rng("bytes=abc") is None and rng("bytes=0-1,5-6") is None
    old = "Thu, 01 Jan 1970 00:00:00 GMT"
    new = "Fri, 31 Dec 9999 23:59:59 GMT"
    assert rng("bytes=0-9", **{"If-Range": old}) is None  # changed since: the whole file
    assert rng("bytes=0-9", **{"If-Range": new}) == (0, 10)


@pytest.fixture
def fake(big_fake: FakeSnapshot) -> FakeSnapshot:
    """Overrides the shared fixture, so ``make_proxy`` fronts the one with a 3 MiB file."""
    return big_fake


async def test_a_large_range_is_sent_whole_and_right(fake: FakeSnapshot, make_proxy) -> None:  # type: ignore[no-untyped-def]
    proxy: Proxy = await make_proxy()
    want = fake.runs["debian"][0].files[BIG]
    url = proxy.archive_url("debian", RUNS[0], BIG)
    async with aiohttp.ClientSession(auto_decompress=False) as http:
        async with http.get(url) as resp:
            assert await resp.read() == want
        for start in (0, 12345, len(want) - (1 << 20)):
            async with http.get(url, headers={"Range": f"bytes={start}-"}) as resp:
                body = await resp.read()
                assert resp.status == 206 and body == want[start:]
                assert resp.headers["Content-Range"] == f"bytes {start}-{len(want) - 1}/{len(want)}"
        async with http.head(url, headers={"Range": "bytes=10-"}) as resp:
            assert resp.status == 206 and await resp.read() == b""
            assert resp.headers["Content-Length"] == str(len(want) - 10)


# ------------------------------------------------------------------- paths
def test_unsafe_path_reason(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert unsafe_path_reason(Path("/")) == "it is the root directory"
    assert unsafe_path_reason(Path.home()) == "it is the home directory"
    assert unsafe_path_reason(Path(".")) == "it is the current directory"
    assert unsafe_path_reason(tmp_path.parent) == "it is a parent of the current directory"
    (tmp_path / "file").write_text("")
    assert (
        unsafe_path_reason(tmp_path / "file" / "a" / "b")
        == f"{tmp_path / 'file'} is not a directory"
    )
    assert unsafe_path_reason(Path("new/deeper/out")) is None  # created where tmp_path is
    assert unsafe_path_reason(tmp_path / "file") is None  # what is there is the caller's
    assert unsafe_path_reason(tmp_path / "x", probe=False) is None
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".reprobase-probe-")]


def test_blob_response_overrides_no_private_part_of_aiohttp() -> None:
    """aiohttp's private names change between minor releases (``_path`` did): ours
    must not override or depend on them, only extend the public API."""

    from cache_proxy.blobresponse import BlobResponse

    defined = {
        name
        for name, value in vars(BlobResponse).items()
        if callable(value) or isinstance(value, property | staticmethod | classmethod)
    }
    assert defined == {"__init__", "prepare"}  # both public, both call super()
    for name in set(vars(BlobResponse)) - {"_abc_impl"}:  # ABCMeta's own
        if name.startswith("_") and not name.startswith("__"):
            raise AssertionError(f"BlobResponse sets aiohttp-style private {name}")
    for module in ("app", "blobresponse", "workers"):
        source = (Path(__file__).parents[1] / "cache_proxy" / f"{module}.py").read_text("utf-8")
        for private in ("._path", "_sendfile_fallback", "._chunk_size", "aiohttp.http_writer"):
            assert private not in source, f"cache_proxy/{module}.py uses aiohttp's {private}"
