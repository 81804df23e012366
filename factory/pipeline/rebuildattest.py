"""A rebuilder's signed statement about one reproduction, attached to the image it rebuilt.

Used by `reprobase reproduce --attest` and by the nightly's re-verification of past
images (`attest_key` in its config). The statement is factory.attest.rebuild's; the
signature DSSE; the attachment an OCI referrer of the image index (registry or layout).
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass

from factory import __version__
from factory.attest import dsse, rebuild
from factory.attest.fetch import attached
from factory.attest.kinds import ANN_KEYID, ANN_KIND, ANN_PREDICATE, KIND_REBUILD
from factory.attest.provenance import PAYLOAD_TYPE
from factory.attest.push import attach
from factory.attest.signer import Signer
from factory.common.errors import UserError
from factory.image.compress import Compression
from factory.pipeline.reproduce import Reproduction
from factory.rootfs.mmdebstrap import mmdebstrap_version


@dataclass(frozen=True)
class SignedRebuild:
    claim: rebuild.RebuildClaim
    envelope: dsse.Envelope
    pushed: str | None  # the artifact manifest's digest where it was attached


def claim_for(result: Reproduction) -> rebuild.RebuildClaim:
    spec = result.spec
    return rebuild.RebuildClaim(
        image=spec.recipe.ref,
        index_digest=spec.index_digest,
        rebuilt_digest=result.rebuilt_digest,
        snapshot=spec.pin.text,
        architectures=tuple(a.debian for a in spec.arches),
        packages_from=spec.packages_from.value,
        versions=(
            ("compressor", Compression.parse(spec.recipe.compression).describe()),
            ("mmdebstrap", mmdebstrap_version()),
            ("reprobase", __version__),
        ),
        environment=(("machine", platform.machine()), ("python", platform.python_version())),
        when=rebuild.utc_now(os.environ.get("SOURCE_DATE_EPOCH")),
    )


def sign_rebuild(result: Reproduction, signer: Signer, *, push: bool) -> SignedRebuild:
    claim = claim_for(result)
    env = dsse.sign(PAYLOAD_TYPE, rebuild.render(claim), signer.keyid, signer.sign)
    pushed = None
    if push:
        subject = attached(result.reference).subject
        if subject.digest != claim.index_digest:
            raise UserError(
                f"{result.reference} now points at {subject.digest}, not the rebuilt "
                f"{claim.index_digest}",
                hint="name the image by digest (REF@sha256:...)",
            )
        ann = {
            ANN_KIND: KIND_REBUILD,
            ANN_PREDICATE: rebuild.PREDICATE_TYPE,
            ANN_KEYID: signer.keyid,
        }
        pushed = attach(
            result.reference, subject, dsse.MEDIA_TYPE, env.render(), dsse.MEDIA_TYPE, ann
        )
    return SignedRebuild(claim, env, pushed)
