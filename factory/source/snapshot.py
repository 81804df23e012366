"""Snapshot timestamps: parsing, the nightly pin, SOURCE_DATE_EPOCH and apt sources.

A nightly build pins midnight UTC of its day; exact timestamps may be given.
The same instant is SOURCE_DATE_EPOCH, so an image's bytes depend on the pin
and never on when the build ran.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from factory.common.errors import UserError

SNAPSHOT_BASE = "http://snapshot.debian.org/archive/"
# the key the build checks the archive with, and the one the image's sources name
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
TS_FORMAT = "%Y%m%dT%H%M%SZ"
_TS_RE = re.compile(r"^\d{8}T\d{6}Z$")
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# snapshot.debian.org's first import: an earlier pin names no snapshot, and a build
# "pinned" to it would hold today's packages under a false label.
FIRST_SNAPSHOT = dt.datetime(2005, 3, 12, tzinfo=dt.UTC)


@dataclass(frozen=True, order=True)
class Timestamp:
    """A snapshot.debian.org timestamp, always UTC."""

    when: dt.datetime

    @property
    def text(self) -> str:
        return self.when.strftime(TS_FORMAT)

    @property
    def epoch(self) -> int:
        return int(self.when.timestamp())

    @property
    def day(self) -> str:
        return self.when.strftime("%Y%m%d")

    def __str__(self) -> str:
        return self.text

    @classmethod
    def parse(cls, text: str) -> Timestamp:
        if not _TS_RE.match(text):
            raise UserError(
                f"bad snapshot timestamp {text!r}",
                hint="use the snapshot.debian.org form YYYYMMDDTHHMMSSZ, e.g. 20261129T000000Z",
            )
        try:
            when = dt.datetime.strptime(text, TS_FORMAT).replace(tzinfo=dt.UTC)
        except ValueError:
            raise UserError(f"bad snapshot timestamp {text!r}: no such date or time") from None
        return cls(when)

    @classmethod
    def from_date(cls, text: str) -> Timestamp:
        if not _DATE_RE.match(text):
            raise UserError(f"bad date {text!r}", hint="use YYYY-MM-DD, e.g. 2026-11-29")
        try:
            day = dt.date.fromisoformat(text)
        except ValueError:
            raise UserError(f"bad date {text!r}: no such day") from None
        return cls(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC))

    @classmethod
    def from_epoch(cls, epoch: int) -> Timestamp:
        return cls(dt.datetime.fromtimestamp(epoch, tz=dt.UTC))


def today_utc(now: dt.datetime | None = None) -> Timestamp:
    now = now or dt.datetime.now(dt.UTC)
    return Timestamp(dt.datetime(now.year, now.month, now.day, tzinfo=dt.UTC))


def resolve_pin(
    date: str | None, snapshot: str | None, now: dt.datetime | None = None
) -> Timestamp:
    """--date or --snapshot (not both), default today's midnight UTC; a pin before the
    first snapshot or in the future is refused. An empty value is a mistake, not "today"."""
    if date is not None and snapshot is not None:
        raise UserError("--date and --snapshot are exclusive", hint="give only one of them")
    if snapshot is not None:
        ts = Timestamp.parse(snapshot)
    elif date is not None:
        ts = Timestamp.from_date(date)
    else:
        ts = today_utc(now)
    check_pin(ts, now)
    return ts


def check_pin(ts: Timestamp, now: dt.datetime | None = None) -> None:
    """Refuse a pin no snapshot can answer truly: before the first import, or not yet."""
    now = now or dt.datetime.now(dt.UTC)
    if ts.when > now:
        raise UserError(
            f"snapshot {ts} is in the future: it does not exist yet and would not be stable",
            hint=f"use a date up to {now:%Y-%m-%d}",
        )
    if ts.when < FIRST_SNAPSHOT:
        raise UserError(
            f"snapshot {ts} is before snapshot.debian.org's first import "
            f"({FIRST_SNAPSHOT:%Y-%m-%d}): no archive state can be pinned then",
            hint=f"use a date from {FIRST_SNAPSHOT:%Y-%m-%d} on",
        )


def snapshot_url(archive: str, ts: Timestamp) -> str:
    return f"{SNAPSHOT_BASE}{archive}/{ts.text}/"


def snapshot_sources(suite: str, components: tuple[str, ...], ts: Timestamp) -> str:
    """deb822 apt sources for an image: pinned to the snapshot, so images built
    FROM ours stay pinned too. Old snapshots have expired Valid-Until fields."""
    comps = " ".join(components)
    key = KEYRING
    stanzas = [
        f"Types: deb\nURIs: {snapshot_url('debian', ts).rstrip('/')}\n"
        f"Suites: {suite} {suite}-updates\nComponents: {comps}\n"
        f"Signed-By: {key}\nCheck-Valid-Until: no\n",
    ]
    if has_security(suite):
        stanzas.append(
            f"Types: deb\nURIs: {snapshot_url('debian-security', ts).rstrip('/')}\n"
            f"Suites: {suite}-security\nComponents: {comps}\n"
            f"Signed-By: {key}\nCheck-Valid-Until: no\n"
        )
    return "\n".join(stanzas)


def mirror_sources(
    suite: str, components: tuple[str, ...], debian_url: str, security_url: str | None
) -> str:
    """deb822 apt sources for an image built from a plain mirror: that mirror (and its
    security archive, if the build had one), not a snapshot the packages never came from."""
    comps = " ".join(components)
    key = KEYRING
    stanzas = [
        f"Types: deb\nURIs: {debian_url.rstrip('/')}\n"
        f"Suites: {suite} {suite}-updates\nComponents: {comps}\nSigned-By: {key}\n",
    ]
    if security_url and has_security(suite):
        stanzas.append(
            f"Types: deb\nURIs: {security_url.rstrip('/')}\n"
            f"Suites: {suite}-security\nComponents: {comps}\nSigned-By: {key}\n"
        )
    return "\n".join(stanzas)


def has_security(suite: str) -> bool:
    return suite not in ("sid", "unstable", "experimental")
