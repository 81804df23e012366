"""`reprobase proxy`: the cache proxy (cache_proxy.cli), under the factory's dispatcher.

The proxy's own errors become the factory's, so the line, --json and exit code are
those of every other subcommand. `reprobase-proxy` and `python -m cache_proxy` run
the same code without the factory.
"""

from __future__ import annotations

import argparse

from cache_proxy import cli
from cache_proxy.errors import UserError as ProxyError
from factory.errors import UserError

HELP = cli.HELP


def add_arguments(parser: argparse.ArgumentParser) -> None:
    cli.add_arguments(parser)


def run(args: argparse.Namespace) -> int:
    try:
        return cli.run(args)
    except ProxyError as exc:
        raise UserError(exc.message, hint=exc.hint) from exc
