"""The event loop every proxy process runs on: the primary (``cli``) and its hit workers.

Its own module so that a hit worker (``workers``) needs nothing of the command line,
and ``cli`` → ``server`` → ``workers`` stays a one-way chain.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine
from typing import Any, Final

LOOP_ENV: Final = "REPROBASE_PROXY_LOOP"


def run_loop(main: Coroutine[Any, Any, None]) -> None:
    """uvloop when installed (about a third more warm hits per second), else asyncio's loop.

    ``REPROBASE_PROXY_LOOP=asyncio`` forces asyncio's own loop.
    """
    try:
        if os.environ.get(LOOP_ENV) == "asyncio":
            raise ImportError("asyncio's loop asked for")
        import uvloop  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        asyncio.run(main)
        return
    uvloop.run(main)
