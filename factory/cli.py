"""The `reprobase` console script: a thin dispatcher over subcommand modules.

Each subcommand lives in its own module exposing HELP, add_arguments(parser)
and run(args) -> int, imported only when that subcommand is used.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
from collections.abc import Sequence
from typing import NoReturn, Protocol, cast

from factory import __version__
from factory.common.errors import UserError

# name -> (module, one-line help). Only the module of the command being run is
# imported: start-up stays fast, and one command's problem cannot break another.
COMMANDS: dict[str, tuple[str, str]] = {
    "build": ("factory.commands.build", "build an image twice and check both builds are identical"),
    "verify": ("factory.commands.verify", "check a quorum of signed rebuild attestations"),
    "diff": ("factory.commands.diff", "explain why two images differ"),
    "publish": ("factory.commands.publish", "push an OCI layout to registries"),
    "merge": ("factory.commands.merge", "merge per-architecture layouts into one index"),
    "reproduce": ("factory.commands.reproduce", "rebuild a published image from its own labels"),
    "nightly": ("factory.commands.nightly", "build, verify and publish every configured image"),
    "report": ("factory.commands.report", "write the reproducibility dashboard"),
    "schedule": ("factory.commands.schedule", "install the nightly schedule (systemd, cron)"),
    "proxy": ("factory.commands.proxy", "run the verifying cache proxy for snapshot.debian.org"),
    "images": ("factory.commands.images", "list the recipes reprobase knows and where they are"),
    "paths": ("factory.commands.paths", "print the default paths in use (cache, history, ...)"),
    "sbom": ("factory.commands.sbom", "print an image's SBOM (SPDX 2.3 or CycloneDX 1.6)"),
    "key": ("factory.commands.key", "make a signing key for attestations, or show its id"),
}


class Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line like every other error (exit 2)."""

    def error(self, message: str) -> NoReturn:
        print(f"error: {self.prog}: {message} (hint: see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(2)


class Command(Protocol):
    HELP: str

    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


def _load(name: str) -> Command:
    return cast(Command, importlib.import_module(COMMANDS[name][0]))


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    parser = Parser(
        prog="reprobase",
        description="Build bit-for-bit reproducible Debian base images pinned to "
        "snapshot.debian.org, verify them by building twice, publish them, and run "
        "a verifying cache proxy for the Debian archive.",
    )
    parser.add_argument("--version", action="version", version=f"reprobase {__version__}")
    parser.add_argument("--debug", action="store_true", help="verbose logs and tracebacks")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for name, (_module, summary) in COMMANDS.items():
        if only is not None and name != only:
            sub.add_parser(name, help=summary)  # listed in --help, not imported
            continue
        mod = _load(name)
        p = sub.add_parser(
            name,
            help=summary,
            description=getattr(mod, "HELP", summary),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        # SUPPRESS: `reprobase --debug build` must not be reset by the subcommand's default
        p.add_argument(
            "--debug", action="store_true", default=argparse.SUPPRESS,
            help="verbose logs and tracebacks",
        )  # fmt: skip
        mod.add_arguments(p)
        p.set_defaults(_module=mod)
    return parser


def _command_of(argv: Sequence[str]) -> str:
    """The subcommand named in argv ("" for none): the first word that is not an option."""
    for a in argv:
        if not a.startswith("-"):
            return a
    return ""


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(only=_command_of(argv))
    args = parser.parse_args(argv)
    if args.command is None or not hasattr(args, "_module"):
        if args.command is not None:
            print(f"error: '{args.command}' is not available yet", file=sys.stderr)
        else:
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
        fail(args, exc)
        return 2
    except OSError as exc:  # a file system refusal nobody turned into a UserError
        if args.debug:
            raise
        where = f" {exc.filename}" if exc.filename else ""
        fail(args, UserError(f"cannot use{where}: {exc.strerror or exc}", hint="check the path"))
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


def fail(args: argparse.Namespace, exc: UserError) -> None:
    """The one error line on stderr; with --json also an error object on stdout."""
    print(exc.render().replace("\n", " "), file=sys.stderr)
    if getattr(args, "json", False):
        doc = {"ok": False, "error": exc.message, "hint": exc.hint}
        print(json.dumps(doc, sort_keys=True), flush=True)


if __name__ == "__main__":
    sys.exit(main())
