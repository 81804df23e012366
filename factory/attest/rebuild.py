"""A rebuilder's statement: "I rebuilt image DIGEST from its own labels and got DIGEST'".

An in-toto Statement v1 whose subject is the image index that was rebuilt, with our
predicate (there is no standard one for independent rebuilds): the outcome (identical
or differs), the digest the rebuild made, what was rebuilt (recipe, snapshot,
architectures, packages-from), the rebuilder's tool versions and environment, and when.
`when` is the wall-clock time of the rebuild (UTC): it is an event, not an artefact;
SOURCE_DATE_EPOCH, when set, replaces it so that tests and audits can fix it.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from factory.attest.provenance import PAYLOAD_TYPE, STATEMENT_TYPE, subject
from factory.common.canonical import canonical_json

PREDICATE_TYPE = "https://reprobase.invalid/attestations/rebuild/v1"
IDENTICAL = "identical"
DIFFERS = "differs"


@dataclass(frozen=True)
class RebuildClaim:
    image: str  # debian:bookworm
    index_digest: str  # the subject: what was published
    rebuilt_digest: str
    snapshot: str
    architectures: tuple[str, ...]
    packages_from: str
    versions: tuple[tuple[str, str], ...]
    environment: tuple[tuple[str, str], ...]
    when: str  # ISO 8601 UTC

    @property
    def outcome(self) -> str:
        return IDENTICAL if self.rebuilt_digest == self.index_digest else DIFFERS


def utc_now(source_date_epoch: str | None = None) -> str:
    t = (
        dt.datetime.fromtimestamp(int(source_date_epoch), dt.UTC)
        if source_date_epoch and source_date_epoch.isdigit()
        else dt.datetime.now(dt.UTC)
    )
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def statement(c: RebuildClaim) -> dict[str, Any]:
    return {
        "_type": STATEMENT_TYPE,
        "subject": [subject(c.image, c.index_digest)],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "outcome": c.outcome,
            "rebuiltDigest": c.rebuilt_digest,
            "image": c.image,
            "snapshot": c.snapshot,
            "architectures": list(c.architectures),
            "packagesFrom": c.packages_from,
            "rebuilder": {"versions": dict(c.versions), "environment": dict(c.environment)},
            "rebuiltOn": c.when,
        },
    }


def render(c: RebuildClaim) -> bytes:
    return canonical_json(statement(c))


@dataclass(frozen=True)
class ParsedClaim:
    subject_digests: tuple[str, ...]  # "sha256:..." of every subject
    predicate_type: str
    outcome: str
    rebuilt_digest: str
    when: str


def parse_statement(payload: bytes, payload_type: str) -> ParsedClaim | None:
    """The parts of a rebuild statement verify needs; None when it is not one."""
    if payload_type != PAYLOAD_TYPE:
        return None
    try:
        obj = json.loads(payload)
        if obj.get("_type") != STATEMENT_TYPE:
            return None
        digests = tuple(
            f"{alg}:{h}" for s in obj["subject"] for alg, h in sorted(s["digest"].items())
        )
        pred = obj.get("predicate") or {}
        return ParsedClaim(
            digests,
            str(obj.get("predicateType", "")),
            str(pred.get("outcome", "")),
            str(pred.get("rebuiltDigest", "")),
            str(pred.get("rebuiltOn", "")),
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
