"""`reprobase publish LAYOUT REF...`: push a built image to registries and/or an archive."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from factory.attest.push import push_attestations
from factory.common import outputs
from factory.common.errors import UserError
from factory.image.oci import ANN_REF_NAME, read_index, split_layout
from factory.image.selfdesc import top_descriptor
from factory.registry.archive import write_archive
from factory.registry.auth import ENV_AUTH_FILE, ENV_PASSWORD, ENV_USER
from factory.registry.push import check_tags, push_layout_sync
from factory.registry.reference import INSECURE_ENV, parse_reference

HELP = "push an OCI image layout to registries, or write a tar for docker/podman load"

EPILOG = f"""\
Push order: blobs (skipped when present, mounted across repositories of one
registry), then manifests, then the index; tags move last, so a failure never
moves a tag. The registry's digests equal the layout's.

Options go after LAYOUT and the REFs (argparse does not mix them).
Registries on localhost, 127.0.0.0/8 and ::1 are spoken to over plain HTTP.

environment:
  {ENV_USER}, {ENV_PASSWORD}
                        credentials for every registry (otherwise the auth files:
                        ${ENV_AUTH_FILE} or $REGISTRY_AUTH_FILE,
                        $XDG_RUNTIME_DIR/containers/auth.json,
                        ~/.config/containers/auth.json, ~/.docker/config.json,
                        as written by 'podman login' and 'docker login')
  {INSECURE_ENV}=host:port,...
                        more registries to speak plain HTTP to
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EPILOG
    parser.add_argument(
        "layout",
        metavar="LAYOUT",
        help="OCI image layout directory, or LAYOUT:TAG for one image of a layout with several",
    )
    parser.add_argument(
        "refs",
        nargs="*",
        metavar="REF",
        help="destination, e.g. registry.example.org/debian:bookworm (several allowed)",
    )
    parser.add_argument(
        "--tag",
        action="append",
        default=[],
        metavar="TAG",
        help="also tag every REF with TAG (repeatable), e.g. bookworm-20250101",
    )
    parser.add_argument(
        "--output-archive",
        type=Path,
        metavar="FILE",
        help="also write a tar that 'docker load' and 'podman load' accept",
    )
    parser.add_argument(
        "--archive-name",
        metavar="NAME",
        help="image name in the archive, e.g. reprobase/debian:bookworm (default: the first "
        "REF, else the layout's image name when it is a full name with a '/')",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="let --output-archive replace a reprobase output of another kind",
    )
    parser.add_argument("--json", action="store_true", help="print a JSON summary line on stdout")


def _archive_name(layout: Path, refs: list[str], explicit: str | None) -> str:
    if explicit:
        return explicit
    if refs:
        return refs[0]
    entries = read_index(layout).get("manifests", [])
    names = [e.get("annotations", {}).get(ANN_REF_NAME) for e in entries]
    if len(entries) == 1 and names[0] and "/" in names[0]:
        return str(names[0])
    raise UserError(
        "the archive needs an image name",
        hint="add --archive-name NAME, e.g. --archive-name reprobase/debian:bookworm",
    )


def _progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    layout, image_tag = split_layout(args.layout)
    if image_tag is not None:
        top_descriptor(layout, image_tag)  # refuse an unknown tag before anything else
    refs: list[str] = list(args.refs)
    if not refs and args.output_archive is None:
        raise UserError("nothing to do", hint="give a destination REF or --output-archive FILE")
    check_tags(args.tag)  # before the archive and before any push: never half done
    for ref in refs:  # a bad reference is refused before anything is written
        parse_reference(ref, default_tag=None)
    summary: dict[str, object] = {}
    if args.output_archive is not None:
        kind, flag = outputs.OutputKind.ARCHIVE, "--output-archive"
        outputs.check(args.output_archive, kind, force=args.force, flag=flag)
        name = _archive_name(layout, refs, args.archive_name)
        write_archive(layout, args.output_archive, name, force=args.force, image_tag=image_tag)
        _progress(f"archive written: {args.output_archive}")
        summary["archive"] = str(args.output_archive)
    if refs:
        result = push_layout_sync(
            layout, refs, tags=args.tag, progress=_progress, image_tag=image_tag
        )
        _progress(
            f"pushed {result.digest}: {result.uploaded_blobs} blobs uploaded "
            f"({result.bytes_uploaded / 1e6:.1f} MB), {result.mounted_blobs} mounted, "
            f"{result.skipped_blobs} already present"
        )
        summary.update(result.to_json())
        attached = [push_attestations(layout, ref, image_tag) for ref in refs]
        _progress(f"attestations attached as referrers: {len(attached[0])} per reference")
        summary["attestations"] = attached[0]
    if args.json:
        print(json.dumps(summary, sort_keys=True))
    return 0
