"""The history store: every nightly and re-verification result, in one sqlite file.

One row per image x architecture x run. Package lists are stored once per distinct
set (keyed by the SHA-256 of their canonical JSON), so a year of nightlies whose
package set rarely changes stays small. The file runs in WAL mode so that
`reprobase report` can read while a nightly writes.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import urllib.parse
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Final

from factory.common.canonical import canonical_json, sha256_digest
from factory.common.errors import UserError
from factory.report import trustlog
from factory.report.trustlog import AttestationRecord, GateRecord

# 2: results.packages_from (where the packages came from; NULL in rows written by 1)
# 3: the attestations and gates tables (factory.report.trustlog) and kind "watch"
# 4: results.base_digest and kinds "derived", "derived-reverify" (factory.nightly.derived)
SCHEMA_VERSION: Final = 4

# "watch": a rebuild of an image built elsewhere (the nightly's watch list); its image
# is the reference as configured.
# "derived" / "derived-reverify": a derived image's nightly build and its re-verification
# (image = its NAME:TAG, base_digest = the digest of the base it was built FROM).
KINDS: Final = ("nightly", "reverify", "watch", "derived", "derived-reverify")
# "unchanged": a no-change night, the new date tag points at the last published digest.
VERDICTS: Final = ("reproducible", "differs", "error", "unchanged", "not-verified")
PUBLISHABLE: Final = ("reproducible", "unchanged")

Package = tuple[str, str, str]


@dataclass(frozen=True)
class ResultRecord:
    run_id: str  # e.g. "20261129T000000Z-1a2b3c4d"
    kind: str  # "nightly" | "reverify" | "watch"
    image: str  # "debian:bookworm"
    arch: str  # "amd64", "arm64" (one row per image x arch)
    snapshot: str  # "20261129T000000Z"
    verdict: str  # one of VERDICTS
    index_digest: str | None  # build A's image index digest
    manifest_digest: str | None  # build A's per-arch manifest digest
    digest_b: str | None  # build B's manifest digest (None if not built)
    size: int | None  # compressed layer bytes
    uncompressed_size: int | None
    packages_digest: str | None
    packages: tuple[Package, ...]  # (name, version, arch), sorted
    published: tuple[str, ...]  # refs/tags written
    upstream_bytes: int | None
    durations: dict[str, float]  # stage -> seconds
    started: str  # ISO 8601 UTC "2026-11-29T00:05:00Z"
    finished: str
    message: str = ""  # diff summary or error line
    # factory.source.origin.Origin's value: "snapshot.debian.org", "recorded-mirror",
    # "mirror"; None when unknown (rows from before history schema 2, errors before a build)
    packages_from: str | None = None
    base_digest: str | None = None  # derived images only (schema 4)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, not {self.kind!r}")
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {', '.join(VERDICTS)}, not {self.verdict!r}")
        # Callers may hand lists; store the documented shape (sorted tuples) so that
        # equality after a round trip does not depend on how the record was made.
        object.__setattr__(self, "packages", tuple(sorted(tuple(p) for p in self.packages)))
        object.__setattr__(self, "published", tuple(self.published))
        object.__setattr__(self, "durations", dict(self.durations))

    @property
    def publishable(self) -> bool:
        return self.verdict in PUBLISHABLE

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (lists for tuples); the shape of results.json rows."""
        return {
            "run_id": self.run_id,
            "kind": self.kind,
            "image": self.image,
            "arch": self.arch,
            "snapshot": self.snapshot,
            "verdict": self.verdict,
            "index_digest": self.index_digest,
            "manifest_digest": self.manifest_digest,
            "digest_b": self.digest_b,
            "size": self.size,
            "uncompressed_size": self.uncompressed_size,
            "packages_digest": self.packages_digest,
            "packages": [list(p) for p in self.packages],
            "published": list(self.published),
            "upstream_bytes": self.upstream_bytes,
            "durations": dict(self.durations),
            "started": self.started,
            "finished": self.finished,
            "message": self.message,
            "packages_from": self.packages_from,
        } | ({"base_digest": self.base_digest} if self.base_digest is not None else {})


def package_set_key(packages: Sequence[Package]) -> str:
    """The dedup key of a package list (same recipe as factory.rootfs.packages.packages_digest)."""
    return sha256_digest(canonical_json([list(p) for p in packages]))


