"""Explaining why two images differ: `diff_images(a, b)` → DiffReport.

Modules, one job each (after diffoscope's one module per format):
sources/stores/docker (where blobs come from), images (index → manifest → config →
layers), layers (one layer pair), mergejoin and tarindex (entry matching, sorted or
not), tarstream (tar headers), streams (decompression), entries and content (fields
and bytes), culprits (known causes and fixes), collect/model/render (the report).
"""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

from factory.diffing.collect import DEFAULT_LIMIT, Collector
from factory.diffing.images import ImageComparison
from factory.diffing.model import Category, Difference, DiffKind, DiffReport, IgnoredGroup, Level
from factory.diffing.render import render_summary, render_text
from factory.diffing.sources import resolve
from factory.diffing.stores import verify_tree

__all__ = [
    "Category",
    "DiffKind",
    "DiffReport",
    "Difference",
    "IgnoredGroup",
    "Level",
    "diff_images",
    "render_summary",
    "render_text",
]


def diff_images(
    a: str | Path,
    b: str | Path,
    *,
    semantic: bool = False,
    source_date_epoch: int | None = None,
    limit: int = DEFAULT_LIMIT,
) -> DiffReport:
    """Compare two images (layout dirs, archive tars or registry refs), top-down.

    Raises factory.common.errors.UserError for inputs that cannot be read.
    """
    out = Collector(semantic=semantic, limit=limit)
    with ExitStack() as stack:
        store_a = resolve(str(a), stack)
        store_b = resolve(str(b), stack)
        verify_tree(store_a)
        verify_tree(store_b)
        ImageComparison(store_a, store_b, out, source_date_epoch).run()
    return out.freeze(str(a), str(b))
