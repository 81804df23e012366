"""reprobase merge: per-architecture layouts -> one multi-arch OCI layout."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from factory.attest.store import copy_sboms
from factory.common import outputs
from factory.image.merge import merge_layouts
from factory.image.oci import split_layout

HELP = "merge per-architecture OCI layouts of one image into one multi-arch index"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "layouts",
        metavar="LAYOUT",
        nargs="+",
        help="per-architecture layouts (LAYOUT:TAG names one image of a layout)",
    )
    p.add_argument(
        "--output",
        metavar="DIR",
        type=Path,
        required=True,
        help="the merged layout; an existing one is replaced only if reprobase wrote it",
    )
    p.add_argument(
        "--force", action="store_true", help="also replace a reprobase output of another kind"
    )
    p.add_argument("--json", action="store_true", help="print the index digest as JSON")


def run(args: argparse.Namespace) -> int:
    outputs.check(args.output, outputs.OutputKind.LAYOUT, force=args.force)
    idx = merge_layouts([split_layout(t) for t in args.layouts], args.output, force=args.force)
    for layout, tag in (split_layout(t) for t in args.layouts):
        copy_sboms(layout, tag, args.output, idx)  # each platform's SBOMs refer to the merge
    print(
        json.dumps({"index_digest": idx.digest, "output": str(args.output)})
        if args.json
        else f"merged into {args.output}: index {idx.digest}"
    )
    return 0
