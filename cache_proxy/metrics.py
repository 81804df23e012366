"""Counters and gauges, rendered in the Prometheus text exposition format 0.0.4."""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from cache_proxy.board import BoardRow, Series

PREFIX: Final = "reprobase_proxy_"

HELP: Final = {
    "hits_total": ("counter", "Requests answered from the cache."),
    "misses_total": ("counter", "Requests that started an upstream download."),
    "coalesced_total": ("counter", "Requests that joined a download already in flight."),
    "upstream_requests_total": ("counter", "Upstream HTTP requests by status (or error)."),
    "upstream_bytes_total": ("counter", "Body bytes received from upstream."),
    "dedup_total": ("counter", "Downloads avoided: a redirect named a blob already stored."),
    "retries_total": ("counter", "Upstream attempts retried after a transient failure."),
    "failovers_total": ("counter", "Times the next upstream mirror was tried."),
    "verify_failures_total": ("counter", "Downloads rejected by size or hash checks."),
    "unlisted_total": (
        "counter",
        "Files in no known Packages/Sources of their timestamp (checked by SHA-1 or length).",
    ),
    "served_bytes_total": ("counter", "Body bytes sent to clients."),
    "requests_total": ("counter", "Client requests by status."),
    "evictions_total": ("counter", "Blobs evicted to stay under the size cap."),
    "evicted_bytes_total": ("counter", "Bytes evicted."),
    "refused_total": (
        "counter",
        "Upstream answers refused, by reason (encoding: not identity; redirect: not allowed).",
    ),
    "slow_downloads_total": ("counter", "Slow downloads that gave their connection slot back."),
    "slow_aborts_total": (
        "counter",
        "Attempts dropped under the minimum rate or past the deadline.",
    ),
    "resumes_total": ("counter", "Cut downloads continued with a Range request."),
    "background_errors_total": ("counter", "Errors of background tasks, by task."),
    "background_ok": ("gauge", "1 while a background task's last run succeeded, by task."),
    "scrubbed_blobs_total": ("counter", "Stored blobs re-hashed by the scrub."),
    "scrub_dropped_total": ("counter", "Stored blobs the scrub found damaged and dropped."),
    "evict_skipped_total": ("counter", "Eviction candidates kept because they were being served."),
    "pin_leases": ("gauge", "Build pin leases open (POST /pins)."),
    "pinned_bytes": ("gauge", "Bytes of blobs held by build pin leases."),
    "pins_refused": ("gauge", "Blobs not pinned because pins held their byte limit."),
    "cache_bytes": ("gauge", "Bytes of blobs in the cache."),
    "cache_blobs": ("gauge", "Number of blobs in the cache."),
    "inflight_downloads": ("gauge", "Upstream downloads in progress."),
}


class Metrics:
    def __init__(self) -> None:
        self._values: dict[str, dict[tuple[tuple[str, str], ...], float]] = defaultdict(
            lambda: defaultdict(float)
        )

    def inc(self, name: str, amount: float = 1, **labels: str) -> None:
        self._values[name][tuple(sorted(labels.items()))] += amount

    def count_response(self, status: int, body_bytes: int) -> None:
        """Hot path: one call per request, no label sorting."""
        self._values["requests_total"][(("status", str(status)),)] += 1
        self._values["served_bytes_total"][()] += body_bytes

    def set(self, name: str, value: float, **labels: str) -> None:
        self._values[name][tuple(sorted(labels.items()))] = value

    def get(self, name: str, **labels: str) -> float:
        return self._values.get(name, {}).get(tuple(sorted(labels.items())), 0.0)

    def total(self, name: str) -> float:
        return sum(self._values.get(name, {}).values())

    def render(self, also: Series | None = None) -> str:
        """The exposition text; ``also``: other processes' counters, added in."""
        lines: list[str] = []
        for name, (kind, text) in HELP.items():
            full = PREFIX + name
            lines.append(f"# HELP {full} {text}")
            lines.append(f"# TYPE {full} {kind}")
            series = dict(self._values.get(name, {}))
            for labels, value in (also or {}).get(name, {}).items():
                series[labels] = series.get(labels, 0.0) + value
            series = series or {(): 0.0}
            for labels, value in sorted(series.items()):
                lab = ",".join(f'{k}="{_escape(v)}"' for k, v in labels)
                num = int(value) if float(value).is_integer() else value
                lines.append(f"{full}{{{lab}}} {num}" if lab else f"{full} {num}")
        return "\n".join(lines) + "\n"


class RowMetrics(Metrics):
    """A hit worker's metrics: what it counts goes to its row of the shared board.

    Workers only answer hits and relay everything else to the primary, which
    counts misses, upstream traffic and the cache itself.
    """

    def __init__(self, row: BoardRow) -> None:
        super().__init__()
        self.row = row

    def inc(self, name: str, amount: float = 1, **labels: str) -> None:
        if name == "hits_total":
            self.row.hit()
        else:
            super().inc(name, amount, **labels)

    def count_response(self, status: int, body_bytes: int) -> None:
        self.row.response(status, body_bytes)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
