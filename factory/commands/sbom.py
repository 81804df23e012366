"""reprobase sbom: print an image's SBOM (SPDX 2.3 or CycloneDX 1.6 JSON)."""

from __future__ import annotations

import argparse
import json
import sys

from factory.attest.fetch import attached
from factory.attest.kinds import ANN_KIND, ANN_PLATFORM
from factory.common.canonical import sha256_digest
from factory.common.errors import UserError

HELP = "print the SBOM (SPDX 2.3 or CycloneDX 1.6 JSON) attached to an image"
EPILOG = """\
REF is an OCI layout (as `reprobase build --output` writes it), LAYOUT:TAG or a registry
reference (the SBOMs are the image's OCI referrers there, pushed with it). The SBOM
lists every installed package of the image's dpkg status with its version, architecture,
source package, the license its Debian copyright file declares (machine-readable files
only; NOASSERTION otherwise), a pkg:deb purl with the snapshot URL and the SHA-256 of
the .deb (the hash apt verified against the snapshot's signed Packages index). Slim
images keep /usr/share/doc/*/copyright, so their licenses are there too. The same
image gives the same SBOM bytes on every build.

  reprobase sbom ./layout                           # SPDX
  reprobase sbom 127.0.0.1:5000/debian:bookworm --format cyclonedx --arch arm64
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.epilog = EPILOG
    p.add_argument("reference", metavar="REF", help="image: layout, LAYOUT:TAG or registry ref")
    p.add_argument("--format", choices=("spdx", "cyclonedx"), default="spdx")
    p.add_argument("--arch", metavar="ARCH", help="which architecture's SBOM (needed when several)")
    p.add_argument(
        "--json", action="store_true", help="one JSON object: the SBOM with where it came from"
    )


def run(args: argparse.Namespace) -> int:
    found = attached(args.reference)
    want = f"sbom-{args.format}"
    sboms = [a for a in found.artifacts if a.descriptor.annotations.get(ANN_KIND) == want]
    platforms = sorted({a.descriptor.annotations.get(ANN_PLATFORM, "?") for a in sboms})
    if not sboms:
        raise UserError(
            f"{args.reference}: no {args.format} SBOM is attached to {found.subject.digest}",
            hint="images built by reprobase carry one; rebuild older ones with reprobase build",
        )
    if args.arch:
        sboms = [
            a for a in sboms
            if a.descriptor.annotations.get(ANN_PLATFORM, "").split("/")[1:2] == [args.arch]
            or a.descriptor.annotations.get(ANN_PLATFORM) == args.arch
        ]  # fmt: skip
        if not sboms:
            raise UserError(
                f"{args.reference}: no SBOM for {args.arch}", hint=f"it has {', '.join(platforms)}"
            )
    if len({a.descriptor.annotations.get(ANN_PLATFORM) for a in sboms}) > 1:
        raise UserError(
            f"{args.reference} has SBOMs for {', '.join(platforms)}",
            hint="choose one with --arch",
        )
    art = sboms[0]
    if args.json:
        doc = {
            "ok": True,
            "format": args.format,
            "platform": art.descriptor.annotations.get(ANN_PLATFORM),
            "subject": found.subject.digest,
            "artifact": art.descriptor.digest,
            "sbom_digest": sha256_digest(art.payload),
            "sbom": json.loads(art.payload),
        }
        print(json.dumps(doc, sort_keys=True))
    else:
        sys.stdout.buffer.write(art.payload + b"\n")
        sys.stdout.flush()
    return 0
