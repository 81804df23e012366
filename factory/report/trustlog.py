"""What the history keeps about trust (schema 3): attestations seen and quorum gates.

Two tables beside `results`:

- `attestations`: every artifact the nightly found attached to an image it published
  or watches (SBOMs, provenance, signed rebuild statements), one row per image digest x
  artifact x signer, recorded the first night it was seen (a year of nights that see the
  same artifacts again adds nothing).
- `gates`: each night's quorum decision about a candidate image (factory.nightly.quorumgate):
  which trusted keys attest an identical rebuild, which are missing or disagree, and
  whether the moving tag was moved.

A history written before schema 3 has neither table; read-only (the report) it reads as
empty, and the next nightly creates them (CREATE TABLE IF NOT EXISTS).
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any, Final

from factory.common.canonical import canonical_json

SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS attestations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL,
    image TEXT NOT NULL,
    index_digest TEXT NOT NULL,
    kind TEXT NOT NULL,
    platform TEXT,
    artifact TEXT NOT NULL,
    signer TEXT,
    keyid TEXT,
    outcome TEXT,
    checked INTEGER NOT NULL,
    rebuilt_on TEXT,
    seen TEXT NOT NULL,
    UNIQUE(index_digest, artifact, keyid)
);
CREATE INDEX IF NOT EXISTS attestations_image ON attestations(image, index_digest);
CREATE TABLE IF NOT EXISTS gates (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL,
    image TEXT NOT NULL,
    index_digest TEXT NOT NULL,
    snapshot TEXT NOT NULL,
    required INTEGER NOT NULL,
    passed INTEGER NOT NULL,
    identical TEXT NOT NULL,
    disagreeing TEXT NOT NULL,
    missing TEXT NOT NULL,
    promoted TEXT NOT NULL,
    message TEXT NOT NULL,
    decided TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class AttestationRecord:
    run_id: str  # the night that first saw it
    image: str  # debian:bookworm, or a watched reference
    index_digest: str  # the image the artifact refers to
    kind: str  # sbom-spdx, sbom-cyclonedx, provenance, rebuild, or the artifact type
    platform: str | None  # linux/amd64 for an SBOM
    artifact: str  # the artifact manifest's digest
    signer: str | None  # a known key's name (trust dir, or the nightly's own key)
    keyid: str | None  # who signed (DSSE keyid); "" for unsigned artifacts
    outcome: str | None  # identical / differs for a rebuild statement
    checked: bool  # the signature was verified against `signer`'s public key
    rebuilt_on: str | None  # when the rebuilder says it rebuilt
    seen: str  # ISO 8601 UTC

    def to_json(self) -> dict[str, Any]:
        return {
            "image": self.image, "index_digest": self.index_digest, "kind": self.kind,
            "platform": self.platform, "artifact": self.artifact, "signer": self.signer,
            "keyid": self.keyid or None, "outcome": self.outcome, "checked": self.checked,
            "rebuilt_on": self.rebuilt_on, "first_seen": self.seen, "run_id": self.run_id,
        }  # fmt: skip


@dataclass(frozen=True)
class GateRecord:
    run_id: str
    image: str
    index_digest: str  # the candidate
    snapshot: str  # the candidate's snapshot
    required: int
    passed: bool
    identical: tuple[str, ...]  # trusted key names
    disagreeing: tuple[str, ...]
    missing: tuple[str, ...]
    promoted: tuple[str, ...]  # references the moving tag was written to (empty: held)
    message: str
    decided: str  # ISO 8601 UTC

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id, "image": self.image, "index_digest": self.index_digest,
            "snapshot": self.snapshot, "required": self.required, "passed": self.passed,
            "identical": list(self.identical), "disagreeing": list(self.disagreeing),
            "missing": list(self.missing), "promoted": list(self.promoted),
            "message": self.message, "decided": self.decided,
        }  # fmt: skip


_ATT_COLS: Final = (
    "run_id, image, index_digest, kind, platform, artifact, signer, keyid, outcome, checked, "
    "rebuilt_on, seen"
)
_GATE_COLS: Final = (
    "run_id, image, index_digest, snapshot, required, passed, identical, disagreeing, missing, "
    "promoted, message, decided"
)


def has_tables(db: sqlite3.Connection) -> bool:
    rows = db.execute("SELECT name FROM sqlite_master WHERE type='table'").fetchall()
    return {"attestations", "gates"} <= {r[0] for r in rows}


def _names(values: tuple[str, ...]) -> str:
    return canonical_json(list(values)).decode()


def add_attestations(db: sqlite3.Connection, recs: list[AttestationRecord]) -> int:
    """Insert what is new; an artifact seen on an earlier night keeps its first night, and
    only who signed it is brought up to date (a key added to the trust directory later
    turns an unknown signer into a named, checked one). Returns the rows written."""
    before = db.total_changes
    db.executemany(
        f"INSERT INTO attestations({_ATT_COLS}) VALUES ({', '.join('?' * 12)}) "
        "ON CONFLICT(index_digest, artifact, keyid) DO UPDATE SET signer = excluded.signer, "
        "checked = excluded.checked WHERE signer IS NOT excluded.signer "
        "OR checked != excluded.checked",
        [
            (r.run_id, r.image, r.index_digest, r.kind, r.platform, r.artifact, r.signer,
             r.keyid or "", r.outcome, int(r.checked), r.rebuilt_on, r.seen)
            for r in recs
        ],
    )  # fmt: skip
    return db.total_changes - before


def add_gate(db: sqlite3.Connection, g: GateRecord) -> None:
    db.execute(
        f"INSERT INTO gates({_GATE_COLS}) VALUES ({', '.join('?' * 12)})",
        (g.run_id, g.image, g.index_digest, g.snapshot, g.required, int(g.passed),
         _names(g.identical), _names(g.disagreeing), _names(g.missing), _names(g.promoted),
         g.message, g.decided),
    )  # fmt: skip


def attestations(db: sqlite3.Connection, image: str | None = None) -> list[AttestationRecord]:
    if not has_tables(db):
        return []
    sql = f"SELECT {_ATT_COLS} FROM attestations"
    params: tuple[str, ...] = ()
    if image is not None:
        sql, params = sql + " WHERE image = ?", (image,)
    rows = db.execute(sql + " ORDER BY image, index_digest, kind, platform, keyid, artifact",
                      params).fetchall()  # fmt: skip
    return [
        AttestationRecord(
            r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], bool(r[9]), r[10], r[11]
        )
        for r in rows
    ]


def gates(db: sqlite3.Connection, image: str | None = None) -> list[GateRecord]:
    """Newest first."""
    if not has_tables(db):
        return []
    sql = f"SELECT {_GATE_COLS} FROM gates"
    params: tuple[str, ...] = ()
    if image is not None:
        sql, params = sql + " WHERE image = ?", (image,)
    rows = db.execute(sql + " ORDER BY decided DESC, id DESC", params).fetchall()
    return [
        GateRecord(
            r[0],
            r[1],
            r[2],
            r[3],
            int(r[4]),
            bool(r[5]),
            tuple(json.loads(r[6])),
            tuple(json.loads(r[7])),
            tuple(json.loads(r[8])),
            tuple(json.loads(r[9])),
            r[10],
            r[11],
        )
        for r in rows
    ]
