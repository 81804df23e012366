"""Snapshot timestamps: one canonical spelling, and whether content under one may change.

snapshot.debian.org accepts several spellings of an instant (``20240101``,
``20240101T0000Z``, ``2024-01-01T00:00:00Z`` ...) and resolves any instant to the
newest import run not after it. We canonicalise the spelling here; the
instant-to-run resolution is learnt from upstream redirects (see ``resolver``).
"""

from __future__ import annotations

import functools
import re
from datetime import UTC, datetime, timedelta
from typing import Final

CANONICAL_FORMAT: Final = "%Y%m%dT%H%M%SZ"

_SPELLING: Final = re.compile(
    r"^(?P<y>\d{4})-?(?P<mo>\d{2})-?(?P<d>\d{2})"
    r"(?:[Tt](?P<h>\d{2}):?(?P<mi>\d{2})?:?(?P<s>\d{2})?)?[Zz]?$"
)


class BadTimestamp(ValueError):
    """The path segment is not a timestamp in any spelling snapshot.debian.org accepts."""


def parse(text: str) -> datetime:
    m = _SPELLING.match(text)
    if m is None:
        raise BadTimestamp(text)
    try:
        return datetime(
            int(m["y"]),
            int(m["mo"]),
            int(m["d"]),
            int(m["h"] or 0),
            int(m["mi"] or 0),
            int(m["s"] or 0),
            tzinfo=UTC,
        )
    except ValueError as exc:
        raise BadTimestamp(text) from exc


@functools.lru_cache(maxsize=4096)
def canonical(text: str) -> str:
    """``2024-01-01T00:00Z`` and ``20240101`` both become ``20240101T000000Z``."""
    return parse(text).strftime(CANONICAL_FORMAT)


def is_volatile(ts: str, now: datetime, window: timedelta) -> bool:
    """True if content under canonical ``ts`` may still change.

    A past instant is immutable: the archive's state at that instant is history.
    An instant in the future (or within ``window`` of now, newer than the
    latest import may be) has not happened yet, so what it resolves to can change.
    """
    return parse(ts) > now - window


class Volatility:
    """``is_volatile`` against the clock, remembering timestamps already in the past."""

    def __init__(self, window: timedelta) -> None:
        self.window = window
        self._immutable: set[str] = set()

    def __call__(self, ts: str) -> bool:
        if not ts:  # no timestamp: a content-addressed /file/<sha1>, which never changes
            return False
        if ts in self._immutable:
            return False
        if is_volatile(ts, datetime.now(UTC), self.window):
            return True
        self._immutable.add(ts)  # time only moves on: once past, always past
        return False
