"""`reprobase proxy`: the cache proxy (cache_proxy.cli), under the factory's dispatcher.

The proxy's errors are the factory's (factory.common.errors re-exports cache_proxy's UserError),
so the line, --json and exit code are those of every other subcommand.
`reprobase-proxy` and `python -m cache_proxy` run the same code without the factory.
"""

from __future__ import annotations

import argparse

from cache_proxy import cli

HELP = cli.HELP


def add_arguments(parser: argparse.ArgumentParser) -> None:
    cli.add_arguments(parser)


def run(args: argparse.Namespace) -> int:
    return cli.run(args)
