"""`reprobase diff`: pairs of images that differ in known ways, and what the report says."""

from __future__ import annotations

import json
import os
import tarfile
from pathlib import Path
from typing import Any

import pytest

from factory.cli import main
from factory.diffing import Category, DiffReport, Level, diff_images, render_summary, render_text
from tests.diff_fixtures import (
    SDE,
    F,
    Image,
    base_files,
    docker_archive,
    gz,
    layer,
    layout_to_archive,
    make_tar,
    shadow,
    simple,
    write_layout,
)

GOLDEN = Path(__file__).parent / "golden" / "diff"
LAYER0 = "linux/amd64 layer 0"
FILE_CHANGELOG = "file, mode 0644, 0:0, 238 bytes"  # changelog.gz, libdeflate level 6


def rows(report: DiffReport) -> list[tuple[Any, ...]]:
    return [(d.where, d.subject, d.field, d.kind.value, d.a, d.b) for d in report.differences]


def change(files: list[F], path: str, **kw: Any) -> list[F]:
    assert any(f.path == path for f in files)
    return [f.but(**kw) if f.path == path else f for f in files]


def pair(tmp: Path, files_b: list[F], comp_b: str = "gzip", **kw: Any) -> tuple[Path, Path]:
    return simple(tmp / "a", base_files()), simple(tmp / "b", files_b, comp_b, **kw)


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("REPROBASE_UPDATE_GOLDEN"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert text == path.read_text()


# --- identical ------------------------------------------------------------------


def test_identical_layouts(tmp_path: Path) -> None:
    a, b = pair(tmp_path, base_files())
    report = diff_images(a, b)
    assert report.identical and report.differences == ()
    assert render_summary(report) == f"{a} and {b} are identical"
    assert main(["diff", str(a), str(b)]) == 0


# --- files ----------------------------------------------------------------------


def test_changed_file_content(tmp_path: Path) -> None:
    a, b = pair(tmp_path, change(base_files(), "etc/hostname", data=b"buildhost\n"))
    report = diff_images(a, b)
    assert rows(report) == [(LAYER0, "/etc/hostname", "content", "changed", None, None)]
    d = report.differences[0]
    assert d.level is Level.FILE and d.offset == 0
    assert d.detail is not None and "-reprobase\n+buildhost" in d.detail
    assert d.note is not None and "host's name" in d.note
    assert report.levels == (Level.FILE,)


def test_mode(tmp_path: Path) -> None:
    a, b = pair(tmp_path, change(base_files(), "etc/passwd", mode=0o600))
    assert rows(diff_images(a, b)) == [(LAYER0, "/etc/passwd", "mode", "changed", "0644", "0600")]


def test_mtime_newer_than_source_date_epoch_and_semantic(tmp_path: Path) -> None:
    a, b = pair(tmp_path, change(base_files(), "usr/bin/tool", mtime=SDE + 3600))
    report = diff_images(a, b)
    assert rows(report) == [(LAYER0, "/usr/bin/tool", "mtime", "changed", SDE, SDE + 3600)]
    d = report.differences[0]
    assert d.category is Category.TIMESTAMP
    assert d.note is not None and f"newer than SOURCE_DATE_EPOCH ({SDE}) in B" in d.note
    sem = diff_images(a, b, semantic=True)
    assert sem.identical
    assert [(g.category, g.count) for g in sem.ignored] == [(Category.TIMESTAMP, 1)]
    assert "ignored as harmless (--semantic): 1 x timestamp" in render_summary(sem)


def test_explicit_source_date_epoch(tmp_path: Path) -> None:
    a, b = pair(tmp_path, change(base_files(), "usr/bin/tool", mtime=SDE - 10))
    d = diff_images(a, b, source_date_epoch=SDE - 100).differences[0]
    assert d.note is not None and "in A and B" in d.note
    assert diff_images(a, b).differences[0].note is None  # both older than the config's created


def test_user_added_on_another_day(tmp_path: Path) -> None:
    """useradd writes today's day number into /etc/shadow."""
    a, b = pair(tmp_path, change(base_files(), "etc/shadow", data=shadow(19676)))
    report = diff_images(a, b)
    assert rows(report) == [(LAYER0, "/etc/shadow", "content", "changed", None, None)]
    d = report.differences[0]
    assert d.offset == len("root:*:1967")
    assert d.note is not None
    assert "root 2023-11-14 vs 2023-11-15" in d.note and "SOURCE_DATE_EPOCH" in d.note
    assert not diff_images(a, b, semantic=True).identical  # behaviour: password ageing


def test_added_removed_owner_link_xattr(tmp_path: Path) -> None:
    files = [f for f in base_files() if f.path != "usr/share/doc/pkg/changelog.gz"]
    files = change(files, "usr/bin/tool-link", linkname="tool2")
    files = change(files, "etc/shadow", uid=7, uname="lp")
    files = change(files, "usr/bin/tool", xattrs=(("security.capability", "\x01"),))
    files.append(F("var/log/dpkg.log", b"install x\n"))
    a, b = pair(tmp_path, files)
    assert rows(diff_images(a, b)) == [
        (LAYER0, "/etc/shadow", "uid", "changed", 0, 7),
        (LAYER0, "/etc/shadow", "uname", "changed", "root", "lp"),
        (LAYER0, "/usr/bin/tool", "xattr security.capability", "changed", None, "01"),
        (LAYER0, "/usr/bin/tool-link", "link target", "changed", "tool", "tool2"),
        (LAYER0, "/usr/share/doc/pkg/changelog.gz", "", "removed", FILE_CHANGELOG, None),
        (LAYER0, "/var/log/dpkg.log", "", "added", None, "file, mode 0644, 0:0, 10 bytes"),
    ]


def test_type_change(tmp_path: Path) -> None:
    files = change(
        base_files(), "usr/bin/tool-link", type="file", linkname="", data=b"x", mode=0o755
    )
    a, b = pair(tmp_path, files)
    assert rows(diff_images(a, b)) == [
        (LAYER0, "/usr/bin/tool-link", "type", "changed", "symlink", "file"),
        (LAYER0, "/usr/bin/tool-link", "mode", "changed", "0777", "0755"),
        (LAYER0, "/usr/bin/tool-link", "size", "changed", 0, 1),
        (LAYER0, "/usr/bin/tool-link", "link target", "changed", "tool", None),
    ]


def test_binary_content_hex_context(tmp_path: Path) -> None:
    data = bytearray(bytes(range(256)) * 64)
    data[5000] ^= 0xFF
    a, b = pair(tmp_path, change(base_files(), "usr/bin/tool", data=bytes(data)))
    d = diff_images(a, b).differences[0]
    assert (d.subject, d.field, d.offset) == ("/usr/bin/tool", "content", 5000)
    assert d.detail is not None
    assert d.detail.splitlines()[0] == "first difference at byte 5000 (sizes 16384 / 16384)"
    assert "00001380  " in d.detail and " 77 " in d.detail and " 88 " in d.detail  # 5000 = 0x1388


def test_gzip_text_is_diffed_decompressed(tmp_path: Path) -> None:
    text = b"".join(
        f"pkg ({i}.0) stable; urgency=low\n  * change {i}\n".encode() for i in range(40)
    )
    files = change(
        base_files(),
        "usr/share/doc/pkg/changelog.gz",
        data=gz(text.replace(b"change 7\n", b"fix 7\n")),
    )
    a, b = pair(tmp_path, files)
    d = diff_images(a, b).differences[-1]
    assert d.subject == "/usr/share/doc/pkg/changelog.gz" and d.field == "content"
    assert d.detail is not None and d.detail.startswith("(decompressed)")
    assert "-  * change 7\n+  * fix 7" in d.detail


def test_gzip_header_mtime_only(tmp_path: Path) -> None:
    text = b"same text\n"
    base = change(base_files(), "usr/share/doc/pkg/changelog.gz", data=gz(text))
    files = change(base_files(), "usr/share/doc/pkg/changelog.gz", data=gz(text, mtime=SDE))
    a, b = simple(tmp_path / "a", base), simple(tmp_path / "b", files)
    d = diff_images(a, b).differences[0]
    assert d.detail == "decompressed contents are equal: only the gzip header or encoding differs"
    assert d.note is not None and "gzip -n" in d.note


def test_large_file_difference_offset(tmp_path: Path) -> None:
    """The first difference beyond the kept head (1 MiB) is still located exactly."""
    big = bytes(range(256)) * (3 << 12)  # 3 MiB
    changed = big[:2_500_000] + b"\xff" + big[2_500_001:]
    a = simple(tmp_path / "a", [*base_files(), F("big.bin", big)])
    b = simple(tmp_path / "b", [*base_files(), F("big.bin", changed)])
    d = diff_images(a, b).differences[0]
    assert (d.subject, d.offset) == ("/big.bin", 2_500_000)
    assert d.detail is not None and "first difference at byte 2500000" in d.detail


# --- tar encoding and compression --------------------------------------------------


def test_reordered_tar(tmp_path: Path) -> None:
    a = simple(tmp_path / "a", base_files())
    b = write_layout(
        tmp_path / "b", [Image((layer(make_tar(reversed(base_files()), sort=False)),))]
    )
    report = diff_images(a, b)
    assert rows(report) == [(LAYER0, "tar", "entry order", "changed", None, None)]
    assert report.differences[0].level is Level.LAYER
    note = report.differences[0].note
    assert note is not None and "(first at entry 0: /etc in A, /var/log in B)" in note
    sem = diff_images(a, b, semantic=True)
    assert sem.identical and [g.category for g in sem.ignored] == [Category.ENTRY_ORDER]


def test_reordered_tar_with_changes_uses_the_index(tmp_path: Path) -> None:
    big = bytes(range(256)) * (3 << 12)
    files_a = [*base_files(), F("big.bin", big)]
    files_b = change(files_a, "big.bin", data=big[:2_000_000] + b"\0" + big[2_000_001:])
    files_b = change(files_b, "etc/passwd", mode=0o600)
    a = simple(tmp_path / "a", files_a)
    b = write_layout(tmp_path / "b", [Image((layer(make_tar(reversed(files_b), sort=False)),))])
    report = diff_images(a, b)
    assert rows(report) == [
        (LAYER0, "/big.bin", "content", "changed", None, None),
        (LAYER0, "/etc/passwd", "mode", "changed", "0644", "0600"),
        (LAYER0, "tar", "entry order", "changed", None, None),
    ]
    assert report.differences[0].offset == 2_000_000
    sem = diff_images(a, b, semantic=True)
    assert [(d.subject, d.field) for d in sem.differences] == [
        ("/big.bin", "content"),
        ("/etc/passwd", "mode"),
    ]


@pytest.mark.parametrize("order", ["string", "component"])
def test_sorted_tars_merge_without_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, order: str
) -> None:
    """Tars sorted as path strings (our factory: "a.b" before "a/x") or per directory
    (tar --sort=name: "a/x" before "a.b") are merged in one pass, without the index."""
    import factory.diffing.layers as layers

    def no_index(*_: object) -> None:
        raise AssertionError("fell back to the index")

    monkeypatch.setattr(layers, "_index_pass", no_index)
    files = [F("a", type="dir", mode=0o755), F("a.b", b"1"), F("a/x", b"2"), F("a/y", b"")]
    if order == "component":
        files = [files[0], files[2], files[3], files[1]]
    tar = make_tar(files, sort=False)
    changed = make_tar(change(files, "a/x", data=b"3"), sort=False)
    a = write_layout(tmp_path / "a", [Image((layer(tar),))])
    b = write_layout(tmp_path / "b", [Image((layer(changed),))])
    assert rows(diff_images(a, b)) == [(LAYER0, "/a/x", "content", "changed", None, None)]


