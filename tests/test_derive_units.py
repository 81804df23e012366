"""Derived images, pure parts: Containerfile rules, the canonical context, the layer
normalisation and re-serialisation, the config we take from buildah (and what we drop),
buildah's argv, and one-line refusals from the command line."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest

from factory.common.arch import Architecture
from factory.common.errors import UserError
from factory.derive import context as ctxmod
from factory.derive.base import check_ours, split_digest
from factory.derive.buildah import MOUNT_FAKETIME, StepsJob, bud_argv, build_env, push_argv
from factory.derive.changes import BaseTree
from factory.derive.containerfile import Keyword, parse, parse_build_args
from factory.derive.describe import DerivedSpec, derived_config, settings
from factory.derive.reserialise import Rule, normalise_tar, reserialise, rule_for
from factory.image.compress import Compression
from factory.image.layer import LayerResult
from factory.rootfs.buildenv import env_a, env_b
from tests.registry_fixtures import make_layout

SDE = 1796169600  # 2026-12-02T00:00:00Z
ROOT = Path(__file__).resolve().parent.parent


# -- Containerfile -----------------------------------------------------------------------
def test_a_single_stage_containerfile_parses_with_arg_substitution() -> None:
    text = (
        '# c\nARG BASE=oci:/x\nFROM ${BASE}:slim\nRUN echo a \\\n  && echo b\nARG V=1\nCMD ["x"]\n'
    )
    cf = parse(text, {})
    assert cf.base == "oci:/x:slim"
    assert [i.keyword for i in cf.instructions] == [
        Keyword.ARG, Keyword.FROM, Keyword.RUN, Keyword.ARG, Keyword.CMD
    ]  # fmt: skip
    assert cf.instructions[2].args == "echo a  && echo b"
    assert (cf.instructions[2].line, cf.instructions[2].end_line) == (4, 5)
    assert cf.declared_args == frozenset({"V"})
    assert parse(text, {"BASE": "reg.invalid/r"}).base == "reg.invalid/r:slim"
    assert Keyword.RUN.changes_files and not Keyword.ENV.changes_files
    assert len({k.value for k in Keyword}) == len(list(Keyword))  # no aliases


def test_with_args_declares_missing_args_after_from_only_in_the_run_copy() -> None:
    cf = parse("FROM oci:/b \\\n  AS x\nARG TZ\nRUN date\n", {})
    run = cf.with_args(["SOURCE_DATE_EPOCH", "TZ"])
    assert run == "FROM oci:/b \\\n  AS x\nARG SOURCE_DATE_EPOCH\nARG TZ\nRUN date\n"
    assert cf.text.count("SOURCE_DATE_EPOCH") == 0  # what the image records is untouched


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("FROM oci:/a\nFROM oci:/b\n", "a second FROM"),
        ("FROM scratch\n", "not a reprobase image"),
        ("RUN x\n", "no FROM"),
        ("FROM oci:/a\nADD https://example.invalid/x /x\n", "ADD of a URL"),
        ("FROM oci:/a\nCOPY --from=b /x /x\n", "one stage only"),
        ("FROM oci:/a\nRUN --mount=type=secret,id=k cat /run/secrets/k\n", "secret"),
        ("FROM oci:/a\nFROBNICATE x\n", "unknown instruction"),
        ("RUN x\nFROM oci:/a\n", "only ARG may come before FROM"),
        ("ENV A=1\nFROM oci:/a\n", "only ARG may come before FROM"),
    ],
)
def test_what_cannot_be_reproduced_is_refused_in_one_line(text: str, words: str) -> None:
    with pytest.raises(UserError) as exc:
        parse(text, {})
    assert words in exc.value.message and "\n" not in exc.value.render()


def test_build_args() -> None:
    assert parse_build_args(["A=1", "B=x=y", "C="]) == {"A": "1", "B": "x=y", "C": ""}
    for bad, words in (
        (["http_proxy=http://x.invalid"], "set by reprobase"),
        (["LD_PRELOAD=/x"], "set by reprobase"),
        (["A"], "NAME=VALUE"),
        (["A=1", "A=2"], "twice"),
    ):
        with pytest.raises(UserError, match=words):
            parse_build_args(bad)


# -- base ----------------------------------------------------------------------------------
def test_a_base_must_be_ours_and_pinned() -> None:
    with pytest.raises(UserError, match="not a reprobase image"):
        check_ours({"org.opencontainers.image.title": "debian"}, "reg.invalid/debian")
    ours = {"org.reprobase.snapshot": "20261202T000000Z", "org.reprobase.source-date-epoch": "1"}
    check_ours(ours, "x")
    check_ours({**ours, "org.reprobase.packages-from": "recorded-mirror"}, "x")
    with pytest.raises(UserError, match="plain mirror"):
        check_ours({**ours, "org.reprobase.packages-from": "mirror"}, "x")
    d = "sha256:" + "a" * 64
    assert split_digest(f"oci:/l:t@{d}") == ("oci:/l:t", d)
    assert split_digest(f"reg.invalid/r@{d}") == (f"reg.invalid/r@{d}", d)
    assert split_digest("reg.invalid/r:t") == ("reg.invalid/r:t", None)


def test_from_an_image_that_is_not_ours_is_one_line(tmp_path: Path) -> None:
    make_layout(tmp_path / "foreign", platforms=("amd64",), layer_sizes=(1000,), ref_name="x")
    (tmp_path / "Containerfile").write_text(f"FROM oci:{tmp_path / 'foreign'}\nRUN true\n")
    proc = cli("build", "-f", str(tmp_path / "Containerfile"), "--once",
               "--output", str(tmp_path / "out"), "--proxy", "http://127.0.0.1:9/",
               "--upstream", "record")  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "not a reprobase image" in lines[0], proc.stderr
    assert not (tmp_path / "out").exists()


def cli(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "factory.cli", *argv],
        capture_output=True, text=True, cwd=ROOT, check=False, timeout=120,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (["--date", "2026-12-01"], "--date is for recipe builds"),
        (["debian:bookworm"], "IMAGE is for recipe builds"),
        (["--build-arg", "https_proxy=x"], "set by reprobase"),
        (["--tag", "nocolon"], "expected NAME:TAG"),
        (["--arch", "amd64", "--compression", "gzip", "--tag", "a:b", "--once"], "no such OCI"),
    ],
)
def test_user_mistakes_are_one_line(tmp_path: Path, extra: list[str], words: str) -> None:
    (tmp_path / "Containerfile").write_text("FROM oci:/nonexistent.invalid\n")
    proc = cli("build", "-f", str(tmp_path / "Containerfile"), "--output", str(tmp_path / "o"),
               *extra)  # fmt: skip
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and words in proc.stderr, proc.stderr


def test_a_short_base_name_is_refused(tmp_path: Path) -> None:
    (tmp_path / "Containerfile").write_text("FROM debian:bookworm-slim\nRUN true\n")
    proc = cli("build", "-f", str(tmp_path / "Containerfile"), "--proxy", "http://127.0.0.1:9/",
               "--upstream", "record", "--output", str(tmp_path / "o"))  # fmt: skip
    assert proc.returncode == 2 and "name the registry" in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_a_missing_containerfile_and_a_missing_base_are_one_line(tmp_path: Path) -> None:
    proc = cli("build", "-f", str(tmp_path / "nope"))
    assert proc.returncode == 2 and "cannot read it" in proc.stderr
    (tmp_path / "Containerfile").write_text("FROM oci:/nonexistent.invalid/x\n")
    proc = cli("build", "-f", str(tmp_path / "Containerfile"), "--proxy", "http://127.0.0.1:9/",
               "--upstream", "record", "--output", str(tmp_path / "o"))  # fmt: skip
    assert proc.returncode == 2 and "no such OCI layout" in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


# -- context -----------------------------------------------------------------------------------
def _tree(root: Path, umask: int, mtime: int) -> None:
    old = os.umask(umask)
    try:
        (root / "sub").mkdir(parents=True)
        (root / "b.txt").write_text("b")
        (root / "sub" / "a.sh").write_text("#!/bin/sh\n")
        os.chmod(root / "sub" / "a.sh", 0o777 & ~umask)
        (root / "link").symlink_to("b.txt")
        for p in (root / "b.txt", root / "sub" / "a.sh", root / "sub", root):
            os.utime(p, (mtime, mtime))
    finally:
        os.umask(old)


def test_the_context_tar_ignores_umask_times_and_listing_order(tmp_path: Path) -> None:
    _tree(tmp_path / "one", 0o022, 1_000_000)
    _tree(tmp_path / "two", 0o077, 2_000_000)
    a, b = ctxmod.pack(tmp_path / "one"), ctxmod.pack(tmp_path / "two")
    assert a.tar == b.tar and a.digest == b.digest and a.files == 2
    with tarfile.open(fileobj=io.BytesIO(a.tar)) as tf:
        got = [(m.name, m.mode, m.mtime, m.uid, m.uname) for m in tf.getmembers()]
    assert got == [
        ("b.txt", 0o644, 0, 0, ""), ("link", 0o777, 0, 0, ""), ("sub", 0o755, 0, 0, ""),
        ("sub/a.sh", 0o755, 0, 0, ""),
    ]  # fmt: skip
    out = ctxmod.unpack(a, tmp_path / "unpacked", SDE)
    assert (out / "sub" / "a.sh").stat().st_mtime == SDE
    assert (out / "link").readlink() == Path("b.txt")
    emb = a.embedded()
    assert emb is not None and ctxmod.Context.from_embedded(emb, a.digest) == a
    with pytest.raises(UserError, match="the image records sha256:0000"):
        ctxmod.Context.from_embedded(emb, "sha256:" + "0" * 64)


def test_a_special_file_in_the_context_is_refused(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(UserError, match="special file"):
        ctxmod.pack(tmp_path)


# -- layer: normalisation and bytes owned by us ----------------------------------------------------
def _entry(
    name: str, data: bytes | None = None, /, **kw: Any
) -> tuple[tarfile.TarInfo, bytes | None]:
    t = tarfile.TarInfo(name)
    if data is None:
        t.type = tarfile.DIRTYPE
        t.mode = 0o755
    else:
        t.size = len(data)
        t.mode = 0o644
    for k, v in kw.items():
        setattr(t, k, v)
    return t, data


SHADOW_A = b"root:*:20000:0:99999:7:::\napp:!:20789:0:99999:7:::\n"
SHADOW_B = b"root:*:20000:0:99999:7:::\napp:!:20790:0:99999:7:::\n"  # a day later


def _buildah_like(
    path: Path,
    *,
    order: int,
    fmt: int,
    mtime: int,
    shadow: bytes,
    extra: tuple[tuple[tarfile.TarInfo, bytes | None], ...] = (),
) -> None:
    entries = [
        _entry("app/", mtime=mtime), _entry("app/hello.txt", b"hi\n", mtime=mtime),
        _entry("etc/shadow", shadow, mtime=mtime), _entry("etc/hosts", b"", mtime=mtime),
        _entry("var/log/dpkg.log", f"{mtime} install\n".encode(), mtime=mtime),
        _entry("var/lib/apt/lists/x_Packages", b"Package: hello\n", mtime=mtime),
        _entry("var/lib/apt/lists/lock", b"", mtime=mtime),
        _entry("usr/bin/hello", b"\x7fELF", mtime=1_600_000_000, uname="root", gname="root"),
        *extra,
    ]  # fmt: skip
    if order:
        entries.reverse()
    with tarfile.open(path, "w", format=fmt) as tf:
        for info, data in entries:
            tf.addfile(info, io.BytesIO(data) if data is not None else None)


def test_rules_name_what_they_remove() -> None:
    assert rule_for(_entry("var/log/apt/history.log", b"x")[0]) is Rule.DROP
    assert rule_for(_entry("var/cache/apt/pkgcache.bin", b"x")[0]) is Rule.DROP
    assert rule_for(_entry("var/lib/apt/lists/lock", b"")[0]) is Rule.KEEP
    assert rule_for(_entry("etc/shadow-", b"x")[0]) is Rule.DROP
    assert rule_for(_entry("etc/hosts", b"")[0]) is Rule.PLACEHOLDER
    assert rule_for(_entry("etc/hosts", b"127.0.0.1 x\n")[0]) is Rule.KEEP
    assert rule_for(_entry(MOUNT_FAKETIME.lstrip("/"))[0]) is Rule.MOUNTPOINT
    assert rule_for(_entry("etc/shadow", b"x")[0]) is Rule.SHADOW
    assert rule_for(_entry("etc/passwd", b"x")[0]) is Rule.KEEP


def test_what_buildah_chooses_in_its_tar_cannot_change_our_layer(tmp_path: Path) -> None:
    """Entry order, tar format (GNU vs PAX), owner names, build-time mtimes, a shadow
    entry written a day later, logs and caches: none reaches the canonical layer."""
    results = []
    for i, (order, fmt, mtime, shadow) in enumerate([
        (0, tarfile.PAX_FORMAT, SDE + 3600, SHADOW_A),
        (1, tarfile.GNU_FORMAT, SDE + 86400 + 7, SHADOW_B),
        (0, tarfile.USTAR_FORMAT, SDE + 5, SHADOW_A),
    ]):  # fmt: skip
        src = tmp_path / f"buildah-{i}.tar"
        _buildah_like(src, order=order, fmt=fmt, mtime=mtime, shadow=shadow)
        results.append(reserialise(src, tmp_path / f"blob-{i}", Compression.GZIP, SDE, None))
    assert len({r.layer.digest for r in results}) == 1
    assert len({r.layer.diff_id for r in results}) == 1
    assert results[0].dropped == ("etc/hosts", "var/lib/apt/lists/x_Packages", "var/log/dpkg.log")
    with tarfile.open(tmp_path / "blob-0", "r:gz") as tf:
        members = {m.name: m for m in tf.getmembers()}
        shadow = tf.extractfile(members["etc/shadow"]).read()  # type: ignore[union-attr]
    assert sorted(members) == [
        "app", "app/hello.txt", "etc", "etc/shadow", "usr", "usr/bin", "usr/bin/hello", "var",
        "var/lib", "var/lib/apt", "var/lib/apt/lists", "var/lib/apt/lists/lock",
    ]  # fmt: skip
    assert shadow == SHADOW_A  # 20790 clamped to SOURCE_DATE_EPOCH's day, 20789
    assert members["app/hello.txt"].mtime == SDE
    assert members["usr/bin/hello"].mtime == 1_600_000_000 and members["usr/bin/hello"].uname == ""


def test_a_file_holding_the_proxy_address_is_refused(tmp_path: Path) -> None:
    src = tmp_path / "l.tar"
    leak = _entry("etc/apt/apt.conf.d/99proxy", b'Acquire::http::Proxy "http://127.0.0.1:3142/";')
    _buildah_like(src, order=0, fmt=tarfile.PAX_FORMAT, mtime=SDE, shadow=SHADOW_A, extra=(leak,))
    with pytest.raises(UserError, match="99proxy holds the build-time proxy address"):
        normalise_tar(src, tmp_path / "o.tar", SDE, (b"127.0.0.1:3142",), BaseTree([]))
    with pytest.raises(UserError, match="proxy address"):
        reserialise(src, tmp_path / "blob", Compression.GZIP, SDE, "http://127.0.0.1:3142/")


# -- config: only the Containerfile's settings are taken from buildah -----------------------------
BASE_CFG: dict[str, Any] = {
    "architecture": "amd64", "os": "linux", "created": "2026-12-02T00:00:00Z",
    "config": {"Env": ["PATH=/usr/bin"], "Cmd": ["bash"],
               "Labels": {"org.reprobase.snapshot": "20261202T000000Z",
                          "org.opencontainers.image.title": "debian:bookworm-slim"}},
    "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "1" * 64]},
    "history": [{"created": "2026-12-02T00:00:00Z", "created_by": "reprobase build"}],
}  # fmt: skip


def _buildah_cfg(version: str, created: str, extra: dict[str, Any]) -> dict[str, Any]:
    return {
        "created": created, "architecture": "amd64", "os": "linux", "author": "someone",
        "config": {"Env": ["PATH=/usr/bin", "GREETING=hi"], "Cmd": ["hello"], "User": "app",
                   "Labels": {**BASE_CFG["config"]["Labels"], "io.buildah.version": version,
                              "mine": "yes"}, **extra},
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "1" * 64, "sha256:" + "2" * 64]},
        "history": [{"created": created, "created_by": f"buildah {version} RUN useradd"}],
    }  # fmt: skip


def _spec() -> DerivedSpec:
    return DerivedSpec(
        containerfile="FROM x\n", build_args=(("A", "1"),), base="reg.invalid/debian:slim",
        base_digest="sha256:" + "3" * 64, base_title="debian:bookworm-slim",
        snapshot="20261202T000000Z", source_date_epoch=SDE, packages_from="recorded-mirror",
        tag="app:1", arches=(Architecture.AMD64,), context_digest="sha256:" + "4" * 64,
        context_embedded="eA==", compressor="gzip level 4 (deflate 0.9.0)",
    )  # fmt: skip


def test_a_buildah_upgrade_cannot_change_our_config() -> None:
    """Its version label, timestamps, history, author, and fields a later buildah might
    add are dropped: two very different buildah configs give the same canonical config."""
    layer = LayerResult("sha256:" + "5" * 64, "sha256:" + "6" * 64, 10, 20, 3)
    a = derived_config(_spec(), BASE_CFG, _buildah_cfg("1.28.2", "2026-12-02T02:14:51Z", {}),
                       layer, Architecture.AMD64)  # fmt: skip
    b = derived_config(
        _spec(), BASE_CFG,
        _buildah_cfg("1.40.0", "2027-01-01T00:00:00.1Z", {"ArgsEscaped": True, "Variant": ""}),
        layer, Architecture.AMD64,
    )  # fmt: skip
    assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
    inner = a["config"]
    assert inner["Env"] == ["PATH=/usr/bin", "GREETING=hi"] and inner["User"] == "app"
    assert "io.buildah.version" not in inner["Labels"] and inner["Labels"]["mine"] == "yes"
    assert "org.reprobase.snapshot" not in inner["Labels"]  # the base's, not ours
    assert a["created"] == "2026-12-02T00:00:00Z" and "author" not in a
    assert a["rootfs"]["diff_ids"] == ["sha256:" + "1" * 64, "sha256:" + "6" * 64]
    assert len(a["history"]) == 2 and a["history"][0] == BASE_CFG["history"][0]
    assert settings({"config": {"Labels": {"io.buildah.version": "1"}}}, BASE_CFG) == {}


def test_the_spec_round_trips_through_annotations() -> None:
    spec = _spec()
    back = DerivedSpec.from_annotations(spec.annotations(), spec.arches, "here")
    assert back == spec
    with pytest.raises(UserError, match="self-description"):
        DerivedSpec.from_annotations({"org.reprobase.kind": "derived"}, spec.arches, "here")


# -- buildah's argv: the proxy only in its environment --------------------------------------------
def test_buildah_runs_chrooted_and_the_proxy_is_never_an_argument(tmp_path: Path) -> None:
    proxy = "http://127.0.0.1:3142/"
    for env in (env_a(tmp_path), env_b(tmp_path)):
        job = StepsJob(tmp_path / "Cf", tmp_path / "ctx", "oci:/b:base", Architecture.AMD64,
                       (("SOURCE_DATE_EPOCH", str(SDE)),), env, tmp_path / "w", proxy)  # fmt: skip
        argv = bud_argv(job)
        assert argv[argv.index("--isolation") + 1] == "chroot"
        assert f"SOURCE_DATE_EPOCH={SDE}" in argv and "--layers=false" in argv
        assert not any("3142" in a for a in argv + push_argv(job))
        assert build_env(job)["http_proxy"] == proxy
        if env.name == "B":
            assert "TZ=Pacific/Kiritimati" in argv
            if job.faketime:
                assert "FAKETIME=+1d" in argv and any(MOUNT_FAKETIME in a for a in argv)
        else:
            assert not any(a.startswith(("TZ=", "FAKETIME=")) for a in argv)


# -- the layer is what changed on the base, whatever buildah's storage driver listed ---------------
def _tar(path: Path, entries: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tf:
        for info, data in entries:
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def test_overlay_and_vfs_layers_of_the_same_steps_give_one_layer(tmp_path: Path) -> None:
    """overlay lists copied-up files and directories whose mtime moved, and an opaque
    directory; vfs lists real changes and one whiteout per removed entry: one result."""
    d = {"mtime": SDE}
    base = _tar(tmp_path / "base.tar", [
        _entry("etc/", **d), _entry("etc/.pwd.lock", b"", **d), _entry("tmp/", mode=0o1777, **d),
        _entry("var/", **d), _entry("var/cache/", **d), _entry("var/cache/debconf/", **d),
        _entry("var/cache/debconf/config.dat", b"Name: x\n", **d),
        _entry("srv/", **d), _entry("srv/data/", **d), _entry("srv/data/old1", b"1", **d),
        _entry("srv/data/old2", b"2", **d), _entry("usr/", **d), _entry("usr/share/", **d),
        _entry("usr/share/old/", **d), _entry("usr/share/old/a", b"a", **d),
    ])  # fmt: skip
    later = {"mtime": SDE + 86400}
    common = [_entry("etc/", **later), _entry("etc/new.conf", b"new\n", **later),
              _entry("srv/data/", **later), _entry("srv/data/x", b"x", **later)]  # fmt: skip
    vfs = _tar(tmp_path / "vfs.tar", [
        *common, _entry("srv/data/.wh.old1", b""), _entry("srv/data/.wh.old2", b""),
        _entry("usr/", **d), _entry("usr/share/", **d), _entry("usr/share/.wh.old", b""),
    ])  # fmt: skip
    overlay = _tar(tmp_path / "overlay.tar", [
        *common, _entry("srv/data/.wh..wh..opq", b""), _entry("tmp/", mode=0o1777, **later),
        _entry("etc/.pwd.lock", b"", **d), _entry("var/", **d), _entry("var/cache/", **d),
        _entry("var/cache/debconf/", **later),
        _entry("var/cache/debconf/config.dat", b"Name: x\n", **d),
        _entry("usr/", **d), _entry("usr/share/", **later), _entry("usr/share/.wh.old", b""),
    ])  # fmt: skip
    tree = BaseTree([base])
    got = [reserialise(src, tmp_path / f"{src.stem}.blob", Compression.GZIP, SDE, None, tree)
           for src in (vfs, overlay)]  # fmt: skip
    assert got[0].layer.digest == got[1].layer.digest
    # directories (mtime moved only) and copied-up files: the base has them already
    assert (got[0].unchanged, got[1].unchanged) == (4, 10)
    with tarfile.open(tmp_path / "vfs.blob", "r:gz") as tf:
        names = tf.getnames()
    assert names == [
        "etc", "etc/new.conf", "srv", "srv/data", "srv/data/.wh.old1", "srv/data/.wh.old2",
        "srv/data/x", "usr", "usr/share", "usr/share/.wh.old",
    ]  # fmt: skip


def test_arm64_steps_run_emulated_without_the_clock_library(tmp_path: Path) -> None:
    job = StepsJob(tmp_path / "Cf", tmp_path / "ctx", "oci:/b:base", Architecture.ARM64,
                   (), env_b(tmp_path), tmp_path / "w", None)  # fmt: skip
    argv = bud_argv(job)
    assert argv[argv.index("--platform") + 1] == "linux/arm64/v8"
    assert job.faketime is None and not any(a.startswith("LD_PRELOAD=") for a in argv)
    assert "TZ=Pacific/Kiritimati" in argv  # the other variations still apply


def test_a_large_context_travels_beside_the_image_not_in_it(tmp_path: Path) -> None:
    """Above the embedding limit the context is a blob beside the image (a referrer on
    push): the annotations carry its digest only, and a rebuild checks it."""
    from dataclasses import replace

    from factory.image import oci
    from factory.pipeline.derived import context_artifact, recorded_context

    (tmp_path / "ctx").mkdir()
    (tmp_path / "ctx" / "big.bin").write_bytes(os.urandom(ctxmod.EMBED_LIMIT + 4096))
    ctx = ctxmod.pack(tmp_path / "ctx")
    assert ctx.embedded() is None  # random bytes do not compress below the limit
    layout = tmp_path / "layout"
    oci.init_layout(layout)
    spec = replace(_spec(), context_digest=ctx.digest, context_embedded=None)
    assert P_CONTEXT not in spec.annotations()
    with pytest.raises(UserError, match="neither embedded nor found"):
        recorded_context(spec, str(layout), layout, tmp_path / "w")
    oci.write_blob(layout, ctx.tar)
    assert recorded_context(spec, str(layout), layout, tmp_path / "w") == ctx
    art = context_artifact(layout, spec)
    assert art is not None and art[0] == ctx.tar and art[2] == ctxmod.ARTIFACT_TYPE
    assert context_artifact(layout, _spec()) is None  # embedded: nothing to attach


P_CONTEXT = "org.reprobase.derived.context"
