"""Unit tests of the diff's pure pieces: tar headers, content probes, culprits, JSON."""

from __future__ import annotations

import io
import tarfile

import pytest

from factory.common.errors import UserError
from factory.diffing import culprits
from factory.diffing.content import ContentProbe, common_prefix, compare_streams, describe, hexdump
from factory.diffing.jsoncmp import compare_json, flatten
from factory.diffing.mergejoin import component_key
from factory.diffing.model import DiffKind
from factory.diffing.tarstream import TarReader, normalise

LONG = "usr/share/" + "very-long-directory-name/" * 8 + "file.txt"


def build(fmt: int) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tf:
        d = tarfile.TarInfo("./etc/")
        d.type, d.mode = tarfile.DIRTYPE, 0o755
        tf.addfile(d)
        f = tarfile.TarInfo(LONG)
        f.size, f.mode, f.uid, f.gid, f.uname, f.gname, f.mtime = 5, 0o4755, 1000, 1000, "u", "g", 3
        tf.addfile(f, io.BytesIO(b"hello"))
        link = tarfile.TarInfo("lnk")
        link.type, link.linkname = tarfile.SYMTYPE, "/" + LONG
        tf.addfile(link)
        hard = tarfile.TarInfo("hard")
        hard.type, hard.linkname = tarfile.LNKTYPE, LONG
        tf.addfile(hard)
        big = tarfile.TarInfo("big-uid")
        big.uid = 10_000_000  # > 7 octal digits: base-256 in GNU, pax record in PAX
        tf.addfile(big, io.BytesIO(b""))
    return buf.getvalue()


@pytest.mark.parametrize(
    ("fmt", "name"), [(tarfile.GNU_FORMAT, "gnu"), (tarfile.PAX_FORMAT, "pax")]
)
def test_tar_reader_formats(fmt: int, name: str) -> None:
    r = TarReader(io.BytesIO(build(fmt)), "t")
    entries = []
    while (e := r.next()) is not None:
        entries.append((e, r.read(100)))
    got = [(e.path, e.type, e.mode, e.uid, e.linkname, data) for e, data in entries]
    assert got == [
        ("etc", "dir", 0o755, 0, "", b""),
        (LONG, "file", 0o4755, 1000, "", b"hello"),
        ("lnk", "symlink", 0o644, 0, "/" + LONG, b""),
        ("hard", "hardlink", 0o644, 0, LONG, b""),
        ("big-uid", "file", 0o644, 10_000_000, "", b""),
    ]
    assert entries[1][0].format == name and entries[0][0].format in (name, "ustar")
    assert entries[1][0].uname == "u" and entries[1][0].mtime == 3


def test_tar_reader_xattrs_and_pax_records() -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        f = tarfile.TarInfo("bin/ping")
        f.pax_headers = {"SCHILY.xattr.security.capability": "\x01\x02", "atime": "5.5"}
        tf.addfile(f, io.BytesIO(b""))
    e = TarReader(io.BytesIO(buf.getvalue()), "t").next()
    assert e is not None
    assert e.xattrs == (("security.capability", b"\x01\x02"),)
    assert e.pax == (("atime", "5.5"),)


def test_tar_reader_rejects_garbage_and_truncation() -> None:
    with pytest.raises(UserError, match="bad header checksum"):
        TarReader(io.BytesIO(b"x" * 1024), "junk").next()
    data = build(tarfile.PAX_FORMAT)
    r = TarReader(io.BytesIO(data[:3000]), "cut")
    with pytest.raises(UserError, match="truncated"):
        while r.next() is not None:
            r.read(1 << 20)


def test_normalise_and_order() -> None:
    assert [normalise(p) for p in ("./", "./etc/", "/usr/bin", ".", "a//")] == [
        "",
        "etc",
        "usr/bin",
        "",
        "a",
    ]
    paths = ["a.b", "a/x", "a", ""]
    assert sorted(paths, key=component_key) == ["", "a", "a/x", "a.b"]


def test_common_prefix() -> None:
    assert common_prefix(b"abcdef", b"abcxef") == 3
    assert common_prefix(b"abc", b"abcd") == 3
    assert common_prefix(b"", b"a") == 0
    big = bytes(1 << 20)
    assert common_prefix(big, big[:777_777] + b"\1" + big[777_778:]) == 777_777


def test_compare_streams_chunks() -> None:
    a = io.BytesIO(b"A" * 3_000_000)
    b = io.BytesIO(b"A" * 2_999_999 + b"B")
    probe = compare_streams(a.read, b.read, 3_000_000, 3_000_000)
    assert probe is not None and probe.offset == 2_999_999
    assert probe.ctx_a.endswith(b"A") and probe.ctx_b.endswith(b"B")
    same = compare_streams(io.BytesIO(b"x").read, io.BytesIO(b"x").read, 1, 1)
    assert same is None


def test_hexdump_and_describe_binary() -> None:
    assert hexdump(18, b"\x00\x41") == ["00000010        00 41" + " " * 36 + "  |  .A            |"]
    probe = ContentProbe(2, 4, 4, b"\0\1\2\3", b"\0\1\x09\3", 0, b"\0\1\2\3", b"\0\1\x09\3")
    text = describe("/bin/x", probe)
    assert text.splitlines()[0] == "first difference at byte 2 (sizes 4 / 4)"


def test_culprits() -> None:
    assert culprits.path_note("/var/log/apt/history.log") is not None
    assert "aux-cache" in (culprits.path_note("/var/cache/ldconfig/aux-cache") or "")
    assert "bytecode" in (
        culprits.path_note("/usr/lib/python3/dist-packages/x/__pycache__/a.cpython-311.pyc") or ""
    )
    assert "machine-id" in (culprits.path_note("/etc/machine-id") or "")
    assert culprits.path_note("/usr/bin/ls") is None
    assert culprits.day(19675) == "2023-11-14"
    assert culprits.mtime_note(10, 20, 15) is not None and culprits.mtime_note(10, 12, 15) is None


def test_json_flatten_and_compare() -> None:
    doc = {"config": {"Env": ["A=1"], "Labels": {"org.x.y": "1"}}, "history": [{"created": "t"}]}
    assert flatten(doc) == {
        "config.Env": '["A=1"]',
        'config.Labels["org.x.y"]': "1",
        "history[0].created": "t",
    }
    other = {"config": {"Env": ["A=2"]}, "extra": True}
    assert compare_json(doc, other, skip=("history",)) == [
        ("config.Env", DiffKind.CHANGED, '["A=1"]', '["A=2"]'),
        ('config.Labels["org.x.y"]', DiffKind.REMOVED, "1", None),
        ("extra", DiffKind.ADDED, None, "true"),
    ]
