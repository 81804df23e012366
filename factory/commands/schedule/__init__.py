"""`reprobase schedule`: install or show the nightly's systemd timer or cron entry.

units    the unit and cron texts (pure); schedules/ holds them rendered
install  file writes and systemctl calls, carried out or only shown
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from factory.commands.schedule import install, units
from factory.common.errors import UserError
from factory.nightly.config import load_config

HELP = "install or show the nightly schedule (systemd timer or cron entry)"

EPILOG = f"""\
The schedule runs 'reprobase nightly --config FILE' daily at
{units.HOUR:02d}:{units.MINUTE:02d} UTC (after snapshot.debian.org's midnight import), then
'reprobase report --config FILE'. They run the 'reprobase' script installed
next to the running Python (this installation).

examples:
  reprobase schedule install --systemd                       # as root
  reprobase schedule install --systemd --dry-run
  reprobase schedule install --systemd --prefix /tmp/units --no-enable
  reprobase schedule install --cron
  reprobase schedule show --cron
"""


def _common(p: argparse.ArgumentParser) -> None:
    kind = p.add_mutually_exclusive_group()
    kind.add_argument("--systemd", action="store_true", help="systemd service + timer")
    kind.add_argument("--cron", action="store_true", help="an /etc/cron.d entry")
    p.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help=f"nightly config the schedule runs (default: {units.DEFAULT_CONFIG})",
    )


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.epilog = EPILOG
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    inst = sub.add_parser("install", help="write the schedule and enable it")
    _common(inst)
    inst.add_argument(
        "--prefix",
        type=Path,
        metavar="DIR",
        help="where to write (default: /etc/systemd/system, or /etc/cron.d with --cron)",
    )
    inst.add_argument(
        "--no-enable",
        action="store_true",
        help="only write the units: no systemctl daemon-reload / enable --now",
    )
    inst.add_argument("--dry-run", action="store_true", help="print what would be done")
    show = sub.add_parser("show", help="print the units and the cron entry")
    _common(show)


def current_reprobase() -> Path:
    """The console script of this installation, next to the running interpreter."""
    script = Path(sys.executable).with_name("reprobase")
    if not (script.is_file() and script.stat().st_mode & 0o111):
        raise UserError(
            f"no reprobase script next to {sys.executable}",
            hint="install reprobase into this environment: pip install -e .",
        )
    return script.absolute()


def _paths(config: Path | None) -> units.UnitPaths:
    try:
        paths = units.UnitPaths(current_reprobase(), (config or units.DEFAULT_CONFIG).absolute())
        units.service(paths)  # validates both paths
    except ValueError as exc:
        raise UserError(str(exc), hint="use a path without spaces or shell characters") from exc
    return paths


def plan(args: argparse.Namespace, paths: units.UnitPaths) -> list[install.Action]:
    if args.cron:
        prefix = args.prefix or Path("/etc/cron.d")
        return [install.WriteFile(prefix / units.CRON_NAME, units.cron(paths))]
    prefix = args.prefix or Path("/etc/systemd/system")
    actions: list[install.Action] = [
        install.WriteFile(prefix / name, text) for name, text in units.systemd_units(paths).items()
    ]
    if not args.no_enable:
        actions.append(install.RunCommand(("systemctl", "daemon-reload")))
        actions.append(install.RunCommand(("systemctl", "enable", "--now", units.TIMER_NAME)))
    return actions


def run_install(args: argparse.Namespace) -> int:
    if not (args.systemd or args.cron):
        raise UserError("say what to install", hint="pass --systemd or --cron")
    paths = _paths(args.config)
    # A dry run checks what the real run checks: it must not promise what would be refused.
    if not paths.config.is_file():
        raise UserError(
            f"config {paths.config} does not exist",
            hint=f"copy schedules/publish.toml to {units.DEFAULT_CONFIG} and edit it, "
            "or pass --config FILE",
        )
    load_config(paths.config)  # a schedule of a config the nightly refuses would fail nightly
    actions = plan(args, paths)
    for action in actions:
        if isinstance(action, install.WriteFile):
            install.check_writable_dir(action.path.parent, probe=not args.dry_run)
    if args.systemd and not args.no_enable:
        install.check_systemd_running()
    prefix = "would " if args.dry_run else ""
    for line in install.apply(actions, dry_run=args.dry_run):
        print(prefix + line)
    return 0


def run_show(args: argparse.Namespace) -> int:
    paths = _paths(args.config)
    both = not (args.systemd or args.cron)
    out: list[str] = []
    if args.systemd or both:
        for name, text in units.systemd_units(paths).items():
            out.append(f"# /etc/systemd/system/{name}\n{text}")
    if args.cron or both:
        out.append(f"# /etc/cron.d/{units.CRON_NAME}\n{units.cron(paths)}")
    print("\n".join(out), end="")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.action == "install":
        return run_install(args)
    return run_show(args)
