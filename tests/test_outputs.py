"""Never destroy what we did not make: every command's output path (factory.common.outputs).

For build, merge, nightly --output-layout, report and publish --output-archive: a
non-empty foreign directory, a file, the current directory and the home directory are
refused with one line and exit 2 (with --force too), and left byte-for-byte as they were.
Our own earlier outputs are replaced atomically, with nothing left beside them.
"""

from __future__ import annotations

import hashlib
import json
import os
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from factory.cli import main
from factory.common import outputs
from factory.common.canonical import canonical_json
from factory.common.errors import UserError
from factory.image import oci
from factory.registry import write_archive
from factory.report import write_report
from factory.report.history import History
from tests.registry_fixtures import make_layout
from tests.report_fixtures import synthetic_records


def snapshot_tree(root: Path) -> dict[str, str]:
    """Every path under root (root itself included) with its type and content hash."""
    out: dict[str, str] = {}
    paths = [root, *sorted(root.rglob("*"))] if root.is_dir() else [root]
    for p in paths:
        rel = p.relative_to(root).as_posix() if p != root else "."
        if p.is_symlink():
            out[rel] = "link:" + os.readlink(p)
        elif p.is_dir():
            out[rel] = f"dir:{p.stat().st_mode:o}"
        else:
            out[rel] = "file:" + hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def our_layout(dest: Path, seed: int = 0) -> None:
    """A small layout whose index carries reprobase annotations, as a build writes."""
    top = make_layout(dest, platforms=("amd64",), layer_sizes=(1000,), seed=seed)
    index = oci.read_json_blob(dest, top.digest)
    index["annotations"] = {"org.reprobase.recipe": "{}", "org.reprobase.snapshot": "x"}
    desc = oci.write_json_blob(dest, index, oci.MT_INDEX)
    oci.blob_path(dest, top.digest).unlink()
    oci.write_index(dest, [desc], {})


def one_error_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: ") and "Traceback" not in err
    return lines[0]


@pytest.fixture
def history_file(tmp_path: Path) -> Path:
    path = tmp_path / "hist" / "history.sqlite"
    path.parent.mkdir()
    with History(path) as h:
        for rec in synthetic_records():
            h.add(rec)
    return path


@pytest.fixture
def nightly_config(tmp_path: Path) -> Path:
    cfg = tmp_path / "cfg" / "nightly.toml"
    cfg.parent.mkdir()
    state = tmp_path / "state"
    cfg.write_text(
        "[nightly]\n"
        'images = ["debian:bookworm"]\n'
        'architectures = ["amd64"]\n'
        'upstream = "record"\n'
        f'history = "{state}/history.sqlite"\n'
        f'report = "{state}/report"\n'
        f'cache_dir = "{state}/cache"\n'
    )
    return cfg


def argv_for(command: str, dest: Path, tmp: Path, cfg: Path, hist: Path) -> list[str]:
    layout = tmp / "in-layout"
    if not layout.exists():
        make_layout(layout, platforms=("amd64",), layer_sizes=(1000,))
    return {
        "build": ["build", "debian:bookworm", "--output", str(dest)],
        "merge": ["merge", str(layout), "--output", str(dest)],
        "nightly": [
            "nightly", "--config", str(cfg), "--only", "debian:bookworm",
            "--output-layout", str(dest),
        ],
        "report": ["report", "--history", str(hist), "--output", str(dest)],
        "publish": [
            "publish", str(layout), "--archive-name", "x/y:z", "--output-archive", str(dest),
        ],
    }[command]  # fmt: skip


COMMANDS = ["build", "merge", "nightly", "report", "publish"]


def _foreign_dir(base: Path) -> Path:
    d = base / "mine"
    (d / "sub").mkdir(parents=True)
    (d / "notes.txt").write_text("my notes\n")
    (d / "sub" / "photo.jpg").write_bytes(b"\xff\xd8 not really")
    return d


def _foreign_file(base: Path) -> Path:
    f = base / "thesis.tex"
    f.write_text("\\documentclass{article}\n")
    return f


