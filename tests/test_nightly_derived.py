"""The nightly's derived images without builds: [[nightly.derived]] checked when read,
the base chosen from the history, FROM pinned, one failure never stopping the others,
history schema 4 (base_digest) migrated and read, the report's section, and the build
context's .containerignore."""

from __future__ import annotations

import dataclasses
import io
import sqlite3
import tarfile
import tomllib
from pathlib import Path
from typing import Any

import pytest

from factory.common.errors import UserError
from factory.common.progress import Progress
from factory.derive.context import pack
from factory.derive.ignore import Ignore, parse
from factory.nightly import derived
from factory.nightly.config import NightlyConfig, config_from_dict, load_config
from factory.publish.targets import PublishTarget
from factory.report import render
from factory.report.derivedview import derived_section, derived_views
from factory.report.history import SCHEMA_VERSION, History, ResultRecord
from factory.source.snapshot import Timestamp

ROOT = Path(__file__).resolve().parent.parent
DIGEST = "sha256:" + "ab" * 32
BASE_DIGEST = "sha256:" + "cd" * 32
APP = "FROM oci:/nowhere:base\nRUN useradd -m app\nCOPY hello.txt /app/\n"


def _config(tmp_path: Path, derived_toml: str, images: str = '["debian:bookworm-slim"]') -> Path:
    app = tmp_path / "app"
    app.mkdir(exist_ok=True)
    (app / "Containerfile").write_text(APP)
    (app / "hello.txt").write_text("hi\n")
    cfg = tmp_path / "conf" / "nightly.toml"
    cfg.parent.mkdir(exist_ok=True)
    cfg.write_text(
        f"[nightly]\nimages = {images}\npublish = ['oci:{tmp_path}/store']\n"
        f"history = '{tmp_path}/h.sqlite'\n{derived_toml}"
    )
    return cfg


GOOD = """
[[nightly.derived]]
name = "myapp:latest"
containerfile = "../app/Containerfile"
base = "debian:bookworm-slim"
build_args = {GREETING = "hi"}
"""


def test_config_reads_derived_images_relative_to_the_file(tmp_path: Path) -> None:
    cfg = load_config(_config(tmp_path, GOOD))
    (d,) = cfg.derived
    assert d.name == "myapp:latest" and (d.repository, d.tag) == ("myapp", "latest")
    assert d.containerfile == tmp_path / "app" / "Containerfile"
    assert d.context == d.containerfile.parent  # default: the Containerfile's directory
    assert d.base == "debian:bookworm-slim" and d.build_args == (("GREETING", "hi"),)
    assert d.architectures is None


@pytest.mark.parametrize(("body", "needle"), [
    (GOOD.replace('base = "debian:bookworm-slim"', 'base = "debian:trixie"'),
     "field 'nightly.derived[0].base': 'debian:trixie' is not one of this nightly's images"),
    (GOOD.replace("myapp:latest", "myapp"), "field 'nightly.derived[0].name': 'myapp': expected"),
    (GOOD.replace("myapp:latest", "MyApp:1"), "a repository name is lowercase"),
    (GOOD.replace("../app/Containerfile", "../app/Nope"), "'nightly.derived[0].containerfile'"),
    (GOOD + 'context = "../nowhere"\n', "'nightly.derived[0].context': '../nowhere': no such"),
    (GOOD + 'tag = "x"\n', "'nightly.derived[0].tag': unknown key"),
    (GOOD.replace('"hi"', '"x"}\nbuild_args2 = {a = 1'), "unknown key"),
    (GOOD.replace("GREETING", "http_proxy"), "'nightly.derived[0].build_args': http_proxy is set"),
    (GOOD + GOOD, "'nightly.derived[1].name': 'myapp:latest' is listed twice"),
    ("derived = 3\n", "field 'nightly.derived': must be a list"),
    ("derived = [1]\n", "must be tables"),
    (GOOD.replace("myapp:latest", "debian:bookworm-slim"), "is also a base image"),
])  # fmt: skip
def test_bad_derived_config_names_file_and_field(tmp_path: Path, body: str, needle: str) -> None:
    path = _config(tmp_path, body)
    with pytest.raises(UserError) as ei:
        load_config(path)
    assert str(path) in ei.value.message and needle in ei.value.message


