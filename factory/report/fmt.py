"""Small formatting helpers for the report (pure, locale-independent)."""

from __future__ import annotations

from datetime import datetime, timedelta
from html import escape

SNAPSHOT_FORMAT = "%Y%m%dT%H%M%SZ"
DASH = "\u2013"  # en dash: "no value" and ranges
MINUS = "\u2212"


def esc(value: object) -> str:
    """HTML-escape any value for text and double- or single-quoted attributes."""
    return escape(str(value), quote=True)


def parse_snapshot(snapshot: str) -> datetime | None:
    try:
        return datetime.strptime(snapshot, SNAPSHOT_FORMAT)
    except ValueError:
        return None


def snapshot_label(snapshot: str) -> str:
    """20261129T000000Z -> 2026-11-29; other instants keep their time of day."""
    when = parse_snapshot(snapshot)
    if when is None:
        return snapshot
    if (when.hour, when.minute, when.second) == (0, 0, 0):
        return when.strftime("%Y-%m-%d")
    return when.strftime("%Y-%m-%d %H:%M:%S")


def short_label(snapshot: str) -> str:
    """20261129T000000Z -> 11-29 (axis labels)."""
    when = parse_snapshot(snapshot)
    return when.strftime("%m-%d") if when is not None else snapshot[:8]


def window_start(newest: str, days: int) -> str | None:
    """The first snapshot string inside a window of `days` nights ending at `newest`."""
    when = parse_snapshot(newest)
    if when is None:
        return None
    start = when.replace(hour=0, minute=0, second=0) - timedelta(days=days - 1)
    return start.strftime(SNAPSHOT_FORMAT)


def size(n: int | None) -> str:
    """Bytes in SI units with one decimal (29.2 MB): the units registries show."""
    if n is None:
        return DASH
    value = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{n} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def seconds(s: float | None) -> str:
    if s is None:
        return DASH
    if s < 60:
        return f"{s:.1f} s"
    minutes, rest = divmod(round(s), 60)
    return f"{minutes} min {rest:02d} s"


def percent(rate: float | None) -> str:
    return DASH if rate is None else f"{rate * 100:.1f}%"


def short_digest(digest: str | None) -> str:
    if not digest:
        return DASH
    algo, _, hexpart = digest.partition(":")
    return f"{algo}:{hexpart[:12]}…" if hexpart else digest[:19]


NONE_HTML = f'<span class="muted">{DASH}</span>'  # an empty cell


def digest_html(value: str | None, *, full: bool = False) -> str:
    """A digest as a page shows it: shortened unless full, the whole one as its title."""
    if not value:
        return NONE_HTML
    text = value if full else short_digest(value)
    return f'<code title="{esc(value)}">{esc(text)}</code>'