def test_different_compressor(tmp_path: Path) -> None:
    a, b = pair(tmp_path, base_files(), comp_b="zstd")
    report = diff_images(a, b)
    assert rows(report) == [(LAYER0, "compression", "algorithm", "changed", "gzip", "zstd")]
    assert report.differences[0].category is Category.COMPRESSION
    sem = diff_images(a, b, semantic=True)
    assert sem.identical and [g.category for g in sem.ignored] == [Category.COMPRESSION]


def test_gzip_header_of_layer(tmp_path: Path) -> None:
    tar = make_tar(base_files())
    a = simple(tmp_path / "a", base_files())
    lay = layer(tar)
    b = write_layout(
        tmp_path / "b", [Image((type(lay)(gz(tar, mtime=SDE), lay.diff_id, lay.media_type),))]
    )
    assert rows(diff_images(a, b)) == [
        (LAYER0, "compression", "gzip header", "changed", "mtime 0, OS 255, XFL 0",
         f"mtime {SDE}, OS 255, XFL 0"),
    ]  # fmt: skip


def test_tar_header_format(tmp_path: Path) -> None:
    a = simple(tmp_path / "a", base_files())
    b = write_layout(
        tmp_path / "b", [Image((layer(make_tar(base_files(), fmt=tarfile.GNU_FORMAT)),))]
    )
    report = diff_images(a, b)
    assert rows(report) == [(LAYER0, "tar", "header format", "changed", "ustar", "gnu")]
    assert diff_images(a, b, semantic=True).identical


