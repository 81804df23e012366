"""`reprobase diff A B`: explain why two images differ (exit 0 same, 1 differ, 2 error)."""

from __future__ import annotations

import argparse
import json
import sys

from factory.common.errors import UserError
from factory.diffing import diff_images, render_summary, render_text
from factory.diffing.collect import DEFAULT_LIMIT

HELP = (
    "explain why two images differ: index, manifests, configs, then layers file by file "
    "(A and B: OCI layout directories, OCI/docker archive tars, or registry references); "
    "exit 0 identical, 1 different, 2 error"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("a", metavar="A", help="first image (LAYOUT, LAYOUT:TAG, FILE.tar or REF)")
    parser.add_argument("b", metavar="B", help="second image")
    parser.add_argument(
        "--semantic",
        action="store_true",
        help="ignore what does not change behaviour (timestamps, tar entry order and header "
        "format, compression, history) and say what was ignored",
    )
    parser.add_argument("--json", action="store_true", help="print the full report as JSON")
    parser.add_argument(
        "--source-date-epoch",
        type=int,
        default=None,
        metavar="SECONDS",
        help="flag mtimes newer than this (default: read from the image config)",
    )
    parser.add_argument(
        "--limit",
        type=int,
        default=DEFAULT_LIMIT,
        help=f"differences reported in full; more are counted (default {DEFAULT_LIMIT})",
    )
    parser.add_argument("--summary", action="store_true", help="print only the summary")


def run(args: argparse.Namespace) -> int:
    if args.limit < 0:
        raise UserError(f"--limit {args.limit} is negative", hint="give 0 or more")
    report = diff_images(
        args.a,
        args.b,
        semantic=args.semantic,
        source_date_epoch=args.source_date_epoch,
        limit=args.limit,
    )
    if args.json:
        sys.stdout.write(json.dumps(report.to_json(), indent=2, ensure_ascii=False) + "\n")
    elif args.summary:
        sys.stdout.write(render_summary(report) + "\n")
    else:
        sys.stdout.write(render_text(report))
    return 0 if report.identical else 1
