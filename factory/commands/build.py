"""reprobase build: build an image twice in different environments and compare."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from factory.commands.buildout import (
    add_selftest_argument,
    check_byte_path,
    check_push_targets,
    print_outcome,
    push_each,
)
from factory.commands.images import add_recipes_argument
from factory.commands.rebuildattest import add_signing_arguments, build_signer, sign_provenance
from factory.common import outputs
from factory.common.arch import Architecture
from factory.common.errors import UserError
from factory.common.progress import Progress
from factory.common.runner import require_tool
from factory.image.compress import Compression
from factory.pipeline.build import BuildRequest
from factory.pipeline.double import Verdict, double_build
from factory.pipeline.request import build_request, request_arches
from factory.publish import targets as publishing
from factory.recipes.book import RecipeBook
from factory.recipes.recipe import Recipe, load_recipe
from factory.registry.reference import Reference
from factory.source.snapshot import Timestamp, resolve_pin
from factory.source.upstream import UPSTREAMS, ResolvedSource, SourceChoice, preflight, resolve

HELP = "build an image from a recipe, twice, and check both builds are bit-for-bit identical"
EPILOG = """\
examples:
  reprobase build debian:bookworm                     # today's snapshot, verified twice
  reprobase build debian:trixie-slim --date 2026-11-01 --arch amd64 --output out/trixie
  reprobase build debian:bookworm --once --json       # one build, JSON result on the last line

exit codes: 0 reproducible (or built, with --once), 1 the two builds differ, 2 error.
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.epilog = EPILOG
    p.add_argument(
        "image",
        metavar="IMAGE",
        nargs="?",
        help="recipe name NAME:TAG (see `reprobase images`) or a path to a recipe .toml "
        "(or -f Containerfile instead: an image FROM one of ours)",
    )
    add_recipes_argument(p)
    pin = p.add_mutually_exclusive_group()
    pin.add_argument(
        "--date", metavar="YYYY-MM-DD", help="pin midnight UTC of this day (default: today, UTC)"
    )
    pin.add_argument("--snapshot", metavar="TS", help="exact snapshot timestamp YYYYMMDDTHHMMSSZ")
    add_source_arguments(p)
    add_selftest_argument(p)
    p.add_argument(
        "--arch", metavar="ARCH[,ARCH]", help="architectures to build (default: the recipe's list)"
    )
    p.add_argument(
        "--output",
        metavar="DIR",
        type=Path,
        help="OCI image layout to write (default: out/NAME-TAG); an existing one is "
        "replaced only if reprobase wrote it",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="also replace a reprobase output of another kind at --output",
    )
    p.add_argument(
        "--compression",
        choices=[c.value[0] for c in Compression],
        help="layer compression (default: the recipe's, usually gzip)",
    )
    p.add_argument(
        "--once", action="store_true", help="build once, skip the verifying second build"
    )
    p.add_argument(
        "--push",
        metavar="REF",
        action="append",
        help="after a reproducible double build, push to this registry reference (repeatable); "
        "tags TAG, TAG-YYYYMMDD and TAG-<snapshot> are set, and the build report is "
        "attached as an OCI referrer",
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object with all digests as the last line",
    )
    # --key/--sign-command: the provenance (always kept beside the image) is signed too
    add_signing_arguments(p.add_argument_group("signing the provenance (DSSE)"))
    from factory.commands import derive  # -f Containerfile: its own flags and run()

    derive.add_arguments(p)


def add_source_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group(
        "package source (the first that applies: --mirror, --proxy, "
        "else a cache proxy started for the build)"
    )
    g.add_argument(
        "--mirror",
        metavar="URL",
        help="build from this plain Debian archive (the directory holding dists/ and pool/)",
    )
    g.add_argument(
        "--security-mirror",
        metavar="URL",
        help="with --mirror: the security archive (default: URL-security beside a .../debian "
        "mirror when it answers; 'none' builds without security updates, and the image says so)",
    )
    g.add_argument("--proxy", metavar="URL", help="use this running reprobase cache proxy")
    g.add_argument(
        "--upstream",
        choices=UPSTREAMS,
        default="auto",
        help="what the build's cache proxy fetches from: snapshot.debian.org, "
        "the machine's Debian mirror recorded per timestamp, or auto "
        "(snapshot when reachable) [default: auto]",
    )
    g.add_argument(
        "--cache-dir",
        metavar="DIR",
        type=Path,
        help="the cache proxy's store (default: /var/cache/reprobase/proxy as root)",
    )


def select_arches(recipe: Recipe, arch_arg: str | None) -> tuple[Architecture, ...]:
    names = arch_arg.split(",") if arch_arg is not None else list(recipe.architectures)
    return request_arches(names)