def test_a_bad_containerfile_is_refused_when_the_config_is_read(tmp_path: Path) -> None:
    path = _config(tmp_path, GOOD)
    (tmp_path / "app" / "Containerfile").write_text("FROM a/b:c\nFROM d/e:f\n")
    with pytest.raises(UserError, match=r"derived\[0\]\.containerfile'.*a second FROM"):
        load_config(path)


def test_derived_images_need_publish_targets(tmp_path: Path) -> None:
    path = _config(tmp_path, GOOD)
    path.write_text(path.read_text().replace(f"publish = ['oci:{tmp_path}/store']\n", ""))
    with pytest.raises(UserError, match=r"field 'nightly\.derived': is built FROM the published"):
        load_config(path)


def test_only_selects_derived_images_and_their_bases(tmp_path: Path) -> None:
    cfg = load_config(_config(tmp_path, GOOD, '["debian:bookworm-slim", "debian:bookworm"]'))
    assert [d.name for d in derived.selected(cfg, ())] == ["myapp:latest"]
    assert [d.name for d in derived.selected(cfg, ["debian:bookworm-slim"])] == ["myapp:latest"]
    assert derived.selected(cfg, ["debian:bookworm"]) == ()
    assert derived.base_images(cfg, ["myapp:latest"]) == []  # built on the last published
    assert derived.base_images(cfg, ()) == ["debian:bookworm-slim", "debian:bookworm"]
    assert derived.base_images(cfg, ["debian:bookworm"]) == ["debian:bookworm"]


def test_the_shipped_example_is_valid() -> None:
    """schedules/nightly.toml's commented [[nightly.derived]] example, uncommented, read as
    if it were in that file (its paths are relative to it)."""
    shipped = ROOT / "schedules" / "nightly.toml"
    text = shipped.read_text()
    block = text[text.index("# [[nightly.derived]]") :].split("\n\n", 1)[0]
    body = "\n".join(line.removeprefix("# ") for line in block.splitlines())
    (d,) = config_from_dict(tomllib.loads(text + "\n" + body + "\n"), str(shipped)).derived
    assert d.containerfile == ROOT / "schedules" / "Containerfile.proxy"
    assert d.context == ROOT and d.base == "debian:bookworm-slim"
    assert d.name == "reprobase-cache-proxy:latest"


# -- FROM, pinned ------------------------------------------------------------------------
PINNED = "reg/debian@sha256:1"


@pytest.mark.parametrize(("text", "want"), [
    ("FROM a/b:c\nRUN x\n", f"FROM {PINNED}\nRUN x\n"),
    ("ARG BASE=x/y:z\nFROM ${BASE} AS app\nRUN x\n",
     f"ARG BASE=x/y:z\nFROM {PINNED} AS app\nRUN x\n"),
    ("# c\nFROM --platform=linux/amd64 \\\n  a/b:c\nRUN x",
     f"# c\nFROM --platform=linux/amd64 {PINNED}\nRUN x"),
])  # fmt: skip
def test_with_base_replaces_only_the_from_image(text: str, want: str) -> None:
    assert derived.with_base(text, PINNED) == want


def test_with_base_reads_from_with_the_images_build_args() -> None:
    text = "ARG BASE\nFROM $BASE\nRUN x\n"  # no default: the config's build_args give it
    with pytest.raises(UserError, match="FROM \\(empty\\)"):
        derived.with_base(text, PINNED)
    assert derived.with_base(text, PINNED, {"BASE": "a/b:c"}) == f"ARG BASE\nFROM {PINNED}\nRUN x\n"


# -- the base, from the history ----------------------------------------------------------
def _rec(**kw: Any) -> ResultRecord:
    base: dict[str, Any] = dict(
        run_id="r1", kind="nightly", image="debian:bookworm-slim", arch="amd64",
        snapshot="20261201T000000Z", verdict="reproducible", index_digest=DIGEST,
        manifest_digest=DIGEST, digest_b=DIGEST, size=1, uncompressed_size=2,
        packages_digest=None, packages=(), published=("x",), upstream_bytes=None,
        durations={}, started="2026-12-01T00:01:00Z", finished="2026-12-01T00:02:00Z",
    )  # fmt: skip
    return ResultRecord(**(base | kw))


