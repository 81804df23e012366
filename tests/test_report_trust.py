"""The report's trust parts: per image its SBOMs, provenance, rebuilders and quorum gate;
the watched images' record (reproducible since, last failure, culprit); the same facts in
results.json; a history from before schema 3 still reads."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from pathlib import Path

from factory.report import render
from factory.report.history import SCHEMA_VERSION, History, ResultRecord
from factory.report.trustlog import AttestationRecord, GateRecord
from factory.report.trustview import newest_published
from tests.report_fixtures import synthetic_records

SCHEMA_2_RESULTS = {
    "id", "run_id", "kind", "image", "arch", "snapshot", "verdict", "index_digest",
    "manifest_digest", "digest_b", "size", "uncompressed_size", "packages_digest",
    "package_set", "published", "upstream_bytes", "durations", "started", "finished",
    "message", "packages_from",
}  # fmt: skip
REF = "reg.invalid/team/debian:bookworm"
W_DIGEST = "sha256:" + "5a" * 32


def att(digest: str, kind: str, artifact: str, **kw: object) -> AttestationRecord:
    base = AttestationRecord(
        run_id="r", image="debian:bookworm", index_digest=digest, kind=kind, platform=None,
        artifact="sha256:" + artifact * 64, signer=None, keyid="", outcome=None, checked=False,
        rebuilt_on=None, seen="2026-11-29T02:00:00Z",
    )  # fmt: skip
    return dataclasses.replace(base, **kw)  # type: ignore[arg-type]


def watch_row(day: int, verdict: str, message: str, arch: str = "amd64") -> ResultRecord:
    return ResultRecord(
        run_id=f"w{day}", kind="watch", image=REF, arch=arch, snapshot="20261101T000000Z",
        verdict=verdict, index_digest=W_DIGEST, manifest_digest=None,
        digest_b=W_DIGEST if verdict == "reproducible" else "sha256:" + "6b" * 32, size=None,
        uncompressed_size=None, packages_digest=None, packages=(), published=(),
        upstream_bytes=None, durations={}, started=f"2026-11-{day:02d}T03:00:00Z",
        finished=f"2026-11-{day:02d}T03:05:00Z", message=message,
    )  # fmt: skip


def filled(path: Path) -> tuple[History, str]:
    h = History(path)
    recs = synthetic_records()
    for r in recs:
        h.add(r)
    pub = newest_published([r for r in recs if r.image == "debian:bookworm"])
    assert pub is not None and pub.index_digest is not None
    d = pub.index_digest
    h.add_attestations([
        att(d, "sbom-spdx", "a1", platform="linux/amd64"),
        att(d, "sbom-cyclonedx", "a2", platform="linux/amd64"),
        att(d, "provenance", "a3"),
        att(d, "rebuild", "a4", signer="alice", keyid="ab" * 32, outcome="identical",
            checked=True, rebuilt_on="2026-11-29T05:00:00Z"),
        att(d, "rebuild", "a5", keyid="cd" * 32, outcome="differs"),  # nobody we know
        att("sha256:" + "00" * 32, "rebuild", "a6", signer="zed"),  # another digest: not shown
    ])  # fmt: skip
    gate = GateRecord("r", "debian:bookworm", d, pub.snapshot, 2, False, ("alice",), (),
                      ("bob", "carol"), (), "quorum FAILED", "2026-11-29T06:00:00Z")  # fmt: skip
    h.add_gate(gate)
    for day, verdict in [(20, "reproducible"), (21, "differs"), (22, "error"),
                         (23, "reproducible"), (24, "reproducible")]:  # fmt: skip
        msg = "reproduced: identical"
        if verdict == "differs":
            msg = "differs: published X, rebuilt Y\nculprit: /etc/shadow: last password change"
        elif verdict == "error":
            msg = "registry unreachable"
        h.add(watch_row(day, verdict, msg))
        h.add(watch_row(day, verdict if verdict != "differs" else "reproducible", msg, "arm64"))
    h.add_attestations([att(W_DIGEST, "rebuild", "b1", image=REF, signer="nightly",
                            keyid="ef" * 32, outcome="identical", checked=True)])  # fmt: skip
    return h, d


def test_trust_and_watched_in_the_report(tmp_path: Path) -> None:
    h, digest = filled(tmp_path / "h.sqlite")
    files = render(h)
    doc = json.loads(files["results.json"])
    assert doc["schema"] == 2
    img = {i["image"]: i for i in doc["images"]}
    assert REF not in img and len(doc["images"]) == 2  # a watched image is not ours
    t = img["debian:bookworm"]["trust"]
    assert t["index_digest"] == digest
    assert [s["format"] for s in t["sboms"]] == ["cyclonedx", "spdx"]
    assert t["provenance"] == ["sha256:" + "a3" * 64]
    assert [(r["signer"], r["outcome"], r["checked"]) for r in t["rebuilders"]] == [
        ("alice", "identical", True), (None, "differs", False)]  # fmt: skip
    assert t["quorum"]["missing"] == ["bob", "carol"] and not t["quorum"]["passed"]
    assert img["debian:trixie-slim"]["trust"]["rebuilders"] == []

    (w,) = doc["watched"]
    assert w["reference"] == REF and w["latest"]["run_id"] == "w24"
    assert w["reproducible_since"]["run_id"] == "w23"
    assert w["last_failure"]["run_id"] == "w22" and w["last_failure"]["verdict"] == "error"
    assert w["culprit"] == "/etc/shadow: last password change" and w["culprit_run"] == "w21"
    assert [r["verdict"] for r in w["runs"]] == [
        "reproducible", "reproducible", "error", "differs", "reproducible"]  # fmt: skip
    assert [r["signer"] for r in w["rebuilders"]] == ["nightly"]
    assert len(doc["attestations"]) == 7 and len(doc["gates"]) == 1

    html = files["index.html"].decode()
    for needle in ("Watched images", REF, "/etc/shadow: last password change",
                   "missing: bob, carol", "alice", "unknown key", "spdx linux/amd64"):  # fmt: skip
        assert needle in html, needle
    page = files["images/debian-bookworm.html"].decode()
    assert "sha256:" + "a3" * 64 in page  # full digests on the image's own page
    assert "Watched images" not in page


def test_history_before_schema_3_reads(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite"
    with History(path) as h:
        for r in synthetic_records()[:4]:
            h.add(r)
    with sqlite3.connect(path) as db:  # what schema 2 looked like
        db.execute("DROP TABLE attestations")
        db.execute("DROP TABLE gates")
        for (name,) in db.execute("SELECT name FROM pragma_table_info('results')").fetchall():
            if name not in SCHEMA_2_RESULTS:  # columns a later schema added
                db.execute(f"ALTER TABLE results DROP COLUMN {name}")
        db.execute("UPDATE schema_version SET version = 2")
    with History(path, readonly=True) as h:
        assert h.attestations() == [] and h.gates() == []
        doc = json.loads(render(h)["results.json"])
        assert doc["attestations"] == [] and doc["watched"] == []
        assert doc["images"][0]["trust"]["rebuilders"] == []
    with History(path) as h:  # the next nightly migrates it
        a = att("sha256:" + "01" * 32, "provenance", "c1")
        assert h.add_attestations([a, a]) == 1
        assert h.add_attestations([dataclasses.replace(a, run_id="later")]) == 0  # seen before
        assert h.attestations() == [a] and len(h.records()) == 4
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