def request_for(
    args: argparse.Namespace, recipe: Recipe, pin: Timestamp, src: ResolvedSource
) -> BuildRequest:
    if args.compression:
        recipe = Recipe(**{**recipe.__dict__, "compression": args.compression})
    return build_request(recipe, select_arches(recipe, args.arch), pin, src)


def source_choice(args: argparse.Namespace) -> SourceChoice:
    return SourceChoice(
        args.mirror, args.security_mirror, args.proxy, args.upstream, args.cache_dir
    )


def run(args: argparse.Namespace) -> int:
    if getattr(args, "file", None) is not None:
        from factory.commands import derive

        return derive.run(args)
    if args.image is None:
        raise UserError("build needs IMAGE (a recipe) or -f Containerfile", hint="see --help")
    if args.push and args.once:
        raise UserError("--push needs the verifying second build", hint="drop --once")
    if args.push and args.allow_selftest_mismatch:
        raise UserError(
            "--allow-selftest-mismatch is for experiments: its images are never pushed",
            hint="drop --push, or build on a machine that passes the self-test",
        )
    byte_path = check_byte_path(args)
    require_tool("mmdebstrap")
    recipe = load_recipe(args.image, RecipeBook.resolve(args.recipes))
    pin = resolve_pin(args.date, args.snapshot)
    output = args.output or Path("out") / f"{recipe.name}-{recipe.tag}"
    outputs.check(output, outputs.OutputKind.LAYOUT, force=args.force)
    if not args.once:  # where a mismatch's evidence goes
        evidence = output.with_name(output.name + ".mismatch")
        outputs.check(evidence, outputs.OutputKind.MISMATCH, force=args.force)
    # Everything else is refused now too, not after the proxy started or the double build.
    select_arches(recipe, args.arch)
    source_choice(args).validate()
    if args.push:
        check_push_targets(args.push, recipe.tag)
    signer = build_signer(args)
    progress = Progress()
    with resolve(source_choice(args), pin, Path(output).parent, recipe.suite) as src:
        req = request_for(args, recipe, pin, src)
        preflight(src, recipe.suite)  # the archive answers for this pin, before any build
        progress.say(f"{recipe.ref}: snapshot {pin} (SOURCE_DATE_EPOCH={pin.epoch})")
        meter = src.proxy.upstream_bytes if src.proxy else None
        progress.set_meter(meter)
        verdict = double_build(
            req, output, once=args.once, progress=progress, meter=meter, force=args.force
        )
    result = summary(verdict, req, output, progress)
    result["compressor_selftest"] = byte_path.to_json()
    if signer is not None and (verdict.b is None or verdict.reproducible):
        result["signed_provenance"] = sign_provenance(output, signer)
    if args.push and verdict.reproducible:
        result["pushed"] = push_all(args.push, output, req, verdict, progress)
    print_human(result, verdict)
    if args.json:
        print(json.dumps(result, sort_keys=True))
    return 0 if verdict.b is None or verdict.reproducible else 1


def summary(
    verdict: Verdict, req: BuildRequest, output: Path, progress: Progress
) -> dict[str, Any]:
    out = verdict.to_json()
    out.update(
        {
            "image": req.recipe.ref,
            "snapshot": req.pin.text,
            "source_date_epoch": req.pin.epoch,
            "packages_from": req.provenance.packages_from.value,
            "output": str(output) if verdict.b is None or verdict.reproducible else None,
            "upstream_bytes": sum(verdict.upstream_bytes.values())
            if verdict.upstream_bytes
            else None,
            "durations": progress.durations,
            "seconds": round(progress.elapsed(), 3),
        }
    )
    return out


def push_all(
    refs: list[str], layout: Path, req: BuildRequest, verdict: Verdict, progress: Progress
) -> list[dict[str, str]]:
    def push(ref: Reference) -> str:
        tag = ref.tag or req.recipe.tag
        extra = [f"{tag}-{req.pin.day}", f"{tag}-{req.pin.text}"]
        with progress.stage(f"push {ref}"):
            return publishing.push(layout, str(ref), extra, verdict.to_json(), progress.say)

    return push_each(refs, req.recipe.tag, push)


def print_human(result: dict[str, Any], verdict: Verdict) -> None:
    def layer(d: dict[str, Any]) -> str:
        return (
            f"layer    {d['layer']} ({d['size'] / 1e6:.1f} MB, "
            f"{d['uncompressed_size'] / 1e6:.1f} MB uncompressed)"
        )

    header = f"{result['image']} @ {result['snapshot']}"
    print_outcome(header, verdict, result["output"], layer, "nothing was written to the output")
    w = sys.stdout.write
    if result.get("upstream_bytes") is not None:
        w(f"upstream bytes fetched by the proxy: {result['upstream_bytes']}\n")
