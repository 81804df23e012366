"""``python -m cache_proxy``: the proxy alone, same flags as ``reprobase proxy``.

It goes through the same dispatcher, so errors, --debug and exit codes are the same.
"""

from __future__ import annotations

import sys

from factory.cli import main as reprobase_main


def main(argv: list[str] | None = None) -> int:
    return reprobase_main(["proxy", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
