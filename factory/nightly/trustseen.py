"""Each night, what is attached to the images the nightly published or watches, into the
history (table `attestations`): the report's SBOM, provenance and rebuilder columns.

Keys known to the nightly name the signers: the quorum's trust directory and the
nightly's own attest_key. Anyone else's signature is kept by keyid, unchecked.
"""

from __future__ import annotations

from collections.abc import Sequence

from factory.attest.fetch import attached
from factory.attest.keys import TrustedKey, load_public
from factory.attest.seen import describe
from factory.common.errors import UserError
from factory.nightly.config import NightlyConfig
from factory.report.history import History
from factory.report.trustlog import AttestationRecord


def known_keys(cfg: NightlyConfig) -> list[TrustedKey]:
    keys = list(cfg.quorum.keys) if cfg.quorum else []
    if cfg.attest_key is not None:
        own = load_public(cfg.attest_key, name=f"{cfg.attest_key.stem} (this nightly)")
        if own.keyid not in {k.keyid for k in keys}:
            keys.append(own)
    return keys


def observe(
    history: History,
    image: str,
    ref: str,
    digest: str,
    run_id: str,
    now: str,
    known: Sequence[TrustedKey],
) -> str:
    """Record what ref (naming digest) has attached; a line for the night's log."""
    try:
        found = attached(ref)
    except UserError as exc:
        return f"attestations of {ref} not read: {exc.message}"
    if found.subject.digest != digest:
        return f"attestations of {ref} not read: it names {found.subject.digest}, not {digest}"
    seen = describe(digest, found.artifacts, known)
    n = history.add_attestations([
        AttestationRecord(run_id, image, digest, s.kind, s.platform, s.artifact, s.signer,
                          s.keyid, s.outcome, s.checked, s.rebuilt_on, now)
        for s in seen
    ])  # fmt: skip
    return f"{ref}: {len(found.artifacts)} attached artifacts, {n} new"
