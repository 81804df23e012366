"""``python -m cache_proxy``: the proxy alone, same flags as ``reprobase proxy``.

The same entry as the ``reprobase-proxy`` script (cache_proxy.cli.main): it needs
nothing of the factory, and its errors, --debug and exit codes are the same.
"""

from __future__ import annotations

import sys

from cache_proxy.cli import main

if __name__ == "__main__":
    sys.exit(main(prog="python -m cache_proxy"))
