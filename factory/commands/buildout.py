"""What `build` (a recipe) and `build -f` (a Containerfile) share on the command line:
the byte-path self-test, --push checks and pushes, and the printed outcome.

One place, so that both say the same things the same way (factory.commands.build,
factory.commands.derive, factory.commands.reproduce).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from factory.image.selftest import SelfTest, require_selftest
from factory.pipeline.double import Verdict
from factory.registry.reference import Reference


def add_selftest_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--allow-selftest-mismatch",
        action="store_true",
        help="build even if this machine fails the byte-path self-test (its compressor, tar "
        "writer or JSON encoder gives other bytes than reprobase's known answers): for "
        "experiments only, the images will not reproduce elsewhere; recorded in the report",
    )


def check_byte_path(args: argparse.Namespace) -> SelfTest:
    """The known-answer self-test, before anything is built (factory.image.selftest)."""
    result = require_selftest(allow_mismatch=args.allow_selftest_mismatch)
    if result.overridden:
        print(
            "warning: byte-path self-test failed ("
            + ", ".join(result.mismatches)
            + "): images built here will not reproduce on other machines",
            file=sys.stderr,
        )
    return result


def check_push_targets(refs: list[str], default_tag: str) -> None:
    """Every --push reference parses, and its registry answers and lets us push."""
    from factory.registry import check_push_access_sync, parse_reference

    for text in refs:
        parse_reference(text, default_tag=default_tag)
    check_push_access_sync(refs)


def push_each(
    refs: list[str], default_tag: str, push: Callable[[Reference], str]
) -> list[dict[str, str]]:
    """push(ref) -> digest for every --push reference, in the order given."""
    from factory.registry import parse_reference

    out = []
    for text in refs:
        ref = parse_reference(text, default_tag=default_tag)
        out.append({"reference": str(ref), "digest": push(ref)})
    return out


def print_outcome(
    header: str,
    verdict: Verdict,
    output: object,
    layer_line: Callable[[dict[str, Any]], str | None],
    refused: str,
) -> None:
    """The digests of build A, then what the double build concluded.
    layer_line(digests) -> the line on the layer (None: no layer line); refused: what was
    not done when the builds differ."""
    w = sys.stdout.write
    w(f"\n{header}\n")
    w(f"  index      {verdict.a.index_digest}\n")
    for a in verdict.a.arches:
        d = a.digests()
        w(f"  {a.arch.oci_platform_string():<14} manifest {d['manifest']}\n")
        w(f"  {'':<14} config   {d['config']}\n")
        line = layer_line(d)
        if line is not None:
            w(f"  {'':<14} {line}\n")
    if verdict.b is None:
        w(f"built once (not verified) -> {output}\n")
    elif verdict.reproducible:
        w(
            "reproducible: build B (other host name, TZ, locale, umask, directory"
            f"{', clock +1 day' if verdict.b.env.clock_offset_days else ''}) gave the same "
            f"digests -> {output}\n"
        )
    else:
        w(f"NOT REPRODUCIBLE: the two builds differ; {refused}\n")
        for line in verdict.differences:
            w(f"  {line}\n")
        if verdict.report_text:
            w(verdict.report_text.rstrip() + "\n")
