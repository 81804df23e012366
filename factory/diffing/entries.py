"""Comparing two tar entries of the same path, field by field (pure)."""

from __future__ import annotations

from factory.diffing import culprits
from factory.diffing.content import ContentProbe, describe
from factory.diffing.model import Category, Difference, DiffKind, Level, Value
from factory.diffing.tarstream import TarEntry

# pax records that carry timestamps (harmless); other unknown records only encode.
TIME_RECORDS = {"atime", "ctime", "LIBARCHIVE.creationtime"}


def fmt_mtime(v: float) -> int | float:
    return int(v) if v == int(v) else v


def _fields(e: TarEntry) -> dict[str, Value]:
    return {
        "type": e.type,
        "mode": f"{e.mode:04o}",
        "uid": e.uid,
        "gid": e.gid,
        "uname": e.uname,
        "gname": e.gname,
        "size": e.size,
        "mtime": fmt_mtime(e.mtime),
        "link target": e.linkname or None,
        "device": f"{e.devmajor},{e.devminor}" if e.type in ("char", "block") else None,
    }


def summary_of(e: TarEntry) -> str:
    extra = f" -> {e.linkname}" if e.linkname else f", {e.size} bytes" if e.type == "file" else ""
    return f"{e.type}, mode {e.mode:04o}, {e.uid}:{e.gid}{extra}"


def presence(
    where: str, a: TarEntry | None, b: TarEntry | None, sde: int | None = None
) -> Difference:
    e = a if a is not None else b
    assert e is not None
    late = culprits.mtime_note(a.mtime if a else None, b.mtime if b else None, sde)
    return Difference(
        level=Level.FILE,
        where=where,
        subject=e.display,
        field="",
        kind=DiffKind.REMOVED if b is None else DiffKind.ADDED,
        a=summary_of(a) if a else None,
        b=summary_of(b) if b else None,
        note=culprits.path_note(e.display) or late,
    )


def compare_entries(where: str, a: TarEntry, b: TarEntry, sde: int | None) -> list[Difference]:
    out = []
    fa, fb = _fields(a), _fields(b)
    for name, va in fa.items():
        vb = fb[name]
        if va != vb:
            cat = Category.TIMESTAMP if name == "mtime" else Category.BEHAVIOUR
            note = culprits.entry_note(a.display, name, va, vb, sde)
            out.append(
                Difference(Level.FILE, where, a.display, name, DiffKind.CHANGED, va, vb, cat, note)
            )
    out += _xattr_diffs(where, a, b)
    out += _pax_diffs(where, a, b)
    return out


def _xattr_diffs(where: str, a: TarEntry, b: TarEntry) -> list[Difference]:
    xa, xb = dict(a.xattrs), dict(b.xattrs)
    out = []
    for key in sorted(xa.keys() | xb.keys()):
        va, vb = xa.get(key), xb.get(key)
        if va != vb:
            out.append(
                Difference(
                    Level.FILE,
                    where,
                    a.display,
                    f"xattr {key}",
                    DiffKind.CHANGED,
                    va.hex() if va is not None else None,
                    vb.hex() if vb is not None else None,
                )
            )
    return out


def _pax_diffs(where: str, a: TarEntry, b: TarEntry) -> list[Difference]:
    pa, pb = dict(a.pax), dict(b.pax)
    out = []
    for key in sorted(pa.keys() | pb.keys()):
        if pa.get(key) != pb.get(key):
            cat = Category.TIMESTAMP if key in TIME_RECORDS else Category.HEADER_FORMAT
            out.append(
                Difference(
                    Level.FILE,
                    where,
                    a.display,
                    f"pax {key}",
                    DiffKind.CHANGED,
                    pa.get(key),
                    pb.get(key),
                    cat,
                )
            )
    return out


def content_difference(
    where: str, path: str, probe: ContentProbe | None, detail: bool
) -> Difference:
    """A content difference; `probe` is None when only hashes were compared."""
    if probe is None:
        return Difference(Level.FILE, where, path, "content", note=culprits.path_note(path))
    return Difference(
        Level.FILE,
        where,
        path,
        "content",
        note=culprits.content_note(path, probe.head_a, probe.head_b),
        detail=describe(path, probe) if detail else None,
        offset=probe.offset,
    )


def has_content(e: TarEntry) -> bool:
    return e.type == "file"
