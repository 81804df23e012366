"""reprobase verify: does a quorum of trusted rebuilders attest this exact image?"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from factory.attest.fetch import attached
from factory.attest.keys import load_trust_dir
from factory.attest.kinds import ANN_KIND
from factory.attest.quorum import decide
from factory.attest.seen import envelopes
from factory.common.errors import UserError

HELP = "check that N trusted keys attest an identical rebuild of exactly this image digest"
EPILOG = """\
REF is a registry reference or an OCI layout (LAYOUT, LAYOUT:TAG). DIR holds the
trusted public keys, one PEM file per rebuilder (NAME.pub; `reprobase key generate`
makes them). verify reads the image's referrers (the registry's referrers API or its
fallback tag; a layout's referrers.json) and nothing else: no rebuild, no network but
the registry. It passes when at least N distinct trusted keys signed (DSSE) a rebuild
statement whose subject is this index digest and whose outcome is identical. Keys that
attest nothing are named as missing, keys that rebuilt something else as disagreeing;
attestations signed by no trusted key, with a bad signature, or about another digest
are listed as refused and never count.

Rebuilders publish their attestations with
  reprobase reproduce REF --attest --key KEY.key --push

exit codes: 0 quorum reached, 1 not reached, 2 error.
(`reprobase verify` was once another name for reproduce; rebuilding is `reproduce`.)
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.epilog = EPILOG
    p.add_argument("reference", metavar="REF", help="the image to check")
    p.add_argument(
        "--trust", type=Path, required=True, metavar="DIR", help="directory of trusted *.pub keys"
    )
    p.add_argument(
        "--require",
        type=int,
        default=1,
        metavar="N",
        help="how many distinct trusted keys must attest an identical rebuild (default 1)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")


def run(args: argparse.Namespace) -> int:
    keys = load_trust_dir(args.trust)
    if args.require < 1:
        raise UserError(f"--require {args.require}: must be at least 1")
    if args.require > len(keys):
        raise UserError(
            f"--require {args.require}: {args.trust} holds only {len(keys)} trusted keys",
            hint="lower --require or add keys",
        )
    found_images = attached(args.reference)
    kinds: dict[str, int] = {}
    for a in found_images.artifacts:
        kind = a.descriptor.annotations.get(ANN_KIND, a.descriptor.artifact_type or "?")
        kinds[kind] = kinds.get(kind, 0) + 1
    found = envelopes(found_images.artifacts)  # the same reading as the nightly's gate
    decision = decide(found_images.subject.digest, keys, found, args.require)
    print(decision.summary())
    for line in decision.refused:
        print(f"refused: {line}")
    if args.json:
        doc = {"ok": True, "reference": args.reference, "attached": dict(sorted(kinds.items()))}
        print(json.dumps({**doc, **decision.to_json()}, sort_keys=True))
    return 0 if decision.passed else 1
