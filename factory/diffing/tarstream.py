"""A streaming tar reader that keeps nothing but the current header.

tarfile keeps every TarInfo it has read (unbounded memory on big layers) and hides
the header format; this reader exposes both the entry's meaning and its encoding
(ustar, gnu, pax, v7; pax records) and the offset of its data, for the comparison.
Formats: POSIX.1-2001 pax (IEEE 1003.1 "pax Interchange Format"), ustar, GNU tar.
"""

from __future__ import annotations

import base64
import urllib.parse
from collections import Counter
from dataclasses import dataclass
from typing import BinaryIO

from factory.common.errors import UserError

BLOCK = 512
MAX_META = 16 << 20  # pax/longname records larger than this are corrupt, not data

TYPES: dict[bytes, str] = {
    b"0": "file",
    b"\0": "file",
    b"7": "file",
    b"S": "file",
    b"1": "hardlink",
    b"2": "symlink",
    b"3": "char",
    b"4": "block",
    b"5": "dir",
    b"6": "fifo",
}
# pax keys folded into the entry's own fields.
FOLDED = {"path", "linkpath", "size", "uid", "gid", "uname", "gname", "mtime"}


@dataclass(frozen=True, slots=True)
class TarEntry:
    path: str  # normalised: no leading "./" or "/", no trailing "/"; "" is the root
    type: str
    mode: int
    uid: int
    gid: int
    uname: str
    gname: str
    size: int
    mtime: float
    linkname: str
    devmajor: int
    devminor: int
    xattrs: tuple[tuple[str, bytes], ...]
    pax: tuple[tuple[str, str], ...]  # other pax records (atime, ctime, ...)
    format: str  # header format of this entry: pax, gnu, ustar, v7
    data_offset: int  # offset of the content in the uncompressed tar

    @property
    def display(self) -> str:
        return "/" + self.path


def normalise(name: str) -> str:
    while name.startswith("./"):
        name = name[2:]
    name = name.strip("/")
    return "" if name == "." else name


