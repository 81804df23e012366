"""k-of-n: do N distinct trusted keys attest an identical rebuild of exactly this digest?

Pure: given the trusted keys, the image digest and every attached envelope (already
parsed), decide per key and say why. A signature counts only if it is valid for the
envelope's exact payload under a trusted key; the statement counts only if its subject
is this digest and its predicate is a rebuild. Anything else is listed as refused,
with the reason (untrusted key, bad signature, other digest, not a rebuild).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from factory.attest import dsse
from factory.attest.keys import TrustedKey
from factory.attest.rebuild import DIFFERS, IDENTICAL, PREDICATE_TYPE, parse_statement

MISSING = "missing"


@dataclass(frozen=True)
class Found:
    source: str  # the artifact manifest digest it came from
    envelope: dsse.Envelope | None  # None: the payload is not a DSSE envelope


@dataclass
class Decision:
    digest: str
    required: int
    per_key: dict[str, str] = field(default_factory=dict)  # key name -> identical/differs/missing
    refused: list[str] = field(default_factory=list)  # one line per refused attestation

    @property
    def identical(self) -> list[str]:
        return sorted(k for k, v in self.per_key.items() if v == IDENTICAL)

    @property
    def disagreeing(self) -> list[str]:
        return sorted(k for k, v in self.per_key.items() if v == DIFFERS)

    @property
    def missing(self) -> list[str]:
        return sorted(k for k, v in self.per_key.items() if v == MISSING)

    @property
    def passed(self) -> bool:
        return len(self.identical) >= self.required

    def summary(self) -> str:
        verdict = "passed" if self.passed else "FAILED"
        parts = [f"quorum {verdict}: {len(self.identical)} of {self.required} required trusted "
                 f"keys attest an identical rebuild of {self.digest}"]  # fmt: skip
        if self.identical:
            parts.append(f"identical: {', '.join(self.identical)}")
        if self.disagreeing:
            parts.append(f"disagree (rebuilt something else): {', '.join(self.disagreeing)}")
        if self.missing:
            parts.append(f"missing: {', '.join(self.missing)}")
        return "; ".join(parts)

    def to_json(self) -> dict[str, Any]:
        return {
            "digest": self.digest,
            "required": self.required,
            "passed": self.passed,
            "keys": dict(sorted(self.per_key.items())),
            "identical": self.identical,
            "disagreeing": self.disagreeing,
            "missing": self.missing,
            "refused": self.refused,
        }


def decide(digest: str, keys: list[TrustedKey], found: list[Found], required: int) -> Decision:
    d = Decision(digest, required, {k.name: MISSING for k in keys})
    by_id = {k.keyid: k for k in keys}
    verifiers = {k.keyid: k.verify for k in keys}
    for f in sorted(found, key=lambda f: f.source):
        env = f.envelope
        if env is None:
            d.refused.append(f"{f.source}: not a DSSE envelope")
            continue
        signed = dsse.valid_keyids(env, verifiers)
        if not signed:
            ids = sorted(s.keyid[:16] for s in env.signatures)
            why = (
                "bad signature"
                if any(s.keyid in by_id for s in env.signatures)
                else (f"signed by no trusted key (keyid {', '.join(ids) or 'none'})")
            )
            d.refused.append(f"{f.source}: {why}")
            continue
        claim = parse_statement(env.payload, env.payload_type)
        if claim is None or claim.predicate_type != PREDICATE_TYPE:
            d.refused.append(f"{f.source}: not a rebuild statement")
            continue
        if digest not in claim.subject_digests:
            d.refused.append(
                f"{f.source}: attests another image ({', '.join(claim.subject_digests)})"
            )
            continue
        ok = claim.outcome == IDENTICAL and claim.rebuilt_digest == digest
        for keyid in sorted(signed):
            name = by_id[keyid].name
            # one identical rebuild by a key is enough for that key; a later "differs"
            # by the same key is still shown (it disagrees with itself then)
            if ok:
                d.per_key[name] = IDENTICAL
            elif d.per_key[name] == MISSING:
                d.per_key[name] = DIFFERS
    return d
