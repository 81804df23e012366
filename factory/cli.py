"""The `reprobase` console script: a thin dispatcher over subcommand modules.

Each subcommand lives in its own module exposing HELP, add_arguments(parser)
and run(args) -> int, imported only when that subcommand is used.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence
from typing import Protocol, cast

from factory import __version__
from factory.errors import UserError

# name -> module; the module owns its flags and its behaviour.
COMMANDS: dict[str, str] = {
    "build": "factory.commands.build",
    "verify": "factory.commands.verify",
    "diff": "factory.commands.diff",
    "publish": "factory.commands.publish",
    "reproduce": "factory.commands.reproduce",
    "nightly": "factory.commands.nightly",
    "report": "factory.commands.report",
    "schedule": "factory.commands.schedule",
    "proxy": "cache_proxy.cli",
}


class Command(Protocol):
    HELP: str

    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


def _load(name: str) -> Command | None:
    try:
        return cast(Command, importlib.import_module(COMMANDS[name]))
    except ModuleNotFoundError as exc:
        if exc.name == COMMANDS[name]:
            return None  # not implemented yet
        raise


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="reprobase",
        description="Build bit-for-bit reproducible Debian base images pinned to "
        "snapshot.debian.org, verify them by building twice, publish them, and run "
        "a verifying cache proxy for the Debian archive.",
    )
    parser.add_argument("--version", action="version", version=f"reprobase {__version__}")
    parser.add_argument("--debug", action="store_true", help="verbose logs and tracebacks")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        mod = _load(name)
        if mod is None:
            continue
        p = sub.add_parser(
            name,
            help=mod.HELP,
            description=mod.HELP,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        p.add_argument("--debug", action="store_true", help="verbose logs and tracebacks")
        mod.add_arguments(p)
        p.set_defaults(_module=mod)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.INFO,
        format="%(message)s"
        if not args.debug
        else "%(asctime)s %(name)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    module = cast(Command, args._module)
    try:
        return module.run(args)
    except UserError as exc:
        if args.debug:
            raise
        print(exc.render(), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