def _str(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


def _num(raw: bytes) -> int:
    if raw and raw[0] & 0x80:  # GNU base-256 for values that do not fit in octal
        value = int.from_bytes(raw[1:], "big")
        return value - (1 << (8 * len(raw) - 8)) if raw[0] == 0xFF else value
    text = raw.split(b"\0", 1)[0].strip(b" \0")
    return int(text, 8) if text else 0


def _parse_pax(data: bytes) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    pos = 0
    while pos < len(data) and data[pos] != 0:
        space = data.index(b" ", pos)
        length = int(data[pos:space])
        record = data[space + 1 : pos + length - 1]  # drop the trailing newline
        key, _, value = record.partition(b"=")
        out[key.decode("utf-8", "surrogateescape")] = value
        pos += length
    return out


class TarReader:
    """Reads entries one by one from a (buffered, uncompressed) tar stream."""

    def __init__(self, stream: BinaryIO, label: str) -> None:
        self.stream = stream
        self.label = label
        self.pos = 0
        self.remaining = 0  # unread content of the current entry
        self.padding = 0
        self.globals: dict[str, bytes] = {}
        self.formats: Counter[str] = Counter()

    def _read_exact(self, n: int) -> bytes:
        data = self.stream.read(n)
        while len(data) < n:
            more = self.stream.read(n - len(data))
            if not more:
                raise UserError(
                    f"{self.label}: tar stream truncated at byte {self.pos + len(data)}"
                )
            data += more
        self.pos += n
        return data

    def _skip(self, n: int) -> None:
        while n > 0:
            chunk = self.stream.read(min(n, 1 << 20))
            if not chunk:
                raise UserError(f"{self.label}: tar stream truncated at byte {self.pos}")
            n -= len(chunk)
            self.pos += len(chunk)

    def read(self, n: int) -> bytes:
        """Read up to n bytes of the current entry's content."""
        n = min(n, self.remaining)
        if n <= 0:
            return b""
        data = self._read_exact(n)
        self.remaining -= n
        return data

    def _finish_entry(self) -> None:
        self._skip(self.remaining + self.padding)
        self.remaining = self.padding = 0

    def _meta(self, size: int) -> bytes:
        if size > MAX_META:
            raise UserError(f"{self.label}: tar metadata record of {size} bytes at byte {self.pos}")
        data = self._read_exact(size)
        self._skip(-size % BLOCK)
        return data

    def next(self) -> TarEntry | None:
        """The next entry (skipping unread content), or None at the end of the archive."""
        try:
            return self._next()
        except ValueError as exc:  # a number or pax record that does not parse
            raise UserError(
                f"{self.label}: corrupt tar header before byte {self.pos} ({exc})"
            ) from None

    def _next(self) -> TarEntry | None:
        self._finish_entry()
        local: dict[str, bytes] = {}
        fmt = ""
        while True:
            header = self.stream.read(BLOCK)
            if 0 < len(header) < BLOCK:
                raise UserError(
                    f"{self.label}: tar stream truncated at byte {self.pos + len(header)}"
                )
            if not header or header == bytes(BLOCK):
                self.pos += len(header)
                return None
            self.pos += BLOCK
            self._check(header)
            flag = header[156:157]
            size = _num(header[124:136])
            if flag in (b"x", b"g"):
                records = _parse_pax(self._meta(size))
                (local if flag == b"x" else self.globals).update(records)
                fmt = "pax"
            elif flag in (b"L", b"K"):
                local["path" if flag == b"L" else "linkpath"] = self._meta(size).rstrip(b"\0")
                fmt = fmt or "gnu"
            else:
                return self._entry(header, {**self.globals, **local}, fmt)

    def _check(self, header: bytes) -> None:
        try:
            stored = _num(header[148:156])
        except ValueError:
            stored = -1
        computed = sum(header[:148]) + 8 * 32 + sum(header[156:])
        if stored == computed:
            return
        high = sum(1 for b in header[:148] + header[156:] if b > 127)
        if stored != computed - 256 * high:  # some old tars summed signed chars
            raise UserError(
                f"{self.label}: not a tar stream (bad header checksum at byte {self.pos - BLOCK})"
            )

    def _entry(self, h: bytes, pax: dict[str, bytes], fmt: str) -> TarEntry:
        magic = h[257:265]
        own = "gnu" if magic == b"ustar  \0" else "ustar" if magic[:5] == b"ustar" else "v7"
        name = _str(h[0:100])
        if own == "ustar" and h[345] != 0:
            name = _str(h[345:500]) + "/" + name
        text = {k: v.decode("utf-8", "surrogateescape") for k, v in pax.items()}
        size = int(text["size"]) if "size" in text else _num(h[124:136])
        flag = h[156:157]
        entry = TarEntry(
            path=normalise(text.get("path", name)),
            type=TYPES.get(flag, "type " + flag.decode("latin-1")),
            mode=_num(h[100:108]) & 0o7777,
            uid=int(text["uid"]) if "uid" in text else _num(h[108:116]),
            gid=int(text["gid"]) if "gid" in text else _num(h[116:124]),
            uname=text.get("uname", _str(h[265:297])),
            gname=text.get("gname", _str(h[297:329])),
            size=size if flag not in (b"1", b"2", b"3", b"4", b"5", b"6") else 0,
            mtime=float(text["mtime"]) if "mtime" in text else float(_num(h[136:148])),
            linkname=text.get("linkpath", _str(h[157:257])),
            devmajor=_num(h[329:337]) if own != "v7" else 0,
            devminor=_num(h[337:345]) if own != "v7" else 0,
            xattrs=_xattrs(pax),
            pax=tuple(
                sorted((k, v) for k, v in text.items() if k not in FOLDED and "xattr." not in k)
            ),
            format=fmt or own,
            data_offset=self.pos,
        )
        self.formats[entry.format] += 1
        self.remaining = size if flag not in (b"1", b"2", b"3", b"4", b"5", b"6") else 0
        self.padding = -self.remaining % BLOCK
        return entry

    def drain(self) -> None:
        """Read to the end of the stream (the trailer and padding count in the layer digest)."""
        self._finish_entry()
        while chunk := self.stream.read(1 << 20):
            self.pos += len(chunk)


def _xattrs(pax: dict[str, bytes]) -> tuple[tuple[str, bytes], ...]:
    out: dict[str, bytes] = {}
    for key, value in pax.items():
        if key.startswith("SCHILY.xattr."):
            out[key[len("SCHILY.xattr.") :]] = value
        elif key.startswith("LIBARCHIVE.xattr."):
            name = urllib.parse.unquote(key[len("LIBARCHIVE.xattr.") :])
            out[name] = base64.b64decode(value + b"=" * (-len(value) % 4))
    return tuple(sorted(out.items()))
