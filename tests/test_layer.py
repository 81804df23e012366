"""Canonical layer bytes: order, owners, mtimes, formats and compression must not matter."""

import gzip
import io
import tarfile
from pathlib import Path

import pytest

from factory.image.compress import Compression
from factory.image.layer import plan_entries, write_layer

EPOCH = 1795910400  # 2026-11-29T00:00:00Z


def _add(
    tf: tarfile.TarFile,
    name: str,
    *,
    data: bytes | None = None,
    type_: bytes = tarfile.REGTYPE,
    mtime: int = EPOCH - 100,
    linkname: str = "",
    mode: int = 0o644,
    uname: str = "root",
    pax: dict[str, str] | None = None,
) -> None:
    t = tarfile.TarInfo(name)
    t.type = type_
    t.mtime = mtime
    t.mode = mode
    t.uname = t.gname = uname
    t.linkname = linkname
    if pax:
        t.pax_headers = dict(pax)
    if data is not None:
        t.size = len(data)
    tf.addfile(t, io.BytesIO(data) if data is not None else None)


def make_rootfs_tar(
    path: Path,
    *,
    reverse: bool = False,
    late: int = 0,
    fmt: int = tarfile.PAX_FORMAT,
    uname: str = "root",
) -> None:
    entries = [
        ("./", dict(type_=tarfile.DIRTYPE, mode=0o755)),
        ("./etc/", dict(type_=tarfile.DIRTYPE, mode=0o755)),
        ("./etc/hostname", dict(data=b"localhost\n")),
        ("./usr/", dict(type_=tarfile.DIRTYPE, mode=0o755)),
        ("./usr/bin/", dict(type_=tarfile.DIRTYPE, mode=0o755)),
        ("./usr/bin/perl", dict(data=b"\x7fELF perl", mode=0o755)),
        ("./usr/bin/perl5.36.0", dict(type_=tarfile.LNKTYPE, linkname="./usr/bin/perl")),
        (
            "./usr/bin/ping",
            dict(
                data=b"\x7fELF ping",
                mode=0o4755,
                pax={
                    "SCHILY.xattr.security.capability": "\x01\x00\x00\x02",
                    "SCHILY.xattr.user.junk": "x",
                    "atime": "123.5",
                },
            ),
        ),
        ("./usr/bin/sh", dict(type_=tarfile.SYMTYPE, linkname="dash")),
        ("./dev/", dict(type_=tarfile.DIRTYPE, mode=0o755)),
        ("./dev/null", dict(type_=tarfile.CHRTYPE, mode=0o666)),
    ]
    if reverse:
        # a hard link must follow its target in a tar: keep that pair in order
        entries = entries[::-1]
        entries.sort(key=lambda e: e[0] == "./usr/bin/perl5.36.0")
    with tarfile.open(path, "w", format=fmt) as tf:
        for name, kw in entries:
            kw = dict(kw)
            # files touched during the build are newer than the epoch; the rest are older
            kw["mtime"] = EPOCH - 100 if name != "./etc/hostname" else EPOCH + late
            _add(tf, name, uname=uname, **kw)  # type: ignore[arg-type]


def _members(blob: bytes) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(blob)), mode="r:") as tf:
        return tf.getmembers()


def test_same_bytes_whatever_order_format_owner_names_and_late_mtimes(tmp_path: Path) -> None:
    make_rootfs_tar(tmp_path / "a.tar")
    make_rootfs_tar(tmp_path / "b.tar", reverse=True, late=86400 * 3, uname="")
    ra = write_layer(tmp_path / "a.tar", tmp_path / "a.gz", Compression.GZIP, EPOCH)
    rb = write_layer(tmp_path / "b.tar", tmp_path / "b.gz", Compression.GZIP, EPOCH)
    assert (tmp_path / "a.gz").read_bytes() == (tmp_path / "b.gz").read_bytes()
    assert ra == rb


def test_canonical_entries(tmp_path: Path) -> None:
    make_rootfs_tar(tmp_path / "a.tar", late=500)
    write_layer(tmp_path / "a.tar", tmp_path / "a.gz", Compression.GZIP, EPOCH)
    ms = _members((tmp_path / "a.gz").read_bytes())
    names = [m.name for m in ms]
    assert names == sorted(names, key=str.encode)
    assert "dev/null" not in names and "dev" in names  # device nodes dropped, the dir kept
    assert all(m.mtime <= EPOCH for m in ms)  # clamped
    assert all(m.uname == "" and m.gname == "" for m in ms)
    link = next(m for m in ms if m.name == "usr/bin/perl5.36.0")
    assert link.islnk() and link.linkname == "usr/bin/perl"
    ping = next(m for m in ms if m.name == "usr/bin/ping")
    assert ping.mode == 0o4755
    assert set(ping.pax_headers) == {"SCHILY.xattr.security.capability"}


def test_hardlink_leader_is_first_in_sort_order() -> None:
    reg = tarfile.TarInfo("./z/original")
    reg.size = 3
    lnk = tarfile.TarInfo("./a/alias")
    lnk.type, lnk.linkname = tarfile.LNKTYPE, "./z/original"
    plan = plan_entries([reg, lnk])
    assert [(p.header.name, p.header.type, p.header.linkname) for p in plan] == [
        ("a/alias", tarfile.REGTYPE, ""),
        ("z/original", tarfile.LNKTYPE, "a/alias"),
    ]
    assert plan[0].data_from is reg and plan[1].data_from is None


# Golden digests: if one of these changes, every published image changes. That
# must only happen on purpose (and then the compressor's recorded version changes too).
GOLDEN = {
    Compression.GZIP: "sha256:78d985399ebd8b7682ea9bd00114d43eb435b9957a24d0c792b53a1739dc4463",
    Compression.ZSTD: "sha256:d128c22db2b85d79741e411e32a6b4e4fffcf750a50cff12788f193fb3697339",
}


@pytest.mark.parametrize("comp", list(Compression))
def test_golden_layer_digest(tmp_path: Path, comp: Compression) -> None:
    make_rootfs_tar(tmp_path / "a.tar")
    r = write_layer(tmp_path / "a.tar", tmp_path / "layer", comp, EPOCH)
    assert r.diff_id == "sha256:3667deb5b700aa2f37028c0d1a25995560000a87f4155c212eb51bc9b15b7959"
    assert r.digest == GOLDEN[comp]


@pytest.mark.parametrize("comp", list(Compression))
def test_layer_writer_leaves_nothing_but_the_blob(tmp_path: Path, comp: Compression) -> None:
    """The canonical tar is spooled to an unnamed temporary file beside the output."""
    make_rootfs_tar(tmp_path / "a.tar")
    out = tmp_path / "blobs"
    out.mkdir()
    r = write_layer(tmp_path / "a.tar", out / "layer", comp, EPOCH)
    assert sorted(p.name for p in out.iterdir()) == ["layer"]
    assert (out / "layer").stat().st_size == r.size
    raw = (out / "layer").read_bytes()
    tar = gzip.decompress(raw) if comp is Compression.GZIP else zstandard_decompress(raw)
    assert len(tar) == r.uncompressed_size


def zstandard_decompress(blob: bytes) -> bytes:
    import zstandard

    return zstandard.ZstdDecompressor().stream_reader(io.BytesIO(blob)).read()
