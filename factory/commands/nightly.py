"""reprobase nightly: build, verify, publish (only on agreement), re-verify, report."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from factory.common import outputs, shipped
from factory.common.paths import Paths
from factory.image.selftest import require_selftest
from factory.nightly.config import load_config
from factory.nightly.run import NightlyResult, run_nightly, validate_night
from factory.pipeline.slots import Machine, default_jobs
from factory.source.snapshot import resolve_pin

HELP = "build every configured image twice, publish those that reproduced, re-verify old ones"
EPILOG = """\
config: --config FILE, else $XDG_CONFIG_HOME/reprobase/nightly.toml (not as root), else
  /etc/reprobase/nightly.toml, else the shipped nightly.toml (see `reprobase paths`)
  (the local default: snapshot.debian.org through the cache proxy, or the machine's
  Debian mirror recorded by the proxy when snapshot cannot be reached, published to a
  local OCI store). schedules/publish.toml is the strict configuration for scheduled
  publication: it fails instead of falling back to a mirror.

exit codes: 0 every image reproduced (and published), 1 some image differed or failed, 2 error.
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.epilog = EPILOG
    p.add_argument("--config", type=Path, metavar="FILE", help="nightly configuration (TOML)")
    p.add_argument("--date", metavar="YYYY-MM-DD", help="pin this day's snapshot (default: today)")
    p.add_argument(
        "--only", action="append", metavar="IMAGE", help="build only this image (repeatable)"
    )
    p.add_argument("--arch", metavar="ARCH[,ARCH]", help="override the architectures")
    p.add_argument(
        "--output-layout",
        type=Path,
        metavar="DIR",
        help="CI mode: write the verified layout of the (single) image here and "
        "publish nothing (per-architecture jobs, then `reprobase merge`)",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="let --output-layout replace a reprobase output of another kind",
    )
    p.add_argument(
        "--jobs",
        type=int,
        metavar="N",
        help="builds at once over all images, architectures and builds A/B "
        "(default: one per core, as many as memory and disk hold; a --jobs the machine "
        "cannot hold is refused)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")


def default_config() -> Path:
    found = [p for p in Paths.for_user().nightly_configs if p.is_file()]
    return found[0] if found else shipped.schedule("nightly.toml")


def print_summary(result: NightlyResult) -> None:
    w = sys.stdout.write
    w(f"\nnightly {result.run_id}\n")
    w(f"{'kind':<9} {'image':<26} {'arch':<7} {'verdict':<13} {'digest':<20} published\n")
    for r in result.records:
        digest = (r.index_digest or "-")[:19]
        w(
            f"{r.kind:<9} {r.image:<26} {r.arch:<7} {r.verdict:<13} {digest:<20} "
            f"{len(r.published)} refs\n"
        )
    for r in result.failed:
        first = r.message.splitlines()[0] if r.message else ""
        w(f"FAILED {r.kind} {r.image} {r.arch}: {r.verdict}: {first}\n")
    if result.report:
        w(f"report: {result.report}\n")


def run(args: argparse.Namespace) -> int:
    # A night that would publish images nobody else can reproduce is refused up front.
    require_selftest()
    cfg = load_config(args.config or default_config())
    pin = resolve_pin(args.date, None)
    arches = args.arch.split(",") if args.arch is not None else None
    if args.output_layout and len(args.only or []) != 1:
        from factory.common.errors import UserError

        raise UserError("--output-layout needs exactly one --only IMAGE")
    machine = Machine.probe()
    jobs = default_jobs(machine) if args.jobs is None else args.jobs
    machine.check(jobs)
    validate_night(cfg, args.only or (), arches, args.output_layout)
    if args.output_layout:
        outputs.check(
            args.output_layout, outputs.OutputKind.LAYOUT, force=args.force, flag="--output-layout"
        )
    else:
        outputs.check(cfg.report, outputs.OutputKind.REPORT, flag="[nightly] report")
    result = run_nightly(
        cfg,
        pin,
        only=args.only or (),
        arches=arches,
        output_layout=args.output_layout,
        force=args.force,
        jobs=jobs,
    )
    print_summary(result)
    if args.json:
        print(json.dumps(result.to_json(), sort_keys=True))
    return 1 if result.failed else 0