_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS package_sets (
    key TEXT PRIMARY KEY,
    packages TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS results (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    image TEXT NOT NULL,
    arch TEXT NOT NULL,
    snapshot TEXT NOT NULL,
    verdict TEXT NOT NULL,
    index_digest TEXT,
    manifest_digest TEXT,
    digest_b TEXT,
    size INTEGER,
    uncompressed_size INTEGER,
    packages_digest TEXT,
    package_set TEXT REFERENCES package_sets(key),
    published TEXT NOT NULL,
    upstream_bytes INTEGER,
    durations TEXT NOT NULL,
    started TEXT NOT NULL,
    finished TEXT NOT NULL,
    message TEXT NOT NULL,
    packages_from TEXT,
    base_digest TEXT
);
CREATE INDEX IF NOT EXISTS results_image_arch ON results(image, arch, started);
"""

_COLUMNS: Final = (
    "run_id, kind, image, arch, snapshot, verdict, index_digest, manifest_digest, digest_b, "
    "size, uncompressed_size, packages_digest, package_set, published, upstream_bytes, "
    "durations, started, finished, message, packages_from, base_digest"
)


def _refuse_foreign(path: Path) -> None:
    """A file that is not SQLite at all is refused before sqlite3 touches it."""
    try:
        with path.open("rb") as f:
            head = f.read(16)
    except FileNotFoundError:
        return
    except IsADirectoryError:
        raise UserError(f"history {path} is a directory", hint="pass the sqlite file") from None
    except OSError as exc:
        raise UserError(f"cannot read history {path}: {exc.strerror or exc}") from None
    if head and head != b"SQLite format 3\x00":
        raise UserError(
            f"{path} is not a reprobase history (not an SQLite file)",
            hint="pass the history the nightly writes, e.g. --history history.sqlite",
        )


def check_history_file(path: Path) -> None:
    """Refuse, without changing it, a file that is not a reprobase history (a history
    that does not exist yet is fine: the nightly creates it)."""
    _refuse_foreign(path)
    if path.is_file() and path.stat().st_size:
        with History(path, readonly=True):
            pass


class History:
    """The sqlite history file; also a context manager that closes it."""

    def __init__(self, path: Path, *, readonly: bool = False) -> None:
        """readonly: only read (the report); the file is never created or changed."""
        self.path = path
        self._lock = threading.Lock()
        _refuse_foreign(path)
        try:
            if readonly:
                uri = f"file:{urllib.parse.quote(str(path.absolute()))}?mode=ro"
                self._db = sqlite3.connect(uri, uri=True, timeout=30.0, check_same_thread=False)
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                # One connection, usable from worker threads (the nightly may record from
                # an executor); the lock keeps each transaction whole.
                self._db = sqlite3.connect(path, timeout=30.0, check_same_thread=False)
        except (OSError, sqlite3.Error) as exc:
            raise UserError(
                f"cannot open history {path}: {exc}",
                hint="pass --history FILE in a writable directory",
            ) from exc
        try:
            self._check_tables()
            if not readonly:
                self._setup()
            self._select = _select_columns(self._db)
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise UserError(
                f"{path} is not a reprobase history: {exc}", hint="pass another --history FILE"
            ) from exc

    def _check_tables(self) -> None:
        """An SQLite file with tables but not ours is someone else's: never add to it."""
        rows = self._db.execute("SELECT name FROM sqlite_master WHERE type='table'").fetchall()
        tables = {r[0] for r in rows}
        if tables and not {"schema_version", "results"} <= tables:
            self._db.close()
            raise UserError(
                f"{self.path} is an SQLite file but not a reprobase history "
                f"(its tables: {', '.join(sorted(tables)[:5])})",
                hint="pass the history the nightly writes, e.g. --history history.sqlite",
            )

    def _setup(self) -> None:
        db = self._db
        # WAL: a report may read while the nightly writes; NORMAL is durable enough in WAL.
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA foreign_keys=ON")
        with db:
            db.executescript(_SCHEMA + trustlog.SCHEMA)
            row = db.execute("SELECT max(version) FROM schema_version").fetchone()
            if row[0] is None:
                db.execute("INSERT INTO schema_version(version) VALUES (?)", (SCHEMA_VERSION,))
            elif row[0] < SCHEMA_VERSION:
                self._migrate(row[0])
            elif row[0] > SCHEMA_VERSION:
                raise UserError(
                    f"history {self.path} has schema version {row[0]}, newer than this "
                    f"reprobase understands ({SCHEMA_VERSION})",
                    hint="upgrade reprobase",
                )

    def _migrate(self, version: int) -> None:
        """Bring an older history up to SCHEMA_VERSION, in the caller's transaction."""
        if version < 2:
            self._db.execute("ALTER TABLE results ADD COLUMN packages_from TEXT")
        # < 3: the trust tables were made by _setup's CREATE TABLE IF NOT EXISTS already
        have = {row[1] for row in self._db.execute("PRAGMA table_info(results)")}
        if version < 4 and "base_digest" not in have:
            self._db.execute("ALTER TABLE results ADD COLUMN base_digest TEXT")
        self._db.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION,))

    def add(self, rec: ResultRecord) -> None:
        key = package_set_key(rec.packages) if rec.packages else None
        with self._lock, self._db:
            if key is not None:
                self._db.execute(
                    "INSERT OR IGNORE INTO package_sets(key, packages) VALUES (?, ?)",
                    (key, canonical_json([list(p) for p in rec.packages]).decode()),
                )
            self._db.execute(
                f"INSERT INTO results({_COLUMNS}) VALUES ({', '.join('?' * 21)})",
                (
                    rec.run_id,
                    rec.kind,
                    rec.image,
                    rec.arch,
                    rec.snapshot,
                    rec.verdict,
                    rec.index_digest,
                    rec.manifest_digest,
                    rec.digest_b,
                    rec.size,
                    rec.uncompressed_size,
                    rec.packages_digest,
                    key,
                    canonical_json(list(rec.published)).decode(),
                    rec.upstream_bytes,
                    canonical_json(rec.durations).decode(),
                    rec.started,
                    rec.finished,
                    rec.message,
                    rec.packages_from,
                    rec.base_digest,
                ),
            )

    def records(
        self, image: str | None = None, arch: str | None = None, limit: int | None = None
    ) -> list[ResultRecord]:
        """Records, newest first (by start time, then insertion order)."""
        where: list[str] = []
        params: list[Any] = []
        if image is not None:
            where.append("image = ?")
            params.append(image)
        if arch is not None:
            where.append("arch = ?")
            params.append(arch)
        sql = f"SELECT {self._select} FROM results"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY started DESC, id DESC"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        with self._lock:
            return self._load(self._db.execute(sql, params).fetchall())

    def last_published(self, image: str, arch: str) -> ResultRecord | None:
        """The newest publishable record that actually wrote a ref, or None."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {self._select} FROM results WHERE image = ? AND arch = ? "
                f"AND verdict IN ({', '.join('?' * len(PUBLISHABLE))}) AND published != '[]' "
                "ORDER BY started DESC, id DESC LIMIT 1",
                (image, arch, *PUBLISHABLE),
            ).fetchall()
            found = self._load(rows)
        return found[0] if found else None

    def add_attestations(self, recs: list[AttestationRecord]) -> int:
        """Artifacts seen attached to an image; returns how many were new."""
        with self._lock, self._db:
            return trustlog.add_attestations(self._db, recs)

    def attestations(self, image: str | None = None) -> list[AttestationRecord]:
        with self._lock:
            return trustlog.attestations(self._db, image)

    def add_gate(self, gate: GateRecord) -> None:
        with self._lock, self._db:
            trustlog.add_gate(self._db, gate)

    def gates(self, image: str | None = None) -> list[GateRecord]:
        """Quorum decisions, newest first."""
        with self._lock:
            return trustlog.gates(self._db, image)

    def images(self) -> list[str]:
        with self._lock:
            rows = self._db.execute("SELECT DISTINCT image FROM results ORDER BY image").fetchall()
        return [r[0] for r in rows]

    def stored_package_sets(self) -> int:
        """How many distinct package lists are stored (for tests and `report --json`)."""
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM package_sets").fetchone()[0])

    def _load(self, rows: Iterable[tuple[Any, ...]]) -> list[ResultRecord]:
        rows = list(rows)
        keys = sorted({r[12] for r in rows if r[12] is not None})
        sets: dict[str, tuple[Package, ...]] = {}
        for i in range(0, len(keys), 500):  # stay under sqlite's bound-parameter limit
            chunk = keys[i : i + 500]
            marks = ", ".join("?" * len(chunk))
            sql = f"SELECT key, packages FROM package_sets WHERE key IN ({marks})"
            for key, text in self._db.execute(sql, chunk):
                sets[key] = tuple((p[0], p[1], p[2]) for p in json.loads(text))
        return [_record(r, sets.get(r[12], ()) if r[12] else ()) for r in rows]

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> History:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _select_columns(db: sqlite3.Connection) -> str:
    """The columns to read: an older history opened read-only (the report), and so not
    migrated, lacks the later columns (packages_from, base_digest): they read as NULL."""
    have = {row[1] for row in db.execute("PRAGMA table_info(results)")}
    cols = _COLUMNS
    for late in ("packages_from", "base_digest"):  # schema 2, schema 4
        if have and late not in have:
            cols = cols.replace(f", {late}", ", NULL")
    return cols


def _record(r: tuple[Any, ...], packages: tuple[Package, ...]) -> ResultRecord:
    return ResultRecord(
        run_id=r[0],
        kind=r[1],
        image=r[2],
        arch=r[3],
        snapshot=r[4],
        verdict=r[5],
        index_digest=r[6],
        manifest_digest=r[7],
        digest_b=r[8],
        size=r[9],
        uncompressed_size=r[10],
        packages_digest=r[11],
        packages=packages,
        published=tuple(json.loads(r[13])),
        upstream_bytes=r[14],
        durations={str(k): float(v) for k, v in json.loads(r[15]).items()},
        started=r[16],
        finished=r[17],
        message=r[18],
        packages_from=r[19],
        base_digest=r[20],
    )


__all__ = ["KINDS", "PUBLISHABLE", "VERDICTS", "History", "Package", "ResultRecord"]
