"""reprobase reproduce: rebuild a published image from its own labels and compare."""

from __future__ import annotations

import argparse
import json
import sys

from factory.commands.build import add_source_arguments, source_choice
from factory.commands.buildout import add_selftest_argument, check_byte_path
from factory.commands.rebuildattest import add_attest_arguments, attest, attested_line, prepare
from factory.common.progress import Progress
from factory.pipeline import toolversion
from factory.pipeline.reproduce import reproduce

HELP = "rebuild an image from the recipe and pins recorded inside it, and compare digests"
EPILOG = """\
REF is a registry reference (127.0.0.1:5000/debian:bookworm, name@sha256:...),
an OCI layout directory, LAYOUT:TAG or oci:DIR:TAG. No checkout of the recipe is needed:
the image carries its recipe, snapshot timestamp and tool versions.

With --attest --key KEY the outcome (identical or differs, this rebuilder's tool versions,
when) is signed as a DSSE envelope over an in-toto statement; --push attaches it to REF
as an OCI referrer (the image's digest does not change), where `reprobase verify REF
--trust DIR --require N` counts it.

exit codes: 0 reproduced (identical), 1 differs, 2 error.
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.epilog = EPILOG
    p.add_argument("reference", metavar="REF", help="image to reproduce")
    add_source_arguments(p)
    add_selftest_argument(p)
    p.add_argument(
        toolversion.FLAG,
        default=toolversion.CURRENT,
        metavar="current|recorded|VERSION",
        help="rebuild with this reprobase (default: current); recorded: the version the "
        "image records, installed once into a cached venv from pip's configured index",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    add_attest_arguments(p)


def run(args: argparse.Namespace) -> int:
    from factory.commands.derive import reproduce_if_derived  # images built with build -f

    derived = reproduce_if_derived(args)
    if derived is not None:
        return derived
    signer = prepare(args)  # a bad key is refused before the rebuild
    toolversion.maybe_hand_over(args.reference, args.tool_version, sys.argv[1:])
    byte_path = check_byte_path(args)
    result = reproduce(args.reference, source_choice(args), Progress())
    attestation = attest(args, result, signer) if signer is not None else None
    if attestation is not None:
        print(attested_line(attestation))
    for w in result.warnings:
        print(f"warning: {w}", file=sys.stderr)
    print(result.verdict())
    if not result.identical and result.diff_summary:
        print(result.diff_summary)
    if args.json:
        print(
            json.dumps(
                {
                    **result.to_json(),
                    "compressor_selftest": byte_path.to_json(),
                    "attestation": attestation,
                },
                sort_keys=True,
            )
        )
    return 0 if result.identical else 1
