"""reprobase sbom: print an image's SBOM (SPDX 2.3 or CycloneDX 1.6 JSON)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

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

An image that carries no SBOM (built elsewhere, or by an older reprobase) gets one made
from its own layers (dpkg status, copyright files; whiteouts of derived images applied),
with a warning: without the .debs' SHA-256, which only the build can know.

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


def _from_layers(args: argparse.Namespace, digest: str) -> int:
    """No SBOM attached (an older or foreign image): made from the image's own layers."""
    from factory.attest import sbom_cyclonedx, sbom_spdx
    from factory.attest.fromimage import sbom_from_image
    from factory.common.paths import scratch
    from factory.registry.fetch import fetch

    with scratch("sbom") as work:
        layout, tag = fetch(args.reference, Path(work))
        platform, sbom = sbom_from_image(layout, tag, args.arch)
    if not sbom.packages:
        raise UserError(
            f"{args.reference}: no SBOM is attached to {digest} and its layers hold no dpkg status",
            hint="is it a Debian image?",
        )
    print(
        f"warning: no {args.format} SBOM is attached to {digest}: made from the image's "
        "layers, without the .debs' SHA-256 (only a reprobase build records them)",
        file=sys.stderr,
    )
    payload = (sbom_spdx if args.format == "spdx" else sbom_cyclonedx).render(sbom)
    _print(args, payload, platform, digest, None)
    return 0


def _print(
    args: argparse.Namespace,
    payload: bytes,
    platform: str | None,
    subject: str,
    artifact: str | None,
) -> None:
    if args.json:
        doc = {
            "ok": True,
            "format": args.format,
            "platform": platform,
            "subject": subject,
            "artifact": artifact,
            "attached": artifact is not None,
            "sbom_digest": sha256_digest(payload),
            "sbom": json.loads(payload),
        }
        print(json.dumps(doc, sort_keys=True))
    else:
        sys.stdout.buffer.write(payload + b"\n")
        sys.stdout.flush()


def run(args: argparse.Namespace) -> int:
    found = attached(args.reference)
    want = f"sbom-{args.format}"
    sboms = [a for a in found.artifacts if a.descriptor.annotations.get(ANN_KIND) == want]
    platforms = sorted({a.descriptor.annotations.get(ANN_PLATFORM, "?") for a in sboms})
    if not sboms:
        return _from_layers(args, found.subject.digest)
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
    platform = art.descriptor.annotations.get(ANN_PLATFORM)
    _print(args, art.payload, platform, found.subject.digest, art.descriptor.digest)
    return 0
