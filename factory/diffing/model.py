"""The diff report's data: what differs, where, and whether it changes behaviour.

Pure data (frozen dataclasses); building happens in collect.py, printing in render.py.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

Value = str | int | float | None


class Level(enum.Enum):
    """Where a difference sits, top-down; the report stops at the first level that explains it."""

    INDEX = "index"
    MANIFEST = "manifest"
    CONFIG = "config"
    LAYER = "layer"
    FILE = "file"

    @property
    def rank(self) -> int:
        return list(Level).index(self)


class Category(enum.Enum):
    """What kind of difference this is; `harmless` ones are ignored by --semantic."""

    BEHAVIOUR = "behaviour"
    TIMESTAMP = "timestamp"
    HISTORY = "history"
    ENTRY_ORDER = "tar entry order"
    HEADER_FORMAT = "tar header format"
    COMPRESSION = "compression"

    @property
    def harmless(self) -> bool:
        return self is not Category.BEHAVIOUR


class DiffKind(enum.Enum):
    CHANGED = "changed"
    ADDED = "added"  # only in B
    REMOVED = "removed"  # only in A

    @property
    def sign(self) -> str:
        return {"changed": "~", "added": "+", "removed": "-"}[self.value]


@dataclass(frozen=True)
class Difference:
    """One difference: `subject` is a JSON field path or a file path, `field` what about it."""

    level: Level
    where: str
    subject: str
    field: str
    kind: DiffKind = DiffKind.CHANGED
    a: Value = None
    b: Value = None
    category: Category = Category.BEHAVIOUR
    note: str | None = None
    detail: str | None = None
    offset: int | None = None  # first differing byte, for content

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "level": self.level.value,
            "where": self.where,
            "subject": self.subject,
            "field": self.field,
            "kind": self.kind.value,
            "a": self.a,
            "b": self.b,
            "category": self.category.value,
        }
        for key in ("note", "detail", "offset"):
            if getattr(self, key) is not None:
                d[key] = getattr(self, key)
        return d


@dataclass(frozen=True)
class IgnoredGroup:
    """Differences --semantic ignored: their category, how many, and a few examples."""

    category: Category
    count: int
    examples: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "category": self.category.value,
            "count": self.count,
            "examples": list(self.examples),
        }


@dataclass(frozen=True)
class DiffReport:
    a: str
    b: str
    semantic: bool
    differences: tuple[Difference, ...] = ()
    ignored: tuple[IgnoredGroup, ...] = ()
    truncated: int = 0  # differences found but not kept (over the limit)
    where_labels: tuple[tuple[str, str], ...] = field(default=())  # where -> digests line

    @property
    def identical(self) -> bool:
        return not self.differences and self.truncated == 0

    @property
    def levels(self) -> tuple[Level, ...]:
        seen = {d.level for d in self.differences}
        return tuple(lv for lv in Level if lv in seen)

    def to_json(self) -> dict[str, Any]:
        return {
            "a": self.a,
            "b": self.b,
            "identical": self.identical,
            "semantic": self.semantic,
            "levels": [lv.value for lv in self.levels],
            "differences": [d.to_json() for d in self.differences],
            "ignored": [g.to_json() for g in self.ignored],
            "truncated": self.truncated,
            "headings": {w: h for w, h in self.where_labels},
        }
