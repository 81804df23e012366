"""The sqlite history store: exact round trips, dedup of package lists, queries."""

from __future__ import annotations

import dataclasses
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from factory.common.errors import UserError
from factory.report.history import SCHEMA_VERSION, History, ResultRecord, package_set_key
from factory.rootfs.packages import packages_digest
from tests.report_fixtures import hostile_record, synthetic_records


def _newest_first(recs: list[ResultRecord]) -> list[ResultRecord]:
    # Stable sort on start time, later insertion first among equals.
    indexed = list(enumerate(recs))
    indexed.sort(key=lambda p: (p[1].started, p[0]), reverse=True)
    return [r for _, r in indexed]


@pytest.fixture
def filled(tmp_path: Path) -> History:
    h = History(tmp_path / "h" / "history.sqlite")
    for rec in synthetic_records():
        h.add(rec)
    return h


def test_round_trip_exact(filled: History) -> None:
    got = filled.records()
    assert got == _newest_first(synthetic_records())
    # Types survive, not just equality (tuples stay tuples, floats stay floats).
    first = got[0]
    assert isinstance(first.packages, tuple) and all(isinstance(p, tuple) for p in first.packages)
    assert isinstance(first.published, tuple)
    assert all(isinstance(v, float) for v in first.durations.values())