@pytest.mark.parametrize("force", [False, True], ids=["plain", "force"])
@pytest.mark.parametrize("what", ["dir", "file", "cwd", "home"])
@pytest.mark.parametrize("command", COMMANDS)
def test_foreign_output_is_refused_and_untouched(
    command: str,
    what: str,
    force: bool,
    tmp_path: Path,
    nightly_config: Path,
    history_file: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / ".bashrc").write_text("export PS1='$ '\n")
    monkeypatch.setenv("HOME", str(home))
    work = tmp_path / "work"
    work.mkdir()
    (work / "README").write_text("the user's project\n")
    monkeypatch.chdir(work)
    dest: Path = {
        "dir": lambda: _foreign_dir(tmp_path),
        "file": lambda: _foreign_file(tmp_path),
        "cwd": lambda: Path("."),
        "home": lambda: home,
    }[what]()
    argv = argv_for(command, dest, tmp_path, nightly_config, history_file)
    if force:
        argv.append("--force")
    watched = [tmp_path / "home", work, dest.absolute()]
    before = [snapshot_tree(p) for p in watched]
    assert main(argv) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "refusing" in line, line
    assert [snapshot_tree(p) for p in watched] == before
    assert not [p for p in dest.absolute().parent.iterdir() if ".reprobase-" in p.name]


def test_ours_is_replaced_atomically_without_debris(tmp_path: Path) -> None:
    dest = tmp_path / "out" / "layout"
    src = tmp_path / "build-a"
    our_layout(src, seed=1)
    outputs.install_dir(src, dest, outputs.OutputKind.LAYOUT)
    first = snapshot_tree(dest)
    src2 = tmp_path / "build-b"
    our_layout(src2, seed=2)
    outputs.install_dir(src2, dest, outputs.OutputKind.LAYOUT)
    assert snapshot_tree(dest) != first
    assert outputs.kind_of(dest) is outputs.OutputKind.LAYOUT
    assert sorted(p.name for p in dest.parent.iterdir()) == ["layout"]
    assert not src.exists() and not src2.exists()


def test_a_failure_while_writing_leaves_the_old_output(tmp_path: Path) -> None:
    dest = tmp_path / "out"
    our_layout(dest)
    before = snapshot_tree(dest)
    with pytest.raises(RuntimeError), outputs.replacing(dest, outputs.OutputKind.LAYOUT) as new:
        new.mkdir()
        (new / "half").write_text("half a layout")
        raise RuntimeError("the build broke")
    assert snapshot_tree(dest) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_another_kind_of_ours_needs_force(tmp_path: Path, history_file: Path) -> None:
    dest = tmp_path / "site"
    with History(history_file) as h:
        write_report(h, dest)
    assert outputs.kind_of(dest) is outputs.OutputKind.REPORT
    with pytest.raises(UserError, match="is a reprobase report, not a reprobase OCI"):
        outputs.check(dest, outputs.OutputKind.LAYOUT)
    src = tmp_path / "built"
    our_layout(src)
    outputs.install_dir(src, dest, outputs.OutputKind.LAYOUT, force=True)
    assert outputs.kind_of(dest) is outputs.OutputKind.LAYOUT


