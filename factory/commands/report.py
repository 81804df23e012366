"""`reprobase report`: write the static dashboard (index.html, results.json) from the history."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from factory.common import outputs
from factory.common import paths as defaults
from factory.common.errors import UserError
from factory.common.tomlcheck import Table, read_toml, table_of
from factory.nightly.config import CONFIG_HINT, NIGHTLY_TYPES
from factory.report import write_report
from factory.report.history import History

HELP = "write the static HTML dashboard and results.json from the nightly history"

EPILOG = """\
Each path is resolved in this order: the flag, then the [nightly] table of
--config (keys "history" and "report"), then the default:
  history  /var/lib/reprobase/history.sqlite as root,
           else $XDG_DATA_HOME/reprobase/history.sqlite (~/.local/share)
  output   /var/lib/reprobase/report as root, else $XDG_DATA_HOME/reprobase/report
  (where `reprobase nightly` writes them by default; see `reprobase paths`)

The page is self-contained (inline CSS and SVG, no script) and works offline;
the same history always gives the same bytes.

examples:
  reprobase report --config /etc/reprobase/publish.toml
  reprobase report --history history.sqlite --output public/ --json
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.epilog = EPILOG
    p.add_argument("--history", type=Path, metavar="FILE", help="history sqlite file")
    p.add_argument("--output", type=Path, metavar="DIR", help="directory to write the report to")
    p.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="nightly config (TOML) whose [nightly] history/report keys give the paths",
    )
    p.add_argument("--title", default="reprobase", help="page title (default: reprobase)")
    p.add_argument(
        "--force", action="store_true", help="also replace a reprobase output of another kind"
    )
    p.add_argument(
        "--json", action="store_true", help="print one JSON object (paths, counts) instead"
    )


@dataclass(frozen=True)
class ReportPaths:
    history: Path
    output: Path


def default_paths(where: defaults.Paths) -> ReportPaths:
    """The nightly's own defaults (factory.common.paths): report reads what nightly wrote."""
    return ReportPaths(where.history, where.report)


def config_paths(config: Path) -> tuple[Path | None, Path | None]:
    """The [nightly] table's history and report keys (either may be absent)."""
    table = table_of(read_toml(config, "config", CONFIG_HINT), "nightly", str(config), CONFIG_HINT)
    # the same file drives the nightly, which refuses unknown keys too
    Table(str(config), "nightly.").check_types(table, NIGHTLY_TYPES)
    found: list[Path | None] = []
    for key in ("history", "report"):
        value = table.get(key)
        if value is not None and not (isinstance(value, str) and value):
            raise Table(str(config), "nightly.").error(key, "must be a path, not empty")
        found.append(Path(value) if value else None)
    return found[0], found[1]


def resolve_paths(args: argparse.Namespace) -> ReportPaths:
    """Flag, then config file, then the default for this user."""
    default = default_paths(defaults.Paths.for_user())
    from_config: tuple[Path | None, Path | None] = (None, None)
    if args.config is not None:
        from_config = config_paths(args.config)
    return ReportPaths(
        history=args.history or from_config[0] or default.history,
        output=args.output or from_config[1] or default.output,
    )


def run(args: argparse.Namespace) -> int:
    paths = resolve_paths(args)
    outputs.check(paths.output, outputs.OutputKind.REPORT, force=args.force)
    if not paths.history.is_file():
        raise UserError(
            f"no history at {paths.history}",
            hint="run 'reprobase nightly' first, or pass --history FILE",
        )
    with History(paths.history, readonly=True) as history:
        index = write_report(history, paths.output, title=args.title, force=args.force)
        records = len(history.records())
        images = len(history.images())
    if args.json:
        doc = {
            "history": str(paths.history),
            "index": str(index),
            "results": str(index.with_name("results.json")),
            "images": images,
            "records": records,
        }
        print(json.dumps(doc, sort_keys=True))
    else:
        print(index)
    sys.stdout.flush()
    return 0