def test_the_base_is_tonights_or_the_last_published(tmp_path: Path) -> None:
    target = PublishTarget(f"oci:{tmp_path}/store")
    with History(tmp_path / "h.sqlite") as h:
        with pytest.raises(UserError, match="no published image yet"):
            derived.choose_base(h, target, "debian:bookworm-slim", "r1")
        h.add(_rec())
        b = derived.choose_base(h, target, "debian:bookworm-slim", "r1")
        assert b.reference == f"oci:{tmp_path}/store/debian:bookworm-slim-20261201T000000Z@{DIGEST}"
        assert "verified tonight" in b.note
        tonight = dict(run_id="r2", snapshot="20261202T000000Z", started="2026-12-02T00:01:00Z")
        h.add(_rec(**tonight, verdict="differs", index_digest=BASE_DIGEST, published=()))
        b = derived.choose_base(h, target, "debian:bookworm-slim", "r2")
        assert b.digest == DIGEST and "tonight's differs" in b.note  # not tonight's failure
        h.add(_rec(**tonight | {"started": "2026-12-02T00:03:00Z"}, verdict="unchanged"))
        b = derived.choose_base(h, target, "debian:bookworm-slim", "r2")
        assert b.snapshot == "20261202T000000Z" and b.digest == DIGEST


# -- one failure never stops the others --------------------------------------------------
@dataclasses.dataclass
class FakeNight:
    cfg: NightlyConfig
    history: History
    workdir: Path
    pin: Timestamp = dataclasses.field(default_factory=lambda: Timestamp.parse("20261202T000000Z"))
    src: Any = None
    progress: Progress = dataclasses.field(default_factory=Progress)
    run_id: str = "r2"
    slots: Any = None
    added: list[ResultRecord] = dataclasses.field(default_factory=list)

    def add(self, rec: ResultRecord) -> None:
        self.history.add(rec)
        self.added.append(rec)


def test_a_failing_derived_image_never_stops_the_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    three = GOOD + GOOD.replace("myapp:latest", "other:1") + GOOD.replace("myapp:", "third:")
    cfg = load_config(_config(tmp_path, three))
    tried: list[str] = []

    def build_one(night: Any, d: Any) -> derived.Outcome:
        tried.append(d.name)
        if d.name == "other:1":
            raise OSError(28, "No space left on device")
        raise UserError(f"{d.name} broke", hint="fix it")

    monkeypatch.setattr(derived, "build_one", build_one)
    with History(tmp_path / "h.sqlite") as h:
        night = FakeNight(dataclasses.replace(cfg, reverify=0), h, tmp_path / "work")
        derived.after_bases(night, ())
        assert tried == ["myapp:latest", "other:1", "third:latest"]
        rows = [(r.kind, r.image, r.verdict, r.arch) for r in h.records()]
    assert sorted(rows) == [
        ("derived", "myapp:latest", "error", "all"),
        ("derived", "other:1", "error", "all"),
        ("derived", "third:latest", "error", "all"),
    ]
    assert [r.message for r in night.added] == [
        "myapp:latest broke (hint: fix it)",
        "OSError(28, 'No space left on device')",
        "third:latest broke (hint: fix it)",
    ]


# -- history schema 4 --------------------------------------------------------------------
def _schema3(path: Path) -> None:
    """A history as reprobase wrote it before derived images (schema 3, no base_digest)."""
    with History(path) as h:
        h.add(_rec())
    db = sqlite3.connect(path)
    with db:
        db.execute("ALTER TABLE results DROP COLUMN base_digest")
        db.execute("UPDATE schema_version SET version = 3")
    db.close()