def test_pax_mtime_fraction_is_timestamp(tmp_path: Path) -> None:
    a, b = pair(tmp_path, change(base_files(), "etc/passwd", mtime=SDE + 0.5))
    assert rows(diff_images(a, b)) == [(LAYER0, "/etc/passwd", "mtime", "changed", SDE, SDE + 0.5)]
    assert diff_images(a, b, semantic=True).identical


# --- index, manifests, config ------------------------------------------------------


def test_config_env_created_history(tmp_path: Path) -> None:
    lay = layer(make_tar(base_files()))
    a = write_layout(tmp_path / "a", [Image((lay,))])
    b = write_layout(
        tmp_path / "b", [Image((lay,), created=SDE + 86400, env=("PATH=/bin",), history="other")]
    )
    report = diff_images(a, b)
    c = "linux/amd64 config"
    assert rows(report) == [
        (c, "config.Env", "", "changed",
         '["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]', '["PATH=/bin"]'),
        (c, "created", "", "changed", "2023-11-14T22:13:20Z", "2023-11-15T22:13:20Z"),
        (c, "history[0].created", "", "changed", "2023-11-14T22:13:20Z", "2023-11-15T22:13:20Z"),
        (c, "history[0].created_by", "", "changed", "reprobase build images/bookworm.toml",
         "other"),
    ]  # fmt: skip
    assert report.levels == (Level.CONFIG,)
    sem = diff_images(a, b, semantic=True)
    assert rows(sem) == [rows(report)[0]]
    assert {g.category: g.count for g in sem.ignored} == {
        Category.TIMESTAMP: 1,
        Category.HISTORY: 2,
    }