def test_round_trip_after_reopen(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite"
    with History(path) as h:
        h.add(hostile_record())
    with History(path) as h:
        assert h.records() == [hostile_record()]


def test_filters_and_limit(filled: History) -> None:
    arm = filled.records(image="debian:bookworm", arch="arm64")
    assert len(arm) == 10
    assert [r.snapshot for r in arm[:3]] == [
        "20261129T000000Z",
        "20261128T000000Z",
        "20261127T000000Z",
    ]
    assert {r.arch for r in filled.records(image="debian:bookworm")} == {"amd64", "arm64"}
    assert len(filled.records(limit=4)) == 4
    assert filled.records(image="debian:sid") == []
    slim = filled.records(arch="amd64", image="debian:trixie-slim", limit=1)
    assert [(r.image, r.snapshot) for r in slim] == [("debian:trixie-slim", "20261129T000000Z")]


def test_package_lists_deduplicated(tmp_path: Path) -> None:
    base = synthetic_records()[0]
    with History(tmp_path / "h.sqlite") as h:
        for i in range(25):
            h.add(
                dataclasses.replace(base, run_id=f"run-{i}", started=f"2026-11-29T01:{i:02d}:00Z")
            )
        assert h.stored_package_sets() == 1
        assert len(h.records()) == 25
        assert all(r.packages == base.packages for r in h.records())


def test_dedup_across_fixture(filled: History) -> None:
    distinct = {r.packages for r in synthetic_records() if r.packages}
    assert filled.stored_package_sets() == len(distinct) < len(synthetic_records())


def test_dedup_key_matches_factory_digest() -> None:
    rec = synthetic_records()[0]
    assert package_set_key(rec.packages) == packages_digest(list(rec.packages))


def test_a_year_of_nightlies_stays_small(tmp_path: Path) -> None:
    base = synthetic_records()[0]
    many = base.packages + tuple((f"lib{i:03d}", f"1.{i}-1", "amd64") for i in range(120))
    path = tmp_path / "year.sqlite"
    with History(path) as h:
        for day in range(365):
            h.add(dataclasses.replace(base, packages=many, run_id=f"r{day}", started=f"d{day:03d}"))
        assert h.stored_package_sets() == 1
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    # One stored package list (~5 kB) instead of 365 of them (~1.8 MB).
    assert path.stat().st_size < 400_000


def test_last_published(filled: History) -> None:
    amd = filled.last_published("debian:bookworm", "amd64")
    assert amd is not None
    # Night 9 (the 29th) is "unchanged" and published; the re-verify rows started later
    # but publish nothing.
    assert (amd.snapshot, amd.verdict, amd.kind) == ("20261129T000000Z", "unchanged", "nightly")
    assert filled.last_published("debian:sid", "amd64") is None


def test_last_published_skips_failures_and_unpublished(tmp_path: Path) -> None:
    recs = [r for r in synthetic_records() if r.image == "debian:bookworm" and r.arch == "arm64"]
    with History(tmp_path / "h.sqlite") as h:
        for r in recs[:5]:  # nights 0..4; night 4 differs on arm64
            h.add(r)
        got = h.last_published("debian:bookworm", "arm64")
        assert got is not None and got.snapshot == "20261123T000000Z"
        h.add(dataclasses.replace(recs[5], published=(), started="2026-12-01T00:00:00Z"))
        got = h.last_published("debian:bookworm", "arm64")
        assert got is not None and got.snapshot == "20261123T000000Z"


def test_images_sorted(filled: History) -> None:
    filled.add(hostile_record())
    assert filled.images() == [
        "debian:bookworm",
        "debian:trixie-slim",
        "evil:<script>alert('x')</script>",
    ]


def test_wal_and_schema_version(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite"
    History(path).close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
    History(path).close()  # reopening does not add a second version row
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]


def test_newer_schema_refused(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite"
    History(path).close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE schema_version SET version = 99")
    with pytest.raises(UserError, match="schema version 99") as exc:
        History(path)
    assert exc.value.hint == "upgrade reprobase"


def test_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite"
    path.write_bytes(b"this is not sqlite, just some text that is long enough" * 40)
    with pytest.raises(UserError, match="is not a reprobase history"):
        History(path)


def test_record_validation() -> None:
    rec = synthetic_records()[0]
    with pytest.raises(ValueError, match="verdict must be one of"):
        dataclasses.replace(rec, verdict="green")
    with pytest.raises(ValueError, match="kind must be one of"):
        dataclasses.replace(rec, kind="weekly")
    unsorted = dataclasses.replace(rec, packages=tuple(reversed(rec.packages)))
    assert unsorted.packages == rec.packages


def test_to_json_shape() -> None:
    rec = hostile_record()
    j = rec.to_json()
    assert j["packages"] == [["<svg onload=alert(1)>", "1.0&amp;", "amd64"]]
    assert j["published"] == ["javascript:alert(1)"]
    # base_digest only on derived images' rows (results.json of base images unchanged)
    assert set(j) == {f.name for f in dataclasses.fields(ResultRecord)} - {"base_digest"}


def test_add_from_worker_threads(tmp_path: Path) -> None:
    base = synthetic_records()[0]
    with History(tmp_path / "h.sqlite") as h:

        def add_many(worker: int) -> None:
            for i in range(25):
                h.add(dataclasses.replace(base, run_id=f"w{worker}-{i}"))

        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(add_many, range(4)))
        assert len(h.records()) == 100
        assert h.stored_package_sets() == 1


def test_reader_and_writer_on_one_file(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite"
    recs = synthetic_records()
    with History(path) as writer, History(path) as reader:
        writer.add(recs[0])
        assert reader.records() == [recs[0]]
        writer.add(recs[1])
        assert len(reader.records()) == 2


def test_schema_1_history_is_read_and_migrated(tmp_path: Path) -> None:
    """A history written before packages_from existed: the report reads it read-only
    (unknown origin), the next nightly migrates it in place, keeping every row."""
    path = tmp_path / "h.sqlite"
    old = synthetic_records()[:3]
    with History(path) as h:
        for rec in old:
            h.add(rec)
    with sqlite3.connect(path) as db:  # what schema 1 looked like
        db.execute("ALTER TABLE results DROP COLUMN packages_from")
        db.execute("UPDATE schema_version SET version = 1")
    with History(path, readonly=True) as h:
        assert [r.packages_from for r in h.records()] == [None] * 3
    with sqlite3.connect(path) as db:  # read-only really changed nothing
        assert db.execute("SELECT version FROM schema_version").fetchall() == [(1,)]
    new = dataclasses.replace(old[0], run_id="later", packages_from="recorded-mirror")
    with History(path) as h:
        h.add(new)
        got = {r.run_id: r.packages_from for r in h.records()}
    assert got == {**{r.run_id: None for r in old}, "later": "recorded-mirror"}
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
