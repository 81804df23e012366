"""results.json: every record of the history plus the summary the page shows.

Records name their package list by key (`package_set`, the SHA-256 of its canonical
JSON); `package_sets` maps each key to the list once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from factory.report.history import ResultRecord, package_set_key
from factory.report.model import Counts, ImageView, Summary
from factory.report.trustlog import AttestationRecord, GateRecord
from factory.report.trustview import TrustView, WatchRun, WatchView

# 2: images[].trust, watched, attestations, gates (history schema 3)
JSON_SCHEMA_VERSION = 2


def _sort_key(r: ResultRecord) -> tuple[str, ...]:
    return (r.image, r.arch, r.snapshot, r.kind, r.started, r.finished, r.run_id)


def _record(r: ResultRecord) -> dict[str, Any]:
    """A record as JSON; its package list is referenced by key (see package_sets)."""
    doc = r.to_json()
    del doc["packages"]
    doc["package_set"] = package_set_key(r.packages) if r.packages else None
    return doc


def _counts(c: Counts) -> dict[str, Any]:
    rate = c.rate
    return {
        "verdicts": dict(c.by_verdict),
        "reproducible_rate": None if rate is None else round(rate, 4),
    }


def _trust(t: TrustView | None) -> dict[str, Any] | None:
    if t is None:
        return None
    return {
        "index_digest": t.index_digest,
        "snapshot": t.snapshot,
        "sboms": [
            {"format": a.kind.removeprefix("sbom-"), "platform": a.platform, "artifact": a.artifact}
            for a in t.sboms
        ],
        "provenance": [a.artifact for a in t.provenance],
        "rebuilders": [_rebuilder(a) for a in t.rebuilders],
        "quorum": t.gate.to_json() if t.gate else None,
    }


def _rebuilder(a: AttestationRecord) -> dict[str, Any]:
    return {"signer": a.signer, "keyid": a.keyid or None, "outcome": a.outcome,
            "checked": a.checked, "rebuilt_on": a.rebuilt_on, "artifact": a.artifact}  # fmt: skip


def _run(r: WatchRun | None) -> dict[str, Any] | None:
    if r is None:
        return None
    return {"run_id": r.run_id, "started": r.started, "snapshot": r.snapshot or None,
            "verdict": r.verdict, "index_digest": r.index_digest,
            "rebuilt_digest": r.rebuilt_digest, "culprit": r.culprit,
            "message": r.message}  # fmt: skip


def _watched(v: WatchView) -> dict[str, Any]:
    return {
        "reference": v.ref,
        "latest": _run(v.latest),
        "reproducible_since": _run(v.reproducible_since),
        "last_failure": _run(v.last_failure),
        "culprit": v.culprit.culprit if v.culprit else None,
        "culprit_run": v.culprit.run_id if v.culprit else None,
        "rebuilders": [_rebuilder(a) for a in v.rebuilders],
        "runs": [{"run_id": r.run_id, "started": r.started, "verdict": r.verdict} for r in v.runs],
    }


def document(
    records: Sequence[ResultRecord],
    summary: Summary,
    views: Sequence[ImageView],
    *,
    title: str,
    generated: str | None,
    watched: Sequence[WatchView] = (),
    attestations: Sequence[AttestationRecord] = (),
    gates: Sequence[GateRecord] = (),
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "schema": JSON_SCHEMA_VERSION,
        "title": title,
        "summary": {
            "images": summary.images,
            "window": summary.window,
            "last_30_nights": _counts(summary.counts),
            "last_run": summary.last_run.run_id if summary.last_run else None,
        },
        "images": [
            {
                "image": v.image,
                "page": f"images/{v.slug}.html",
                "last_30_nights": _counts(v.counts),
                "latest": {
                    lt.arch: {
                        "snapshot": lt.record.snapshot,
                        "verdict": lt.record.verdict,
                        "manifest_digest": lt.record.manifest_digest,
                        "published_snapshot": lt.published.snapshot if lt.published else None,
                        "published": list(lt.published.published) if lt.published else [],
                    }
                    for lt in v.latest
                },
                "trust": _trust(v.trust),
            }
            for v in views
        ],
        "watched": [_watched(w) for w in watched],
        # every attestation seen and every quorum decision, as in the history
        "attestations": [a.to_json() for a in attestations],
        "gates": [g.to_json() for g in gates],
        "records": [_record(r) for r in sorted(records, key=_sort_key)],
        # Package lists once per distinct set, as in the history: a year of nights
        # with a rarely changing package set stays small.
        "package_sets": {
            package_set_key(r.packages): [list(p) for p in r.packages]
            for r in records
            if r.packages
        },
    }
    if generated is not None:
        doc["generated"] = generated
    return doc
