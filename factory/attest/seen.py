"""What is attached to an image, described for a record: kind, platform, who signed, outcome.

Pure, given the artifacts (factory.attest.fetch) and the keys the caller knows. A
signature is reported as `checked` only when it verifies under one of those keys over
the envelope's exact payload; an unknown signer is kept by keyid alone (the annotation's
keyid is never believed). `envelopes` is the same reading `verify` needs for a quorum.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from factory.attest import dsse
from factory.attest.keys import TrustedKey
from factory.attest.kinds import ANN_KIND, ANN_PLATFORM, KIND_REBUILD
from factory.attest.quorum import Found
from factory.attest.rebuild import DIFFERS, IDENTICAL, PREDICATE_TYPE, parse_statement
from factory.attest.store import Artifact

OTHER_IMAGE = "other image"  # a rebuild statement whose subject is not this digest


@dataclass(frozen=True)
class Seen:
    kind: str  # sbom-spdx, sbom-cyclonedx, provenance, rebuild (or the artifact type)
    platform: str | None
    artifact: str  # the artifact manifest's digest
    signer: str | None  # the known key's name
    keyid: str  # "" when unsigned
    outcome: str | None  # identical, differs, "other image" for rebuild statements
    checked: bool
    rebuilt_on: str | None


def _envelope(a: Artifact) -> dsse.Envelope | None:
    if (a.descriptor.artifact_type or a.media_type) != dsse.MEDIA_TYPE:
        return None
    try:
        return dsse.parse(a.payload)
    except dsse.EnvelopeError:
        return None


def envelopes(artifacts: Sequence[Artifact]) -> list[Found]:
    """The DSSE artifacts as quorum.decide reads them (a broken envelope counts as refused)."""
    return [
        Found(a.descriptor.digest, _envelope(a))
        for a in artifacts
        if (a.descriptor.artifact_type or a.media_type) == dsse.MEDIA_TYPE
    ]


def _kind(a: Artifact) -> str:
    return a.descriptor.annotations.get(ANN_KIND) or a.descriptor.artifact_type or a.media_type


def describe(digest: str, artifacts: Sequence[Artifact], known: Sequence[TrustedKey]) -> list[Seen]:
    """One Seen per artifact, and per signature of a signed one."""
    by_id = {k.keyid: k for k in known}
    out: list[Seen] = []
    for a in sorted(artifacts, key=lambda a: a.descriptor.digest):
        kind = _kind(a)
        platform = a.descriptor.annotations.get(ANN_PLATFORM)
        env = _envelope(a)
        if env is None:
            out.append(Seen(kind, platform, a.descriptor.digest, None, "", None, False, None))
            continue
        claim = parse_statement(env.payload, env.payload_type)
        outcome = when = None
        if claim is not None and claim.predicate_type == PREDICATE_TYPE:
            kind, when = KIND_REBUILD, claim.when or None
            if digest not in claim.subject_digests:
                outcome = OTHER_IMAGE
            elif claim.outcome == IDENTICAL and claim.rebuilt_digest == digest:
                outcome = IDENTICAL
            else:
                outcome = DIFFERS
        valid = dsse.valid_keyids(env, {k: v.verify for k, v in by_id.items()})
        for sig in sorted({s.keyid for s in env.signatures}) or [""]:
            key = by_id.get(sig) if sig in valid else None
            out.append(Seen(kind, platform, a.descriptor.digest, key.name if key else None, sig,
                            outcome, key is not None, when))  # fmt: skip
    return out
