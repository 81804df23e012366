"""Comparing two layer blobs: entries first, then what else makes the bytes differ.

Order of explanations: entry differences (paths, fields, contents); if every entry is
equal, the tar encoding (header format, entry order, padding); if the tars are equal,
the compression.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

from factory.diffing.collect import Collector
from factory.diffing.content import ContentProbe
from factory.diffing.entries import compare_entries, content_difference, presence
from factory.diffing.mergejoin import KEYS, OutOfOrder, SortKey, component_key, merge_join
from factory.diffing.model import Category, Difference, DiffKind, Level
from factory.diffing.streams import Opener, TarFacts, open_layer, uncompressed_digest
from factory.diffing.tarindex import compare_indexed
from factory.diffing.tarstream import TarEntry, TarReader

MAX_DETAILS = 200  # content differences rendered with a diff/hex context


@dataclass(frozen=True)
class LayerSide:
    label: str  # e.g. "A layer 1"
    digest: str
    opener: Opener
    diff_id: str | None = None  # as declared by the config (rootfs.diff_ids)


class LayerSink:
    """Turns matched entries into Differences in a collector."""

    def __init__(self, where: str, out: Collector, sde: int | None) -> None:
        self.where = where
        self.out = out
        self.sde = sde
        self.details = 0

    def one(self, a: TarEntry | None, b: TarEntry | None) -> None:
        self.out.add(presence(self.where, a, b, self.sde))

    def pair(self, a: TarEntry, b: TarEntry) -> None:
        self.out.extend(compare_entries(self.where, a, b, self.sde))

    def content(self, a: TarEntry, b: TarEntry, probe: ContentProbe | None) -> None:
        self.details += 1
        self.out.add(content_difference(self.where, a.display, probe, self.details <= MAX_DETAILS))


def _merge_pass(
    a: LayerSide, b: LayerSide, key: SortKey, sink: LayerSink
) -> tuple[TarFacts, TarFacts]:
    with open_layer(a.opener, a.diff_id) as la, open_layer(b.opener, b.diff_id) as lb:
        ra, rb = TarReader(la.reader, a.label), TarReader(lb.reader, b.label)
        merge_join(ra, rb, key, sink)
        ra.drain()
        rb.drain()
        return la.facts(ra.formats), lb.facts(rb.formats)


def _index_pass(
    a: LayerSide, b: LayerSide, sink: LayerSink
) -> tuple[TarFacts, TarFacts, str | None]:
    with tempfile.TemporaryDirectory(prefix="reprobase-diff-") as tmp:
        order, fa, fb = compare_indexed(a.opener, b.opener, (a.label, b.label), sink, Path(tmp))
    return fa, fb, order


def compare_layer(a: LayerSide, b: LayerSide, where: str, out: Collector, sde: int | None) -> None:
    order: str | None = None
    keys = list(KEYS)
    while True:
        scratch = out.child()
        sink = LayerSink(where, scratch, sde)
        key = keys.pop(0)
        try:
            fa, fb = _merge_pass(a, b, key, sink)
            break
        except OutOfOrder as exc:  # both sides must hold the order: one violation suffices
            keys = [k for k in keys if k in exc.still_sorted]
            if not keys:
                scratch = out.child()
                sink = LayerSink(where, scratch, sde)
                fa, fb, order = _index_pass(a, b, sink)
                break
    # Report files in path order whichever way they were matched (merge or index).
    scratch.kept.sort(key=lambda d: component_key(d.subject.lstrip("/")))
    entries_differ = bool(scratch.kept or scratch.truncated or scratch.ignored)
    if not entries_differ and fa.diff_id == fb.diff_id and order is None:
        # "only the compression differs" rests on the diff_ids: verify the declared ones.
        fa = replace(fa, diff_id=uncompressed_digest(a.opener))
        fb = replace(fb, diff_id=uncompressed_digest(b.opener))
    out.merge(scratch)
    out.extend(encoding_differences(where, fa, fb, order, entries_differ))


def encoding_differences(
    where: str, fa: TarFacts, fb: TarFacts, order: str | None, entries_differ: bool
) -> list[Difference]:
    """Layer-level explanations: tar header format, entry order, tar bytes, compression."""
    out: list[Difference] = []
    # A pax header appears where an entry needs one (an xattr, a long name): a change in
    # the set of formats only says something on its own, or when no format is shared.
    if fa.formats != fb.formats and (not entries_differ or not set(fa.formats) & set(fb.formats)):
        out.append(
            Difference(
                Level.LAYER,
                where,
                "tar",
                "header format",
                DiffKind.CHANGED,
                ", ".join(fa.formats),
                ", ".join(fb.formats),
                Category.HEADER_FORMAT,
                note="tar writers differ (GNU tar, Python tarfile, Go archive/tar choose different "
                "headers); write PAX headers explicitly",
            )
        )
    if order is not None:
        out.append(
            Difference(
                Level.LAYER,
                where,
                "tar",
                "entry order",
                DiffKind.CHANGED,
                None,
                None,
                Category.ENTRY_ORDER,
                note=f"same entries in another order (first at {order}): sort entries by path "
                "(tar --sort=name)",
            )
        )
    if fa.diff_id != fb.diff_id and not out and not entries_differ:
        out.append(
            Difference(
                Level.LAYER,
                where,
                "tar",
                "encoding",
                DiffKind.CHANGED,
                fa.diff_id,
                fb.diff_id,
                Category.HEADER_FORMAT,
                note="every entry is equal but the uncompressed tars differ: header encoding "
                "(pax records, padding, end-of-archive blocks)",
            )
        )
    if fa.compression != fb.compression or fa.diff_id == fb.diff_id:
        out.extend(compression_differences(where, fa, fb))
    return out


def compression_differences(where: str, fa: TarFacts, fb: TarFacts) -> list[Difference]:
    if fa.compression != fb.compression:
        return [
            Difference(
                Level.LAYER,
                where,
                "compression",
                "algorithm",
                DiffKind.CHANGED,
                fa.compression.value,
                fb.compression.value,
                Category.COMPRESSION,
                note=(
                    "same tar, compressed differently"
                    if fa.diff_id == fb.diff_id
                    else "compressed with another algorithm"
                )
                + ": pin the compressor and its version",
            )
        ]
    ga, gb = fa.gzip_header, fb.gzip_header
    if ga is not None and gb is not None and ga != gb:
        return [
            Difference(
                Level.LAYER,
                where,
                "compression",
                "gzip header",
                DiffKind.CHANGED,
                ga.describe(),
                gb.describe(),
                Category.COMPRESSION,
                note="gzip header fields differ (RFC 1952 §2.3): write MTIME 0 and a fixed OS byte",
            )
        ]
    return [
        Difference(
            Level.LAYER,
            where,
            "compression",
            "compressed bytes",
            DiffKind.CHANGED,
            fa.compression.value,
            fb.compression.value,
            Category.COMPRESSION,
            note="same tar, other compressed bytes: another compressor implementation, version or "
            "level (e.g. zlib vs zlib-ng vs isal); pin it",
        )
    ]
