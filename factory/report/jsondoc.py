"""results.json: every record of the history plus the summary the page shows."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from factory.history import ResultRecord
from factory.report.model import Counts, ImageView, Summary

JSON_SCHEMA_VERSION = 1


def _sort_key(r: ResultRecord) -> tuple[str, ...]:
    return (r.image, r.arch, r.snapshot, r.kind, r.started, r.finished, r.run_id)


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
        "records": [r.to_json() for r in sorted(records, key=_sort_key)],
    }
    if generated is not None:
        doc["generated"] = generated
    return doc