def test_index_annotations_stop_at_index(tmp_path: Path) -> None:
    img = Image((layer(make_tar(base_files())),))
    a = write_layout(tmp_path / "a", [img], annotations={"org.opencontainers.image.version": "1"})
    b = write_layout(tmp_path / "b", [img], annotations={"org.opencontainers.image.version": "2"})
    assert rows(diff_images(a, b)) == [
        ("index.json", 'annotations["org.opencontainers.image.version"]', "", "changed", "1", "2")
    ]


def test_platforms_matched_and_missing(tmp_path: Path) -> None:
    lay = layer(make_tar(base_files()))
    changed = layer(make_tar(change(base_files(), "etc/passwd", mode=0o600)))
    a = write_layout(tmp_path / "a", [Image((lay,)), Image((lay,), arch="arm64")], nested=True)
    b = write_layout(
        tmp_path / "b",
        [Image((changed,), arch="arm64"), Image((lay,), arch="riscv64")],
        nested=True,
    )
    report = diff_images(a, b)
    got = [(d.level.value, d.where, d.subject, d.kind.value) for d in report.differences]
    assert got == [
        ("index", "ref latest", "manifests[linux/amd64]", "removed"),
        ("file", "linux/arm64/v8 layer 0", "/etc/passwd", "changed"),
        ("index", "ref latest", "manifests[linux/riscv64]", "added"),
    ]


def test_layer_count(tmp_path: Path) -> None:
    lay = layer(make_tar(base_files()))
    extra = layer(make_tar([F("opt", type="dir", mode=0o755)]))
    a = write_layout(tmp_path / "a", [Image((lay,))])
    b = write_layout(tmp_path / "b", [Image((lay, extra))])
    got = [(d.level.value, d.subject, d.kind.value) for d in diff_images(a, b).differences]
    assert got == [("manifest", "layers[1]", "added")]


# --- archives ----------------------------------------------------------------------


def test_oci_archive_against_layout(tmp_path: Path) -> None:
    a, b = pair(tmp_path, change(base_files(), "etc/passwd", mode=0o600))
    archive = layout_to_archive(a, tmp_path / "a.tar")
    assert diff_images(archive, a).identical
    assert rows(diff_images(archive, b)) == [
        (LAYER0, "/etc/passwd", "mode", "changed", "0644", "0600")
    ]
    gzipped = tmp_path / "a.tar.gz"
    gzipped.write_bytes(gz(archive.read_bytes()))
    assert diff_images(gzipped, a).identical


def test_docker_archives(tmp_path: Path) -> None:
    img_a = Image((layer(make_tar(base_files())),))
    img_b = Image((layer(make_tar(change(base_files(), "etc/hostname", data=b"other\n"))),))
    a = docker_archive(tmp_path / "a.tar", img_a)
    b = docker_archive(tmp_path / "b.tar", img_b)
    assert diff_images(a, a).identical
    assert rows(diff_images(a, b)) == [
        (LAYER0, "/etc/hostname", "size", "changed", 10, 6),
        (LAYER0, "/etc/hostname", "content", "changed", None, None),
    ]


# --- command line ------------------------------------------------------------------


