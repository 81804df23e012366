"""results.json: every record of the history plus the summary the page shows.

Records name their package list by key (`package_set`, the SHA-256 of its canonical
JSON); `package_sets` maps each key to the list once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from factory.report.history import ResultRecord, package_set_key
from factory.report.model import Counts, ImageView, Summary

JSON_SCHEMA_VERSION = 1


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


def document(
    records: Sequence[ResultRecord],
    summary: Summary,
    views: Sequence[ImageView],
    *,
    title: str,
    generated: str | None,
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
            }
            for v in views
        ],
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
