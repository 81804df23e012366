"""What the report shows about trust (pure): per image, the SBOMs, provenance and the
rebuilders attached to its newest published digest and the quorum gate's word on it;
per watched image, its record over time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from factory.report.history import ResultRecord
from factory.report.trustlog import AttestationRecord, GateRecord

WATCH_RUNS = 30  # runs listed per watched image
CULPRIT = "culprit: "  # the line factory.nightly.watch writes into a watch row's message
_WORST = {"error": 3, "differs": 2, "reproducible": 1}


@dataclass(frozen=True)
class TrustView:
    index_digest: str
    snapshot: str
    sboms: tuple[AttestationRecord, ...]
    provenance: tuple[AttestationRecord, ...]
    rebuilders: tuple[AttestationRecord, ...]  # signed rebuild statements, one per signer
    gate: GateRecord | None  # the newest quorum decision about this digest

    @property
    def identical(self) -> int:
        return len({(r.keyid, r.signer) for r in self.rebuilders if r.outcome == "identical"})


@dataclass(frozen=True)
class WatchRun:
    run_id: str
    started: str
    snapshot: str
    verdict: str  # the worst of its architectures
    index_digest: str | None
    rebuilt_digest: str | None
    message: str

    @property
    def culprit(self) -> str | None:
        for line in self.message.splitlines():
            if line.startswith(CULPRIT):
                return line.removeprefix(CULPRIT)
        return None


@dataclass(frozen=True)
class WatchView:
    ref: str
    runs: tuple[WatchRun, ...]  # newest first
    reproducible_since: WatchRun | None  # the first run of the current reproducible streak
    last_failure: WatchRun | None
    culprit: WatchRun | None  # the newest run whose diff named a culprit
    rebuilders: tuple[AttestationRecord, ...]  # attached to the newest run's digest

    @property
    def latest(self) -> WatchRun:
        return self.runs[0]


def newest_published(records: Sequence[ResultRecord]) -> ResultRecord | None:
    """The newest nightly row that published something (the digest users pull)."""
    pubs = [r for r in records if r.kind == "nightly" and r.publishable and r.published]
    pubs = [r for r in pubs if r.index_digest]
    return max(pubs, key=lambda r: (r.started, r.finished, r.run_id), default=None)


def _by_signer(a: AttestationRecord) -> tuple[bool, str, str, str]:
    """Named rebuilders first, by name; unknown keys after them, by key id."""
    return (a.signer is None, a.signer or "", a.keyid or "", a.artifact)


def trust_view(
    image: str,
    records: Sequence[ResultRecord],
    attestations: Sequence[AttestationRecord],
    gates: Sequence[GateRecord],
) -> TrustView | None:
    pub = newest_published(records)
    if pub is None or pub.index_digest is None:
        return None
    digest = pub.index_digest
    mine = [a for a in attestations if a.image == image and a.index_digest == digest]
    gate = max(
        (g for g in gates if g.image == image and g.index_digest == digest),
        key=lambda g: (g.decided, g.run_id),
        default=None,
    )
    return TrustView(
        digest,
        pub.snapshot,
        tuple(a for a in mine if a.kind.startswith("sbom-")),
        tuple(a for a in mine if a.kind == "provenance"),
        tuple(sorted((a for a in mine if a.kind == "rebuild"), key=_by_signer)),
        gate,
    )


def _runs(rows: Sequence[ResultRecord]) -> list[WatchRun]:
    by_run: dict[str, list[ResultRecord]] = {}
    for r in rows:
        by_run.setdefault(r.run_id, []).append(r)
    runs = []
    for run_id, rs in by_run.items():
        worst = max(rs, key=lambda r: (_WORST.get(r.verdict, 0), r.arch))
        runs.append(WatchRun(run_id, min(r.started for r in rs), worst.snapshot, worst.verdict,
                             worst.index_digest, worst.digest_b, worst.message))  # fmt: skip
    runs.sort(key=lambda w: (w.started, w.run_id), reverse=True)
    return runs


def watch_views(
    records: Sequence[ResultRecord], attestations: Sequence[AttestationRecord]
) -> tuple[WatchView, ...]:
    by_ref: dict[str, list[ResultRecord]] = {}
    for r in records:
        if r.kind == "watch":
            by_ref.setdefault(r.image, []).append(r)
    views = []
    for ref in sorted(by_ref):
        runs = _runs(by_ref[ref])
        since = None
        for run in runs:  # newest first: walk back while it reproduced
            if run.verdict != "reproducible":
                break
            since = run
        failure = next((r for r in runs if r.verdict != "reproducible"), None)
        digest = runs[0].index_digest
        signed = tuple(sorted(
            (a for a in attestations
             if a.image == ref and a.index_digest == digest and a.kind == "rebuild"),
            key=_by_signer,
        ))  # fmt: skip
        named = next((r for r in runs if r.culprit), None)
        views.append(WatchView(ref, tuple(runs[:WATCH_RUNS]), since, failure, named, signed))
    return tuple(views)