def test_cli_exit_codes_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a, b = pair(tmp_path, change(base_files(), "etc/passwd", mode=0o600))
    assert main(["diff", str(a), str(a)]) == 0
    assert "are identical" in capsys.readouterr().out
    assert main(["diff", str(a), str(b), "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["identical"] is False and doc["levels"] == ["file"]
    assert doc["differences"] == [{
        "level": "file", "where": LAYER0, "subject": "/etc/passwd", "field": "mode",
        "kind": "changed", "a": "0644", "b": "0600", "category": "behaviour",
    }]  # fmt: skip
    assert main(["diff", str(a), str(b), "--summary"]) == 1
    assert capsys.readouterr().out.splitlines()[1] == f"  {LAYER0}: /etc/passwd (mode)"


def test_cli_missing_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = simple(tmp_path / "a", base_files())
    assert main(["diff", str(a), str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"error: {tmp_path}/nope: no such file or directory (hint: pass an OCI layout "
        "directory, an image archive tar or a registry reference)\n"
    )


def test_cli_not_an_image(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"not a tar" * 100)
    (tmp_path / "emptydir").mkdir()
    assert main(["diff", str(junk), str(junk)]) == 2
    assert main(["diff", str(tmp_path / "emptydir"), str(junk)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and all(line.startswith("error: ") for line in err)
    assert "not a readable tar archive" in err[0] and "is not an OCI image layout" in err[1]


def test_registry_reference_hook(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a = simple(tmp_path / "a", base_files())
    calls = []

    def pull_to_layout_sync(ref: str, dest: Path) -> Path:
        calls.append(ref)
        import shutil

        shutil.copytree(a, dest)
        return dest

    import factory.registry.pull

    monkeypatch.setattr(factory.registry.pull, "pull_to_layout_sync", pull_to_layout_sync)
    assert diff_images("registry.example:5000/base:bookworm", a).identical
    assert calls == ["registry.example:5000/base:bookworm"]


# --- golden reports ----------------------------------------------------------------


def golden_pair(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    monkeypatch.chdir(tmp_path)
    files = change(base_files(), "etc/shadow", data=shadow(19676))
    files = change(files, "etc/passwd", mode=0o600)
    files = change(files, "usr/bin/tool", mtime=SDE + 60)
    files.append(F("var/log/dpkg.log", b"2023-11-15 install app\n"))
    simple(Path("a"), base_files())
    simple(Path("b"), files, created=SDE)
    return "a", "b"


def test_golden_text_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = golden_pair(tmp_path, monkeypatch)
    check_golden("user-day-mode-mtime-log.txt", render_text(diff_images(a, b)))


def test_golden_semantic_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = golden_pair(tmp_path, monkeypatch)
    doc = diff_images(a, b, semantic=True).to_json()
    check_golden("user-day-mode-mtime-log.semantic.json", json.dumps(doc, indent=2) + "\n")


def test_golden_compression_and_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    simple(Path("a"), base_files())
    write_layout(Path("b"), [Image((layer(make_tar(reversed(base_files()), sort=False), "zstd"),))])
    check_golden("order-and-zstd.txt", render_text(diff_images("a", "b")))
    check_golden("order-and-zstd.semantic.txt", render_text(diff_images("a", "b", semantic=True)))


def test_factory_layers_merge_in_one_pass(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The factory's canonical layers (factory.image.layer) are sorted the way the merge expects."""
    import factory.diffing.layers as layers
    from factory.image import oci
    from factory.image.compress import Compression
    from factory.image.layer import write_layer

    def no_index(*_: object) -> None:
        raise AssertionError("fell back to the index")

    monkeypatch.setattr(layers, "_index_pass", no_index)
    dirs = ("usr/lib", "usr/lib/python3", "usr/lib/python3.11")
    extra = [*(F(d, type="dir", mode=0o755) for d in dirs), F("usr/lib/python3/x.py", b"x")]
    layouts = []
    for name, files in (("a", base_files()), ("b", change(base_files(), "etc/passwd", mode=0o600))):
        src = tmp_path / f"{name}.src.tar"
        src.write_bytes(make_tar(reversed(files + extra), sort=False))
        res = write_layer(src, tmp_path / f"{name}.layer", Compression.GZIP, SDE)
        blob = (tmp_path / f"{name}.layer").read_bytes()
        lay = type(layer(b""))(blob, res.diff_id, oci.MT_LAYER_GZIP)
        layouts.append(write_layout(tmp_path / name, [Image((lay,))]))
    assert rows(diff_images(*layouts)) == [
        (LAYER0, "/etc/passwd", "mode", "changed", "0644", "0600")
    ]
