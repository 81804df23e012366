"""What the report shows, computed from history records (pure: no I/O, no clock).

Times come from the records themselves ("the last 30 nights" end at the newest
snapshot in the history), so the same history always gives the same report.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from factory.report.fmt import DASH, snapshot_label, window_start
from factory.report.history import PUBLISHABLE, VERDICTS, ResultRecord
from factory.report.pkgdiff import PackageChange, diff_packages
from factory.report.trustlog import AttestationRecord, GateRecord
from factory.report.trustview import TrustView, trust_view

WINDOW_DAYS = 30  # the summary's "last 30 days"
INDEX_NIGHTS = 30  # timeline columns on the overview
IMAGE_NIGHTS = 90  # timeline columns on an image's page
RECENT_RUNS = 60  # rows in an image page's run table
CHANGE_SETS = 40  # package-change entries on an image page


@dataclass(frozen=True)
class Cell:
    snapshot: str
    arch: str
    verdict: str | None  # None: no nightly result for this night and architecture
    record: ResultRecord | None
    reverify: tuple[ResultRecord, ...]  # later re-verifications of this snapshot, newest first


@dataclass(frozen=True)
class Timeline:
    snapshots: tuple[str, ...]  # oldest first
    arches: tuple[str, ...]
    rows: tuple[tuple[Cell, ...], ...]  # one row per arch, one cell per snapshot

    def last(self, n: int) -> Timeline:
        if len(self.snapshots) <= n:
            return self
        return Timeline(self.snapshots[-n:], self.arches, tuple(r[-n:] for r in self.rows))


@dataclass(frozen=True)
class SizePoint:
    snapshot: str
    size: int
    uncompressed: int | None


@dataclass(frozen=True)
class ChangeSet:
    snapshot: str  # the night the change first appeared
    previous: str  # the night compared with (the earliest among the arches)
    arches: tuple[str, ...]
    changes: tuple[PackageChange, ...]


@dataclass(frozen=True)
class Counts:
    by_verdict: tuple[tuple[str, int], ...]  # in VERDICTS order, zeros included
    nights: int = 0  # distinct snapshot days the results come from (at most the window)

    @staticmethod
    def of(records: Sequence[ResultRecord]) -> Counts:
        c = Counter(r.verdict for r in records)
        nights = len({r.snapshot[:8] for r in records})
        return Counts(tuple((v, c.get(v, 0)) for v in VERDICTS), nights)

    @property
    def span(self) -> str:
        """'last 30 nights' only when there were 30: the page never claims more history."""
        if self.nights >= WINDOW_DAYS:
            return f"last {WINDOW_DAYS} nights"
        return f"{self.nights} night{'' if self.nights == 1 else 's'} so far"

    def get(self, verdict: str) -> int:
        return dict(self.by_verdict).get(verdict, 0)

    @property
    def total(self) -> int:
        return sum(n for _, n in self.by_verdict)

    @property
    def rate(self) -> float | None:
        """Reproducible share of the results that answered the question (errors and
        unverified builds say nothing about reproducibility)."""
        good = sum(self.get(v) for v in PUBLISHABLE)
        judged = good + self.get("differs")
        return good / judged if judged else None


@dataclass(frozen=True)
class Latest:
    arch: str
    record: ResultRecord  # newest nightly result
    published: ResultRecord | None  # newest published one (may be the same)


@dataclass(frozen=True)
class ImageView:
    image: str
    slug: str  # file name stem of the image's page
    timeline: Timeline
    sizes: tuple[tuple[str, tuple[SizePoint, ...]], ...]  # per arch, oldest first
    changes: tuple[ChangeSet, ...]  # newest first
    latest: tuple[Latest, ...]
    recent: tuple[ResultRecord, ...]  # newest first
    counts: Counts  # last WINDOW_DAYS nights
    trust: TrustView | None = None  # SBOMs, provenance, rebuilders of the newest published


@dataclass(frozen=True)
class Summary:
    images: int
    counts: Counts  # last WINDOW_DAYS nights, all images
    window: str  # "2026-10-31 to 2026-11-29" (en dash)
    last_run: ResultRecord | None  # the record that finished last


def _order(rec: ResultRecord) -> tuple[str, ...]:
    """A total order (time first) so that ties never depend on insertion order."""
    return (
        rec.started,
        rec.finished,
        rec.run_id,
        rec.image,
        rec.arch,
        rec.snapshot,
        rec.kind,
        rec.verdict,
        rec.manifest_digest or "",
        rec.message,
    )


def slugs(images: Sequence[str]) -> dict[str, str]:
    """Safe, unique file name stems: "debian:bookworm" -> "debian-bookworm"."""
    raw = {img: re.sub(r"[^A-Za-z0-9._]+", "-", img).strip("-.") or "image" for img in images}
    taken = Counter(raw.values())
    return {
        img: s if taken[s] == 1 else f"{s}-{hashlib.sha256(img.encode()).hexdigest()[:8]}"
        for img, s in raw.items()
    }


def build_timeline(records: Sequence[ResultRecord]) -> Timeline:
    """Records of one image -> a grid of nights x arches (newest nightly result wins)."""
    nightly: dict[tuple[str, str], ResultRecord] = {}
    reverify: dict[tuple[str, str], list[ResultRecord]] = {}
    for rec in sorted(records, key=_order):
        key = (rec.arch, rec.snapshot)
        if rec.kind == "nightly":
            nightly[key] = rec
        else:
            reverify.setdefault(key, []).insert(0, rec)
    snapshots = tuple(sorted({r.snapshot for r in records}))
    arches = tuple(sorted({r.arch for r in records}))
    rows = tuple(
        tuple(
            Cell(
                snap,
                arch,
                nightly[(arch, snap)].verdict if (arch, snap) in nightly else None,
                nightly.get((arch, snap)),
                tuple(reverify.get((arch, snap), ())),
            )
            for snap in snapshots
        )
        for arch in arches
    )
    return Timeline(snapshots, arches, rows)


def build_sizes(records: Sequence[ResultRecord]) -> tuple[tuple[str, tuple[SizePoint, ...]], ...]:
    per_arch: dict[str, dict[str, SizePoint]] = {}
    for rec in sorted(records, key=_order):
        if rec.kind == "nightly" and rec.size is not None:
            points = per_arch.setdefault(rec.arch, {})
            points[rec.snapshot] = SizePoint(rec.snapshot, rec.size, rec.uncompressed_size)
    return tuple(
        (arch, tuple(points[s] for s in sorted(points)))
        for arch, points in sorted(per_arch.items())
    )


def build_changes(records: Sequence[ResultRecord]) -> tuple[ChangeSet, ...]:
    """Package-set changes between consecutive nights that have a package list, per
    arch; the same change on several arches the same night is shown once."""
    per_arch: dict[str, dict[str, ResultRecord]] = {}
    for rec in sorted(records, key=_order):
        if rec.kind == "nightly" and rec.packages:
            per_arch.setdefault(rec.arch, {})[rec.snapshot] = rec
    grouped: dict[tuple[str, tuple[PackageChange, ...]], list[tuple[str, str]]] = {}
    for arch, by_snap in per_arch.items():
        snaps = sorted(by_snap)
        for prev, cur in itertools.pairwise(snaps):
            changes = diff_packages(by_snap[prev].packages, by_snap[cur].packages)
            if changes:
                grouped.setdefault((cur, changes), []).append((arch, prev))
    sets = [
        ChangeSet(snap, min(p for _, p in where), tuple(sorted(a for a, _ in where)), changes)
        for (snap, changes), where in grouped.items()
    ]
    sets.sort(key=lambda c: (c.snapshot, c.arches, c.changes), reverse=True)
    return tuple(sets)


def build_latest(records: Sequence[ResultRecord]) -> tuple[Latest, ...]:
    newest: dict[str, ResultRecord] = {}
    published: dict[str, ResultRecord] = {}
    for rec in sorted(records, key=_order):
        if rec.kind != "nightly":
            continue
        newest[rec.arch] = rec
        if rec.verdict in PUBLISHABLE and rec.published:
            published[rec.arch] = rec
    return tuple(Latest(a, newest[a], published.get(a)) for a in sorted(newest))


def in_window(records: Sequence[ResultRecord], newest_snapshot: str) -> list[ResultRecord]:
    start = window_start(newest_snapshot, WINDOW_DAYS)
    return [
        r
        for r in records
        if r.kind == "nightly" and (start is None or start <= r.snapshot <= newest_snapshot)
    ]


def build_image(
    image: str,
    slug: str,
    records: Sequence[ResultRecord],
    newest: str,
    attestations: Sequence[AttestationRecord] = (),
    gates: Sequence[GateRecord] = (),
) -> ImageView:
    ordered = sorted(records, key=_order, reverse=True)
    return ImageView(
        image=image,
        slug=slug,
        timeline=build_timeline(records).last(IMAGE_NIGHTS),
        sizes=build_sizes(records),
        changes=build_changes(records)[:CHANGE_SETS],
        latest=build_latest(records),
        recent=tuple(ordered[:RECENT_RUNS]),
        counts=Counts.of(in_window(records, newest)),
        trust=trust_view(image, records, attestations, gates),
    )


def build(
    records: Sequence[ResultRecord],
    attestations: Sequence[AttestationRecord] = (),
    gates: Sequence[GateRecord] = (),
) -> tuple[Summary, tuple[ImageView, ...]]:
    """The whole report's content from every record in the history (watched images, built
    elsewhere, are factory.report.trustview.watch_views')."""
    nightly = [r for r in records if r.kind == "nightly"]
    newest = max((r.snapshot for r in nightly), default="")
    by_image: dict[str, list[ResultRecord]] = {}
    for rec in records:
        # watched images: trustview; derived images: derivedview (their own sections)
        if rec.kind not in ("watch", "derived", "derived-reverify"):
            by_image.setdefault(rec.image, []).append(rec)
    names = slugs(sorted(by_image))
    views = tuple(
        build_image(img, names[img], by_image[img], newest, attestations, gates)
        for img in sorted(by_image)
    )
    start = window_start(newest, WINDOW_DAYS) if newest else None
    window = f"{snapshot_label(start)} {DASH} {snapshot_label(newest)}" if start else newest
    summary = Summary(
        images=len(views),
        counts=Counts.of(in_window(records, newest)),
        window=window,
        last_run=max(records, key=lambda r: (r.finished, *_order(r)), default=None),
    )
    return summary, views
