"""No harm from any input: the bad-input table (tests/bad_inputs.py) and its neighbours.

Every case must end with exit 2, exactly one `error: ...` line on stderr, no traceback,
nothing changed on disk, and with --json an error object on stdout.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from factory.cli import main
from factory.common.canonical import sha256_digest
from factory.common.errors import ToolFailed, UserError
from factory.image.config import Provenance
from factory.registry import push_layout_sync
from factory.source.origin import Origin
from tests.bad_inputs import CASES, measure, run_case
from tests.registry_fixtures import (
    Registry,
    layout,
    make_layout,
    registry,
    skopeo_raw,
    unique_repo,
)

__all__ = ["layout", "registry"]


@pytest.mark.slow
def test_every_bad_input_is_one_clean_line() -> None:
    outcomes = measure(Path(__file__).resolve().parent.parent, jobs=min(4, os.cpu_count() or 2))
    bad = [
        f"{o.case.id}: {o.verdict} (exit {o.returncode}, changed {list(o.changed)[:3]}): "
        f"{o.stderr.strip()[-300:]!r}"
        for o in outcomes
        if o.verdict != "clean"
    ]
    assert len(outcomes) == len(CASES) >= 150
    assert not bad, "\n".join(bad)


def test_the_table_has_every_subcommand() -> None:
    commands = {c.argv[0] for c in CASES}
    for name in ("build", "verify", "diff", "publish", "merge", "reproduce", "nightly",
                 "report", "schedule", "proxy"):  # fmt: skip
        assert name in commands, name
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case_id", ["build-date-1990", "publish-bad-tag", "cli-unknown-flag"])
def test_one_case_quickly(case_id: str, tmp_path: Path) -> None:
    """A few table rows in the fast suite (the whole table is marked slow)."""
    case = next(c for c in CASES if c.id == case_id)
    outcome = run_case(case, tmp_path)
    assert outcome.verdict == "clean", (outcome.returncode, outcome.stderr, outcome.changed)


def test_json_error_object(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["report", "--history", str(tmp_path / "none.sqlite"), "--json"]
    assert main(argv) == 2
    out, err = capsys.readouterr()
    doc = json.loads(out)
    assert doc["ok"] is False and doc["error"].startswith("no history at")
    assert err.startswith("error: no history at") and err.count("\n") == 1


def test_a_failed_tool_says_its_own_words_not_our_argv() -> None:
    argv = ["/usr/bin/mmdebstrap", "--variant=minbase", "bookworm", "/tmp/x.tar", "deb http://m/"]
    stderr = "\n".join([
        "I: chroot architecture amd64 is equal to the host's architecture",
        "I: running apt-get update...",
        "E: Failed to fetch http://m/dists/bookworm/InRelease  Could not resolve 'm'",
        "E: apt-get update failed",
        "E: mmdebstrap failed to run",
        " ".join(argv),
    ])  # fmt: skip
    exc = ToolFailed(argv, 1, stderr)
    line = exc.render()
    assert "\n" not in line
    assert line.startswith("error: mmdebstrap failed with exit code 1: ")
    assert "Could not resolve 'm'" in line and "/tmp/x.tar" not in line
    assert "failed to run" not in line  # says nothing the exit code did not
    long = ToolFailed(["tool"], 2, "word " * 400)
    assert long.message.endswith("word …")  # cut between words, not mid-word


def test_publish_bad_tag_moves_no_tag(
    registry: Registry, layout: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = unique_repo()
    first = push_layout_sync(layout, [registry.ref(repo, "bookworm")])
    other = tmp_path / "other-layout"
    make_layout(other, seed=7)  # another image: pushing it would move the tag
    argv = ["publish", str(other), registry.ref(repo, "bookworm"), "--tag", "bad tag"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: invalid tag 'bad tag'") and err.count("\n") == 1
    assert sha256_digest(skopeo_raw(registry.ref(repo, "bookworm"))) == first.digest


def test_push_target_is_probed_before_the_build(
    registry: Registry, capsys: pytest.CaptureFixture[str]
) -> None:
    from factory.registry import check_push_access_sync

    check_push_access_sync([registry.ref(unique_repo(), "x")])  # reachable and writable
    with pytest.raises(UserError, match="cannot reach registry"):
        check_push_access_sync(["127.0.0.1:1/x/y:z"])


# --- pins that are true --------------------------------------------------------------


def _ann(prov: Provenance) -> dict[str, str]:
    from factory.image.config import common_annotations
    from factory.recipes.recipe import recipe_from_dict
    from factory.source.snapshot import Timestamp

    recipe = recipe_from_dict(
        {"name": "debian", "tag": "bookworm", "suite": "bookworm", "architectures": ["amd64"]},
        "test",
    )
    return common_annotations(recipe, Timestamp.parse("20261129T000000Z"), prov)


def test_a_mirror_build_says_what_its_packages_came_from() -> None:
    snap = _ann(Provenance(Origin.SNAPSHOT, None, "1.3.5", "gzip"))
    assert "snapshot.debian.org" in snap["org.opencontainers.image.source"]
    assert "org.reprobase.security-mirror" not in snap  # snapshot images are unchanged
    none = _ann(Provenance(Origin.MIRROR, "http://m.example/debian/", "1.3.5", "gzip", "none"))
    assert none["org.opencontainers.image.source"] == "http://m.example/debian/"
    assert "not pinned to snapshot.debian.org" in none["org.opencontainers.image.description"]
    assert "security updates are missing" in none["org.opencontainers.image.description"]
    assert none["org.reprobase.security-mirror"] == "none"
    sec = "http://m.example/debian-security/"
    both = _ann(Provenance(Origin.MIRROR, "http://m.example/debian/", "1.3.5", "gzip", sec))
    assert both["org.reprobase.security-mirror"] == sec
    assert f"with the security archive {sec}" in both["org.opencontainers.image.description"]
    rec = _ann(Provenance(Origin.RECORDED_MIRROR, "http://m.example/", "1.3.5", "gzip"))
    assert "recorded by the reprobase proxy" in rec["org.opencontainers.image.description"]
    assert "snapshot.debian.org" not in rec["org.opencontainers.image.source"]


def test_the_security_archive_beside_a_mirror(tmp_path: Path) -> None:
    from factory.source.upstream import security_beside

    (tmp_path / "debian" / "dists").mkdir(parents=True)
    assert security_beside(f"file://{tmp_path}/debian/") is None  # none there: said loudly
    (tmp_path / "debian-security" / "dists").mkdir(parents=True)
    assert security_beside(f"file://{tmp_path}/debian") == f"file://{tmp_path}/debian-security/"
    assert security_beside("http://m.example/ubuntu/") is None  # not a .../debian mirror


def test_rebuild_command_names_the_security_archive() -> None:
    from factory.common.arch import Architecture
    from factory.image.config import rebuild_command
    from factory.recipes.recipe import recipe_from_dict
    from factory.source.snapshot import Timestamp

    recipe = recipe_from_dict(
        {"name": "debian", "tag": "bookworm", "suite": "bookworm", "architectures": ["amd64"]},
        "test",
    )
    prov = Provenance(Origin.MIRROR, "http://m.example/debian/", "1.3.5", "gzip", "none")
    cmd = rebuild_command(recipe, Timestamp.parse("20261129T000000Z"), [Architecture.AMD64], prov)
    assert cmd.endswith("--mirror http://m.example/debian/ --security-mirror none")


def test_preflight_reads_the_archive_before_the_build(tmp_path: Path) -> None:
    import functools
    import http.server
    import threading

    from factory.source.buildsource import BuildSource
    from factory.source.upstream import ResolvedSource, preflight

    (tmp_path / "debian" / "dists" / "bookworm").mkdir(parents=True)
    (tmp_path / "debian" / "dists" / "bookworm" / "InRelease").write_text("signed\n")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/debian/"
        src = ResolvedSource(BuildSource.mirror(url), "mirror", None, None)
        preflight(src, "bookworm")
        with pytest.raises(UserError, match=r"dists/trixie/InRelease cannot be read \(HTTP 404"):
            preflight(src, "trixie")
    finally:
        server.shutdown()
        server.server_close()


def test_a_recipe_claim_of_a_snapshot_pin_is_dropped_for_a_mirror_build() -> None:
    from factory.image.config import common_annotations
    from factory.recipes.recipe import load_recipe
    from factory.source.snapshot import Timestamp

    recipe = load_recipe("debian:bookworm")
    assert "pinned to snapshot.debian.org" in recipe.description
    prov = Provenance(Origin.MIRROR, "http://m.example/debian/", "1.3.5", "gzip", "none")
    desc = common_annotations(recipe, Timestamp.parse("20261129T000000Z"), prov)[
        "org.opencontainers.image.description"
    ]
    assert "pinned to snapshot.debian.org" not in desc.replace("not pinned to snapshot", "")


def test_a_wrapped_tool_is_named_and_its_error_lines_win() -> None:
    argv = ["unshare", "--uts", "--", "/usr/bin/python3", "-m", "factory.rootfs.varyenv", "--",
            "/usr/bin/mmdebstrap", "--variant=minbase", "bookworm", "/w/out.tar"]  # fmt: skip
    stderr = "E: Unable to locate package nope\nI: main() received signal PIPE\nI: removing tempdir"
    line = ToolFailed(argv, 25, stderr).render()
    assert line.startswith("error: mmdebstrap failed with exit code 25: E: Unable to locate")
    assert "I: removing" not in line


def test_a_cache_dir_is_a_store_or_refused(tmp_path: Path) -> None:
    from factory.source.upstream import check_cache_dir

    check_cache_dir(tmp_path / "new")  # created at start
    started = tmp_path / "started"
    started.mkdir()
    (started / "proxy.log").write_text("")  # the factory opens the log before the proxy runs
    (started / ".port-123").write_text("")
    check_cache_dir(started)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("x")
    with pytest.raises(UserError, match="not a reprobase proxy store"):
        check_cache_dir(mine)
