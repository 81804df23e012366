"""``python -m cache_proxy``: the proxy alone, same flags as ``reprobase proxy``."""

from __future__ import annotations

import argparse
import logging
import sys

from cache_proxy import cli
from factory.errors import UserError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cache_proxy", description=cli.HELP)
    parser.add_argument("--debug", action="store_true", help="verbose logs and tracebacks")
    cli.add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s %(message)s" if args.debug else "%(message)s",
        stream=sys.stderr,
    )
    try:
        return cli.run(args)
    except UserError as exc:
        if args.debug:
            raise
        print(exc.render(), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
