"""`reproduce --attest`: sign what this rebuild found and attach it to the image;
`build --key`: sign the build's provenance."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from factory.attest import dsse
from factory.attest.kinds import ANN_KEYID, ANN_KIND, ANN_PREDICATE, KIND_PROVENANCE
from factory.attest.provenance import PAYLOAD_TYPE, SLSA_PROVENANCE
from factory.attest.signer import Signer, make_signer
from factory.attest.store import add_local_referrer, local_referrers, read_local_artifact
from factory.common.errors import UserError
from factory.image.selfdesc import top_descriptor
from factory.pipeline.rebuildattest import sign_rebuild
from factory.pipeline.reproduce import Reproduction


def add_signing_arguments(g: argparse._ActionsContainer) -> None:
    g.add_argument(
        "--key",
        type=Path,
        metavar="KEY",
        help="private key PEM (reprobase key generate); with --sign-command its public key",
    )
    g.add_argument(
        "--sign-command",
        metavar="CMD",
        help="sign with this command instead (a hardware token): the DSSE PAE bytes on "
        "stdin or in the file {in}, the raw signature on stdout, e.g. "
        "'openssl pkeyutl -sign -inkey K.pem -rawin -in {in}'",
    )


def add_attest_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("rebuild attestation (for `reprobase verify --require N`)")
    g.add_argument("--attest", action="store_true", help="sign a rebuild attestation (DSSE)")
    add_signing_arguments(g)
    g.add_argument(
        "--push", action="store_true", help="attach the attestation to REF (registry or layout)"
    )
    g.add_argument(
        "--attestation-output", type=Path, metavar="FILE", help="also write the envelope here"
    )


def prepare(args: argparse.Namespace) -> Signer | None:
    """Check the flags and load the key before any rebuild starts."""
    wanted = args.push or args.key or args.sign_command or args.attestation_output
    if not args.attest:
        if wanted:
            raise UserError("--key, --sign-command, --push need --attest")
        return None
    if args.key is None:
        raise UserError("--attest needs --key KEY", hint="make one with `reprobase key generate`")
    out = args.attestation_output
    if out is not None and (out.exists() or out.is_symlink()):
        raise UserError(f"--attestation-output {out} exists", hint="name a new file")
    return make_signer(args.key, args.sign_command)


def build_signer(args: argparse.Namespace) -> Signer | None:
    """`build --key`: the provenance is signed too (checked before the build starts)."""
    if args.sign_command and args.key is None:
        raise UserError("--sign-command needs --key PUBLIC.pem (to check its signatures)")
    return make_signer(args.key, args.sign_command) if args.key is not None else None


def sign_provenance(layout: Path, signer: Signer) -> str | None:
    """A DSSE envelope over the build's provenance statement, kept beside it."""
    subject = top_descriptor(layout)
    for desc in local_referrers(layout, subject.digest):
        if desc.annotations.get(ANN_KIND) != KIND_PROVENANCE:
            continue
        payload = read_local_artifact(layout, desc).payload
        env = dsse.sign(PAYLOAD_TYPE, payload, signer.keyid, signer.sign)
        ann = {ANN_KIND: KIND_PROVENANCE, ANN_PREDICATE: SLSA_PROVENANCE, ANN_KEYID: signer.keyid}
        return add_local_referrer(
            layout, subject, dsse.MEDIA_TYPE, env.render(), dsse.MEDIA_TYPE, ann
        ).digest
    return None


def attest(args: argparse.Namespace, result: Reproduction, signer: Signer) -> dict[str, Any]:
    signed = sign_rebuild(result, signer, push=args.push)
    out: dict[str, Any] = {
        "outcome": signed.claim.outcome,
        "keyid": signer.keyid,
        "pushed": signed.pushed,
        "signer": signer.describe,
        "envelope": signed.envelope.to_json(),
    }
    if args.attestation_output is not None:
        args.attestation_output.write_bytes(signed.envelope.render())
        out["file"] = str(args.attestation_output)
    return out


def attested_line(out: dict[str, Any]) -> str:
    where = f", attached as {out['pushed']}" if out["pushed"] else ""
    if not out["pushed"] and "file" not in out:
        where = " (kept nowhere: add --push or --attestation-output FILE; --json prints it)"
    return f"signed rebuild attestation ({out['outcome']}) by {out['signer']}{where}"