def test_schema_3_history_reads_and_migrates(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite"
    _schema3(path)
    with History(path, readonly=True) as ro:  # the report: read, never migrated
        assert [r.base_digest for r in ro.records()] == [None]
    with History(path) as h:  # the next nightly migrates in place
        h.add(_rec(kind="derived", image="myapp:latest", base_digest=BASE_DIGEST, run_id="r2"))
        got = {r.kind: r for r in h.records()}
    assert got["nightly"].base_digest is None and got["derived"].base_digest == BASE_DIGEST
    assert got["derived"].to_json()["base_digest"] == BASE_DIGEST
    assert "base_digest" not in got["nightly"].to_json()  # base images' rows unchanged
    db = sqlite3.connect(path)
    assert db.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
    assert SCHEMA_VERSION == 4
    db.close()


# -- the report --------------------------------------------------------------------------
def test_the_report_has_a_row_per_derived_image_with_its_base_digest(tmp_path: Path) -> None:
    with History(tmp_path / "h.sqlite") as h:
        h.add(_rec())
        for arch in ("amd64", "arm64"):
            h.add(_rec(kind="derived", image="myapp:latest", arch=arch, base_digest=BASE_DIGEST,
                       published=("oci:/s/myapp:latest",), message="on debian"))  # fmt: skip
        h.add(_rec(kind="derived-reverify", image="myapp:latest", run_id="r3",
                   started="2026-12-03T00:00:00Z", base_digest=BASE_DIGEST))  # fmt: skip
        files = render(h)
        views = derived_views(h.records())
    (v,) = views
    assert [r.arch for r in v.latest] == ["amd64", "arm64"] and v.base_digest == BASE_DIGEST
    assert v.reverified is not None and v.reverified.run_id == "r3"
    html = files["index.html"].decode()
    section = html[html.index('id="derived"') :]
    assert section.count('<td class="base-digest"><code title="' + BASE_DIGEST) == 2
    assert "images/myapp-latest.html" not in files  # not a base image's card
    assert derived_section(()) == ""


# -- the build context's .containerignore -----------------------------------------------
def test_ignore_patterns_follow_buildah() -> None:
    ig = Ignore(parse("# c\n*\n!keep\n!docs/*.md\n**/__pycache__\nsub/**/x?.log\n"))
    assert ig.excluded(".git") and ig.excluded(".git/config")
    assert not ig.excluded("keep") and not ig.excluded("keep/a/b.py")
    assert ig.excluded("keep/__pycache__/m.pyc")
    assert not ig.excluded("docs/a.md") and ig.excluded("docs/a.txt")
    assert ig.prune(".venv") and not ig.prune("docs") and not ig.prune("keep")
    ig2 = Ignore(parse("sub/**/x?.log\n/lead/\n"))
    assert ig2.excluded("sub/x1.log") and ig2.excluded("sub/a/b/x2.log")
    assert not ig2.excluded("sub/x10.log") and ig2.excluded("lead/f")


def _names(root: Path) -> list[str]:
    with tarfile.open(fileobj=io.BytesIO(pack(root).tar)) as tf:
        return tf.getnames()


def test_the_context_leaves_out_what_containerignore_excludes(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "HEAD").write_text("ref\n")
    (tmp_path / "src" / "__pycache__").mkdir(parents=True)
    (tmp_path / "src" / "a.py").write_text("a\n")
    (tmp_path / "src" / "__pycache__" / "a.pyc").write_bytes(b"\0")
    (tmp_path / "deep" / "keep").mkdir(parents=True)
    (tmp_path / "deep" / "keep" / "f").write_text("f\n")
    (tmp_path / "deep" / "drop").write_text("d\n")
    (tmp_path / ".containerignore").write_text("*\n!src\n!deep/keep\n**/__pycache__\n")
    names = _names(tmp_path)
    assert names == ["deep", "deep/keep", "deep/keep/f", "src", "src/a.py"]


def test_the_checkout_context_is_what_the_proxy_image_copies() -> None:
    names = _names(ROOT)
    tops = {n.split("/")[0] for n in names}
    assert tops == {"cache_proxy", "schedules"}
    assert "schedules/proxy-requirements.txt" in names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    assert {n for n in names if n.startswith("schedules/")} <= {
        "schedules", "schedules/proxy-requirements.txt", "schedules/proxy-wheels",
    } | {n for n in names if n.startswith("schedules/proxy-wheels/")}  # fmt: skip
