"""reprobase build -f Containerfile: an image FROM one of ours, double-built, bytes ours.

`factory.commands.build` hands over here when -f is given; this module turns the
flags into a DerivedRequest (factory.pipeline.derived) and prints the result.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from factory.commands.buildout import (
    check_byte_path,
    check_push_targets,
    print_outcome,
    push_each,
)
from factory.common import outputs
from factory.common.arch import Architecture, require_emulation
from factory.common.errors import UserError
from factory.common.paths import scratch
from factory.common.progress import Progress
from factory.derive import context as contexts
from factory.derive.base import BaseImage, resolve_base
from factory.derive.buildah import buildah_version
from factory.derive.containerfile import parse, parse_build_args
from factory.image.compress import Compression
from factory.pipeline.derived import (
    DerivedRequest,
    context_artifact,
    double_build_derived,
    make_request,
    source_choice_for,
)
from factory.pipeline.double import Verdict
from factory.registry.reference import Reference
from factory.source.snapshot import Timestamp
from factory.source.upstream import SourceChoice, preflight, resolve

# flags of `build` that mean a base-image recipe build, refused with -f
BASE_ONLY = (("image", "IMAGE"), ("date", "--date"), ("snapshot", "--snapshot"),
             ("mirror", "--mirror"), ("security_mirror", "--security-mirror"))  # fmt: skip


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("derived images (reprobase build -f Containerfile, docs/derived.md)")
    g.add_argument(
        "-f", "--file", metavar="CONTAINERFILE", type=Path,
        help="build this Containerfile FROM a reprobase image (instead of a recipe)",
    )  # fmt: skip
    g.add_argument(
        "--context", metavar="DIR", type=Path,
        help="the build context (default: the Containerfile's directory); recorded with "
        "the image as a canonical tar",
    )  # fmt: skip
    g.add_argument(
        "--build-arg", metavar="K=V", action="append", default=[],
        help="a build argument (repeatable); recorded in the image. "
        "SOURCE_DATE_EPOCH=N overrides the base's",
    )  # fmt: skip
    g.add_argument(
        "--tag",
        metavar="NAME:TAG",
        help="the image's name (default: DIR:latest, DIR the Containerfile's directory)",
    )


def _refuse_base_flags(args: argparse.Namespace) -> None:
    for attr, flag in BASE_ONLY:
        if getattr(args, attr, None):
            raise UserError(
                f"{flag} is for recipe builds; with -f the base image's pin applies",
                hint=f"drop {flag}: the Containerfile's FROM names the pinned base",
            )


def _tag(args: argparse.Namespace, file: Path) -> str:
    tag = args.tag or f"{file.resolve().parent.name or 'derived'}:latest"
    name, _, t = tag.rpartition(":")
    if not name or not t or "/" in t or any(c.isspace() for c in tag):
        raise UserError(f"--tag {tag!r}: expected NAME:TAG", hint="e.g. --tag myapp:1.0")
    return tag


def _arches(args: argparse.Namespace, base: BaseImage) -> tuple[Architecture, ...]:
    if args.arch is None:
        native = Architecture.native()
        return (
            (native,)
            if any(p.arch is native for p in base.platforms)
            else (base.platforms[0].arch,)
        )
    arches = Architecture.parse_list(args.arch.split(","))
    if not arches:
        raise UserError("no architecture selected", hint="e.g. --arch amd64")
    for a in arches:
        require_emulation(a, f"for the {a.debian} steps")
    return arches


def run(args: argparse.Namespace) -> int:
    _refuse_base_flags(args)
    if args.push and args.once:
        raise UserError("--push needs the verifying second build", hint="drop --once")
    if args.push and args.allow_selftest_mismatch:
        raise UserError("--allow-selftest-mismatch is for experiments: its images are never "
                        "pushed", hint="drop --push")  # fmt: skip
    file: Path = args.file
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"-f {file}: cannot read it ({exc})") from None
    build_args = parse_build_args(args.build_arg)
    cf = parse(text, build_args)
    ctx = contexts.pack(args.context or file.parent)
    tag = _tag(args, file)
    output = args.output or Path("out") / tag.replace(":", "-").replace("/", "-")
    outputs.check(output, outputs.OutputKind.LAYOUT, force=args.force)
    if not args.once:
        outputs.check(output.with_name(output.name + ".mismatch"), outputs.OutputKind.MISMATCH,
                      force=args.force)  # fmt: skip
    choice = SourceChoice(None, None, args.proxy, args.upstream, args.cache_dir)
    choice.validate()
    if args.push:
        check_push_targets(args.push, tag.rpartition(":")[2])
    byte_path = check_byte_path(args)
    progress = Progress()
    with scratch("base") as tmp:
        base = resolve_base(cf.base, Path(tmp))
        arches = _arches(args, base)
        progress.say(f"FROM {base.title} {base.digest} (snapshot {base.snapshot})")
        pin = Timestamp.parse(base.snapshot)
        with resolve(
            source_choice_for(base.packages_from, choice), pin, Path(tmp), base.suite
        ) as src:
            if base.suite:
                preflight(src, base.suite)
            compression = Compression.parse(args.compression or "gzip")
            req = make_request(text, build_args, base, arches, tag, ctx, src.apt.proxy, compression)
            verdict = double_build_derived(
                req, output, once=args.once, progress=progress, force=args.force
            )
    result = summary(verdict, req, output, progress)
    result["compressor_selftest"] = byte_path.to_json()
    if args.push and verdict.reproducible:
        result["pushed"] = push_all(args.push, output, req, result, progress)
    print_human(result, verdict)
    if args.json:
        print(json.dumps(result, sort_keys=True))
    return 0 if verdict.b is None or verdict.reproducible else 1


def summary(
    verdict: Verdict, req: DerivedRequest, output: Path, progress: Progress
) -> dict[str, Any]:
    out = verdict.to_json()
    ok = verdict.b is None or verdict.reproducible
    out.update(
        {
            "kind": "derived",
            "image": req.tag,
            "base": req.base.reference,
            "base_digest": req.base.digest,
            "snapshot": req.base.snapshot,
            "source_date_epoch": req.source_date_epoch,
            "context_digest": req.context.digest,
            "context_embedded": req.context_embedded is not None,
            "buildah": buildah_version(),
            "output": str(output) if ok else None,
            "durations": progress.durations,
            "seconds": round(progress.elapsed(), 3),
        }
    )
    return out


def push_all(
    refs: list[str], layout: Path, req: DerivedRequest, report: dict[str, Any], progress: Progress
) -> list[dict[str, str]]:
    from factory.image.selfdesc import top_descriptor
    from factory.publish import targets as publishing
    from factory.registry import attach_referrer_sync

    def push(ref: Reference) -> str:
        with progress.stage(f"push {ref}"):
            digest = publishing.push(layout, str(ref), [], report, progress.say)
            art = context_artifact(layout, req.spec())
            if art is not None:  # the build context, as a referrer of the image
                payload, media_type, artifact_type = art
                attach_referrer_sync(
                    str(ref), top_descriptor(layout), artifact_type, payload, media_type,
                    {"org.opencontainers.image.title": "reprobase build context"},
                )  # fmt: skip
        return digest

    return push_each(refs, req.tag.rpartition(":")[2], push)


def print_human(result: dict[str, Any], verdict: Verdict) -> None:
    def layer(d: dict[str, Any]) -> str | None:
        return f"new layer {d['layer']} ({d['size'] / 1e6:.2f} MB)" if d["layer"] else None

    header = f"{result['image']} FROM {result['base']} ({result['base_digest']})"
    print_outcome(header, verdict, result["output"], layer, "nothing was written or pushed")


def reproduce_if_derived(args: argparse.Namespace) -> int | None:
    """`reprobase reproduce REF` of a derived image (None: REF is not one, carry on)."""
    from factory.derive.describe import is_derived
    from factory.pipeline.derived import reproduce_reference, top_annotations

    if not is_derived(top_annotations(args.reference)):
        return None
    if getattr(args, "attest", False):
        raise UserError(
            "--attest is not supported for derived images yet",
            hint="reproduce without --attest",
        )
    byte_path = check_byte_path(args)
    choice = SourceChoice(None, None, args.proxy, args.upstream, args.cache_dir)
    result = reproduce_reference(args.reference, choice, Progress())
    for w in result.warnings:
        print(f"warning: {w}", file=sys.stderr)
    print(result.verdict())
    if not result.identical and result.diff_summary:
        print(result.diff_summary)
    if args.json:
        doc = {**result.to_json(), "compressor_selftest": byte_path.to_json()}
        print(json.dumps(doc, sort_keys=True))
    return 0 if result.identical else 1
