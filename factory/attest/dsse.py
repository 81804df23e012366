"""DSSE envelopes (github.com/secure-systems-lab/dsse, protocol.md and envelope.md).

Signatures are over PAE(payloadType, payload) =
"DSSEv1" SP LEN(type) SP type SP LEN(body) SP body, lengths in ASCII decimal bytes.
Pure: signing and verifying take callables/keys from factory.attest.keys.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from factory.common.canonical import canonical_json

MEDIA_TYPE = "application/vnd.dsse.envelope.v1+json"


def pae(payload_type: str, payload: bytes) -> bytes:
    t = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


@dataclass(frozen=True)
class Signature:
    keyid: str
    sig: bytes


@dataclass(frozen=True)
class Envelope:
    payload_type: str
    payload: bytes
    signatures: tuple[Signature, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "payloadType": self.payload_type,
            "payload": base64.b64encode(self.payload).decode(),
            "signatures": [
                {"keyid": s.keyid, "sig": base64.b64encode(s.sig).decode()} for s in self.signatures
            ],
        }

    def render(self) -> bytes:
        return canonical_json(self.to_json())


class EnvelopeError(ValueError):
    """Not a DSSE envelope (malformed JSON, fields or base64)."""


def parse(data: bytes) -> Envelope:
    try:
        obj = json.loads(data)
        sigs = tuple(
            Signature(str(s.get("keyid", "")), base64.b64decode(s["sig"], validate=True))
            for s in obj["signatures"]
        )
        return Envelope(
            str(obj["payloadType"]), base64.b64decode(obj["payload"], validate=True), sigs
        )
    except (ValueError, KeyError, TypeError, AttributeError, binascii.Error) as exc:
        raise EnvelopeError(f"not a DSSE envelope ({type(exc).__name__})") from None


def sign(
    payload_type: str, payload: bytes, keyid: str, signer: Callable[[bytes], bytes]
) -> Envelope:
    return Envelope(payload_type, payload, (Signature(keyid, signer(pae(payload_type, payload))),))


def valid_keyids(
    env: Envelope, verifiers: Mapping[str, Callable[[bytes, bytes], bool]]
) -> set[str]:
    """The keyids (of `verifiers`) whose signature over this envelope's PAE is valid."""
    message = pae(env.payload_type, env.payload)
    out = set()
    for s in env.signatures:
        check = verifiers.get(s.keyid)
        if check is not None and check(s.sig, message):
            out.add(s.keyid)
    return out
