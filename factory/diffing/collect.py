"""Collects differences while comparing; frozen into a DiffReport at the end.

--semantic is applied here, in one place: harmless differences are counted (with a
few examples) instead of reported.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from factory.diffing.model import Category, Difference, DiffReport, IgnoredGroup

DEFAULT_LIMIT = 1000  # differences kept in full; more are counted
EXAMPLES = 3  # examples kept per ignored category


class Collector:
    def __init__(self, *, semantic: bool, limit: int = DEFAULT_LIMIT) -> None:
        self.semantic = semantic
        self.limit = limit
        self.kept: list[Difference] = []
        self.truncated = 0
        self.ignored: Counter[Category] = Counter()
        self.examples: dict[Category, list[str]] = {}
        self.headings: dict[str, str] = {}

    def add(self, diff: Difference) -> None:
        if self.semantic and diff.category.harmless:
            self.ignored[diff.category] += 1
            ex = self.examples.setdefault(diff.category, [])
            if len(ex) < EXAMPLES:
                ex.append(f"{diff.where}: {diff.subject} {diff.field}".strip())
            return
        if len(self.kept) >= self.limit:
            self.truncated += 1
            return
        self.kept.append(diff)

    def extend(self, diffs: Iterable[Difference]) -> None:
        for d in diffs:
            self.add(d)

    def heading(self, where: str, text: str) -> None:
        self.headings.setdefault(where, text)

    def child(self) -> Collector:
        """A scratch collector for one layer: merged on success, dropped on retry."""
        return Collector(semantic=self.semantic, limit=max(self.limit - len(self.kept), 0))

    def merge(self, other: Collector) -> None:
        self.extend(other.kept)
        self.truncated += other.truncated
        self.ignored.update(other.ignored)
        for cat, ex in other.examples.items():
            mine = self.examples.setdefault(cat, [])
            mine.extend(ex[: max(EXAMPLES - len(mine), 0)])
        for w, h in other.headings.items():
            self.heading(w, h)

    def has_any(self) -> bool:
        return bool(self.kept or self.truncated or self.ignored)

    def freeze(self, a: str, b: str) -> DiffReport:
        groups = tuple(
            IgnoredGroup(cat, self.ignored[cat], tuple(self.examples.get(cat, ())))
            for cat in Category
            if self.ignored[cat]
        )
        used = {d.where for d in self.kept}
        return DiffReport(
            a=a,
            b=b,
            semantic=self.semantic,
            differences=tuple(self.kept),
            ignored=groups,
            truncated=self.truncated,
            where_labels=tuple((w, h) for w, h in self.headings.items() if w in used),
        )
