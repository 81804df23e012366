"""Build pins: leases that keep the blobs a running build fetched from eviction.

A build asks the proxy for a lease (``POST /pins?ttl=SECONDS``) before it starts
and gives it back when it is done (``DELETE /pins/<lease>``). While a lease is
open, every blob the proxy serves to a pinning client (a peer in
``--pin-allow``, loopback by default) is held by it: eviction passes it by. The
build's apt needs no change: it is recognised by where it connects from, not
by a header it would have to send.

Nothing here can fill a disk or pin forever:

- only pinning clients open leases or pin (``--pin-allow``; other clients get 403
  and their requests pin nothing);
- a lease lasts at most ``MAX_TTL`` seconds (renewed by ``POST /pins/<lease>``,
  each time for at most as long) and then ends by itself, build gone or not;
- at most ``MAX_LEASES`` leases are open at once (then 429);
- pins together never hold more than ``limit`` bytes (the store's cap): the
  store stays under its cap, pins only decide which blobs go. A blob beyond that
  is not held, and the lease's release says how many were refused.

A damaged blob is dropped by the scrub even when held: a pin keeps bytes on
disk only while they are good.
"""

from __future__ import annotations

import secrets
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

MAX_TTL: Final = 6 * 3600.0  # seconds one lease (or one renewal) may last
DEFAULT_TTL: Final = 3600.0
MAX_LEASES: Final = 32


class TooManyLeases(Exception):
    pass


@dataclass
class Lease:
    id: str
    expires: float  # on the monotonic clock
    blobs: dict[str, int] = field(default_factory=dict)  # sha256 -> size
    refused: int = 0  # blobs not held: pins were at their byte limit

    def report(self, now: float) -> dict[str, object]:
        return {
            "lease": self.id,
            "expires_in": max(0, round(self.expires - now)),
            "blobs": len(self.blobs),
            "bytes": sum(self.blobs.values()),
            "refused": self.refused,
        }


def clamp_ttl(raw: str | None) -> float:
    """A lease's length from ``?ttl=``: DEFAULT_TTL if absent, at most MAX_TTL.
    ValueError for anything but a positive number of seconds."""
    if raw is None or raw == "":
        return DEFAULT_TTL
    try:
        ttl = float(raw)
    except ValueError:
        ttl = 0.0
    if not ttl > 0:  # NaN too
        raise ValueError(f"ttl {raw[:32]!r} is not a positive number of seconds")
    return min(ttl, MAX_TTL)


class Pins:
    """The open leases and what they hold. ``on_change(active)`` is called whenever
    the first lease opens or the last one ends (hit workers are told)."""

    def __init__(
        self,
        limit: int | None,
        on_change: Callable[[bool], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.on_change = on_change
        self.clock = clock
        self.leases: dict[str, Lease] = {}
        self._count: Counter[str] = Counter()  # sha256 -> leases holding it
        self._sizes: dict[str, int] = {}
        self.bytes = 0  # held bytes, each blob once
        self.refused = 0

    # ------------------------------------------------------------------ leases
    @property
    def active(self) -> bool:
        """Any lease open (expired ones are ended here)."""
        if not self.leases:
            return False
        self.expire()
        return bool(self.leases)

    def expire(self) -> None:
        now = self.clock()
        for lease in [le for le in self.leases.values() if le.expires <= now]:
            self._end(lease)

    def open(self, ttl: float) -> Lease:
        self.expire()
        if len(self.leases) >= MAX_LEASES:
            raise TooManyLeases(f"{MAX_LEASES} pin leases are open already")
        lease = Lease(secrets.token_hex(12), self.clock() + min(ttl, MAX_TTL))
        self.leases[lease.id] = lease
        if len(self.leases) == 1 and self.on_change is not None:
            self.on_change(True)
        return lease

    def renew(self, lease_id: str, ttl: float) -> Lease | None:
        self.expire()
        lease = self.leases.get(lease_id)
        if lease is not None:
            lease.expires = self.clock() + min(ttl, MAX_TTL)
        return lease

    def release(self, lease_id: str) -> Lease | None:
        self.expire()
        lease = self.leases.get(lease_id)
        if lease is not None:
            self._end(lease)
        return lease

    def _end(self, lease: Lease) -> None:
        del self.leases[lease.id]
        for sha in lease.blobs:
            self._count[sha] -= 1
            if self._count[sha] <= 0:
                del self._count[sha]
                self.bytes -= self._sizes.pop(sha)
        if not self.leases and self.on_change is not None:
            self.on_change(False)

    # -------------------------------------------------------------------- pins
    def hold(self, sha256: str, size: int) -> None:
        """Every open lease holds ``sha256`` (served to a pinning client just now)."""
        if not self.active:
            return
        if sha256 not in self._count:
            if self.limit is not None and self.bytes + size > self.limit:
                self.refused += 1
                for lease in self.leases.values():
                    lease.refused += 1
                return
            self._sizes[sha256] = size
            self.bytes += size
        for lease in self.leases.values():
            if sha256 not in lease.blobs:
                lease.blobs[sha256] = size
                self._count[sha256] += 1

    def held(self, sha256: str) -> bool:
        """Kept from eviction by a lease (checked at each deletion, so an expired lease
        keeps nothing)."""
        return self.active and sha256 in self._count

    def kept(self) -> set[str]:
        return set(self._count) if self.active else set()

    def report(self) -> dict[str, object]:
        """The open leases for ``GET /pins``; their ids shortened: an id is what ends a
        lease, and only its build should hold it."""
        now = self.clock()
        return {
            "leases": [
                {**le.report(now), "lease": le.id[:6] + "..."} for le in self.leases.values()
            ],
            "bytes": self.bytes,
            "limit": self.limit,
        }