def test_empty_dir_and_absent_paths_are_fine(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    outputs.check(tmp_path / "empty", outputs.OutputKind.REPORT)
    outputs.check(tmp_path / "new" / "deeper", outputs.OutputKind.LAYOUT)
    assert not (tmp_path / "new").exists()  # checking creates nothing
    with pytest.raises(UserError, match="refusing"):
        outputs.check(tmp_path / "empty", outputs.OutputKind.ARCHIVE)  # a file is wanted


@pytest.mark.parametrize(
    "make",
    [
        lambda p: p.write_text("x"),
        lambda p: (
            p.mkdir(),
            (p / "oci-layout").write_text("{}"),
            (p / "index.json").write_text(json.dumps({"manifests": []})),
        ),
        lambda p: (
            p.mkdir(),
            (p / "index.html").write_text("<p>"),
            (p / "results.json").write_text("{}"),
        ),
        lambda p: os.symlink("/etc", p),
    ],
    ids=["file", "empty-foreign-layout", "foreign-report", "symlink"],
)
def test_look_alikes_are_not_ours(tmp_path: Path, make: Callable[[Path], object]) -> None:
    dest = tmp_path / "x"
    make(dest)
    assert outputs.kind_of(dest) is None
    for kind in outputs.OutputKind:
        with pytest.raises(UserError, match="refusing"):
            outputs.check(dest, kind, force=True)


def test_unwritable_places_are_one_line(tmp_path: Path) -> None:
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(UserError, match="is not a directory"):
        outputs.check(f / "sub" / "out", outputs.OutputKind.LAYOUT)
    with pytest.raises(UserError, match="cannot write"):
        outputs.check(Path("/proc/reprobase-x"), outputs.OutputKind.LAYOUT)


def test_report_and_archive_replace_their_own(
    tmp_path: Path, history_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site = tmp_path / "site"
    for _ in range(2):
        assert main(["report", "--history", str(history_file), "--output", str(site)]) == 0
    layout = tmp_path / "l"
    make_layout(layout, platforms=("amd64",), layer_sizes=(1000,))
    tar = tmp_path / "image.tar"
    for _ in range(2):
        argv = ["publish", str(layout), "--archive-name", "x/y:z", "--output-archive", str(tar)]
        assert main(argv) == 0
    assert outputs.kind_of(tar) is outputs.OutputKind.ARCHIVE
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hist", "image.tar", "l", "site"]


def _corrupt_layer(layout: Path) -> str:
    """Truncate the layout's (only) layer blob; returns its digest."""
    for _d, man in oci.iter_manifests(layout, oci.read_index(layout)):
        digest = str(man["layers"][0]["digest"])
        path = oci.blob_path(layout, digest)
        path.write_bytes(path.read_bytes()[:100])
        return digest
    raise AssertionError("no manifest")


def test_corrupt_blob_fails_archive_merge_and_diff(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good, bad = tmp_path / "good", tmp_path / "bad"
    our_layout(good)
    our_layout(bad)
    digest = _corrupt_layer(bad)
    out = tmp_path / "out"
    out.mkdir()
    for argv in (
        ["publish", str(bad), "--archive-name", "x/y:z", "--output-archive", str(out / "a.tar")],
        ["merge", str(bad), "--output", str(out / "merged")],
        ["diff", str(good), str(bad)],
        ["diff", str(bad), str(bad)],
    ):
        assert main(argv) == 2, argv
        line = one_error_line(capsys.readouterr().err)
        assert digest in line and "corrupt" in line, line
    assert list(out.iterdir()) == []  # no .tmp, no half archive
    assert main(["diff", str(good), str(good)]) == 0


def test_archive_writer_refuses_foreign_file(tmp_path: Path) -> None:
    layout = tmp_path / "l"
    make_layout(layout, platforms=("amd64",), layer_sizes=(1000,))
    target = tmp_path / "t.tar"
    target.write_bytes(canonical_json({"mine": True}))
    with pytest.raises(UserError, match="refusing"):
        write_archive(layout, target, "x/y:z")
    assert target.read_bytes() == canonical_json({"mine": True})


def test_layout_tag_names_one_image_everywhere(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """diff, publish --output-archive and merge take LAYOUT:TAG, as reproduce does."""
    from factory.publish import store

    one, two = tmp_path / "one", tmp_path / "two"
    our_layout(one, seed=1)
    our_layout(two, seed=2)
    shop = tmp_path / "store"
    store.publish(one, shop, ["one"])
    store.publish(two, shop, ["two"])
    assert main(["diff", f"{shop}:one", f"{shop}:one"]) == 0
    assert main(["diff", f"{shop}:one", f"{shop}:two"]) == 1
    assert main(["diff", f"{shop}:three", str(one)]) == 2
    assert "no image tagged 'three'" in capsys.readouterr().err
    tar = tmp_path / "two.tar"
    argv = ["publish", f"{shop}:two", "--archive-name", "x/y:two", "--output-archive", str(tar)]
    assert main(argv) == 0
    with tarfile.open(tar) as t:
        member = t.extractfile("index.json")
        assert member is not None
        entry = json.loads(member.read())["manifests"][0]
    assert entry["digest"] == oci.read_index(two)["manifests"][0]["digest"]
    merged = tmp_path / "merged"
    assert main(["merge", f"{shop}:one", "--output", str(merged)]) == 0
    top = oci.read_index(merged)["manifests"][0]["digest"]
    want = oci.read_json_blob(one, oci.read_index(one)["manifests"][0]["digest"])["manifests"]
    assert oci.read_json_blob(merged, top)["manifests"] == want
    capsys.readouterr()


def test_a_layout_with_attached_artifacts_is_still_ours(tmp_path: Path) -> None:
    """A build attaches SBOMs and provenance in the layout's referrers.json: building
    into the same --output again must replace it, not refuse it as foreign."""
    dest = tmp_path / "layout"
    our_layout(dest, seed=1)
    (dest / outputs.REFERRERS_FILE).write_text("{}")
    assert outputs.kind_of(dest) is outputs.OutputKind.LAYOUT
    outputs.check(dest, outputs.OutputKind.LAYOUT)
    (dest / "notes.txt").write_text("mine")  # anything else still makes it foreign
    assert outputs.kind_of(dest) is None
