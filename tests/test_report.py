"""The static report: golden results.json, HTML contents, escaping, the CLI."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from factory.commands.report import config_paths, default_paths
from factory.common.canonical import canonical_json
from factory.common.errors import UserError
from factory.common.paths import Paths
from factory.report import fmt, render, write_report
from factory.report.history import History, ResultRecord
from factory.report.model import Counts, build, slugs
from factory.report.pkgdiff import PackageChange, diff_packages
from factory.report.svg import VERDICT_COLOURS
from tests.report_fixtures import hostile_record, synthetic_records

GOLDEN = Path(__file__).parent / "golden" / "report"
REPROBASE = Path(sys.executable).with_name("reprobase")


def make_history(path: Path, records: list[ResultRecord]) -> History:
    h = History(path)
    for rec in records:
        h.add(rec)
    return h


@pytest.fixture
def history(tmp_path: Path) -> History:
    return make_history(tmp_path / "history.sqlite", synthetic_records())


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("REPROBASE_UPDATE_GOLDEN"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8"), f"{name} drifted (REPROBASE_UPDATE_GOLDEN=1)"


# --- results.json -------------------------------------------------------------------


def test_results_json_golden(history: History) -> None:
    data = render(history)["results.json"]
    doc = json.loads(data)
    # The file is canonical JSON; the golden copy is indented for readable diffs.
    assert data == canonical_json(doc)
    check_golden(
        "results.json", json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    )


def test_results_json_holds_every_record(history: History) -> None:
    doc = json.loads(render(history)["results.json"])
    assert len(doc["records"]) == len(synthetic_records())
    # With each package_set key replaced by its list, the records are the history's.
    sets = doc["package_sets"]
    rebuilt = []
    for rec in doc["records"]:
        key = rec.pop("package_set")
        rebuilt.append({**rec, "packages": sets[key] if key else []})
    assert sorted(map(canonical_json, rebuilt)) == sorted(
        canonical_json(r.to_json()) for r in synthetic_records()
    )
    assert len(sets) == len({r.packages for r in synthetic_records() if r.packages})
    assert doc["summary"]["last_30_nights"]["verdicts"] == {
        "reproducible": 17,
        "unchanged": 10,
        "differs": 1,
        "error": 1,
        "not-verified": 1,
    }


def test_report_is_deterministic(tmp_path: Path) -> None:
    recs = synthetic_records()
    a = render(make_history(tmp_path / "a.sqlite", recs))
    b = render(make_history(tmp_path / "b.sqlite", list(reversed(recs))))
    assert a == b
    assert sorted(a) == [
        "images/debian-bookworm.html",
        "images/debian-trixie-slim.html",
        "index.html",
        "results.json",
    ]


def test_generated_only_when_given(history: History) -> None:
    plain = render(history)
    assert b"Generated" not in plain["index.html"]
    stamped = render(history, generated="2026-11-29T02:00:00Z", title="nightly images")
    assert b"Generated 2026-11-29T02:00:00Z." in stamped["index.html"]
    assert json.loads(stamped["results.json"])["generated"] == "2026-11-29T02:00:00Z"
    assert b"<title>nightly images</title>" in stamped["index.html"]


# --- HTML contents ------------------------------------------------------------------


def _timeline(html: str) -> str:
    m = re.search(r'<svg class="timeline".*?</svg>', html, re.S)
    assert m, "no timeline"
    return m.group(0)


def test_timeline_cells(history: History) -> None:
    page = render(history)["images/debian-bookworm.html"].decode()
    strip = _timeline(page)
    fills = re.findall(r'<rect [^>]*fill="(#[0-9a-f]{6})"', strip)
    assert len(fills) == 20  # 10 nights x 2 arches
    colour = {v: c for v, c in VERDICT_COLOURS.items()}
    assert fills.count(colour["differs"]) == 1
    assert fills.count(colour["error"]) == 1
    assert fills.count(colour["unchanged"]) == 10
    assert fills.count(colour["reproducible"]) == 8
    # Tooltips name the night, the verdict and the message.
    assert "arm64 · 2026-11-24 · differs" in strip
    assert "usr/share/info/dir: contents differ (order of entries)" in strip
    # Two re-verifications, drawn as dots in their nights' cells.
    assert strip.count("<circle") == 2
    assert "re-verified 2026-11-29T01:35:00Z: reproducible" in strip


def test_index_summary_and_sections(history: History) -> None:
    html = render(history)["index.html"].decode()
    assert '<div class="v">2</div>' in html  # images
    assert "96.4%" in html  # 27 of 28 judged results: reproducible or unchanged
    assert "2026-10-31 \u2013 2026-11-29" in html
    assert 'href="images/debian-bookworm.html"' in html
    assert 'href="images/debian-trixie-slim.html"' in html
    assert html.count('<svg class="timeline"') == 2
    assert html.count('<svg class="chart"') == 4  # compressed + uncompressed per image


def test_package_changes(history: History) -> None:
    page = render(history)["images/debian-bookworm.html"].decode()
    assert "<b>libc6</b> 2.36-9+deb12u9 → 2.36-9+deb12u10" in page
    assert "<b>tzdata</b> 2024b-0+deb12u1 → 2025a-0+deb12u1" in page
    removed = '<span class="ck removed" title="removed">\u2212</span><b>coreutils</b> 9.1-1'
    added = '<span class="ck added" title="added">+</span><b>coreutils-from-uutils</b> 0.1.0-1'
    assert f'<li class="removed">{removed}' in page
    assert f'<li class="added">{added}' in page
    # The same change on both arches is listed once, naming both.
    assert page.count("<b>libc6</b> 2.36-9+deb12u9 → 2.36-9+deb12u10") == 1
    assert "since 2026-11-22<br>amd64, arm64" in page


def test_latest_digests_durations_upstream(history: History) -> None:
    page = render(history)["images/debian-bookworm.html"].decode()
    latest = history.records(image="debian:bookworm", arch="amd64", limit=5)
    newest_nightly = next(r for r in latest if r.kind == "nightly")
    assert newest_nightly.manifest_digest and newest_nightly.manifest_digest in page
    assert "build_a 2 min 32 s · build_b 2 min 40 s · compare 0.8 s" in page
    assert "41.0 MB" in page  # upstream bytes of the first night
    assert "oci:/var/lib/reprobase/store:bookworm-20261129" in page
    assert "mmdebstrap failed with exit code 1: E: Unable to fetch libc6" in page


def test_self_contained(history: History) -> None:
    for name, data in render(history).items():
        if not name.endswith(".html"):
            continue
        html = data.decode()
        assert "<script" not in html
        assert "<link" not in html
        assert " src=" not in html
        assert "@import" not in html
        urls = set(re.findall(r"https?://[^\s\"'<>]+", html))
        assert urls <= {"http://www.w3.org/2000/svg"}, urls


def test_hostile_strings_escaped(tmp_path: Path) -> None:
    evil = hostile_record()
    later = dataclasses.replace(
        evil,
        snapshot="20261130T000000Z",
        started="2026-11-30T01:30:00Z",
        packages=(("<svg onload=alert(1)>", "2.0&amp;", "amd64"),),
    )
    h = make_history(tmp_path / "h.sqlite", [*synthetic_records(), evil, later])
    files = render(h)
    pages = {k: v.decode() for k, v in files.items() if k.endswith(".html")}
    names = [k for k in pages if k.startswith("images/evil")]
    assert names == ["images/evil-script-alert-x-script.html"]
    for html in pages.values():
        assert "<script" not in html
        assert "<img" not in html
        assert "<svg onload" not in html
        assert "<i>" not in html and "<stage>" not in html
        assert 'href="javascript' not in html
    page = pages[names[0]]
    assert "evil:&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert "&lt;/pre&gt;&lt;script&gt;alert(&#x27;message&#x27;)&lt;/script&gt;" in page
    assert "<b>&lt;svg onload=alert(1)&gt;</b> 1.0&amp;amp; → 2.0&amp;amp;" in page
    assert "amd64&amp;&lt;b&gt;" in page
    assert "&lt;stage&gt;" in page
    assert "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;" in page
    assert "evil:&lt;script&gt;" in pages["index.html"]
    # JSON keeps the strings as data.
    recs = json.loads(files["results.json"])["records"]
    assert any(r["image"] == "evil:<script>alert('x')</script>" for r in recs)


def test_empty_history(tmp_path: Path) -> None:
    files = render(History(tmp_path / "empty.sqlite"))
    assert sorted(files) == ["index.html", "results.json"]
    assert b"The history is empty" in files["index.html"]
    doc = json.loads(files["results.json"])
    assert doc["records"] == [] and doc["summary"]["images"] == 0


# --- writing ------------------------------------------------------------------------


def test_write_report_replaces_directory(tmp_path: Path, history: History) -> None:
    out = tmp_path / "site" / "report"
    write_report(history, out)  # an earlier report, with a page that is gone since
    (out / "images" / "gone.html").write_text("stale")
    index = write_report(history, out)
    assert index == out / "index.html"
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == [
        "images",
        "images/debian-bookworm.html",
        "images/debian-trixie-slim.html",
        "index.html",
        "results.json",
    ]
    assert sorted(p.name for p in out.parent.iterdir()) == ["report"]  # no staging left
    assert (out / "index.html").stat().st_mode & 0o777 == 0o644
    assert (out / "results.json").read_bytes() == render(history)["results.json"]


# --- pure pieces --------------------------------------------------------------------


def test_package_diff() -> None:
    before = [("a", "1.0", "amd64"), ("b", "2:1.0", "amd64"), ("c", "1.0", "all"), ("d", "1", "x")]
    after = [("a", "1.0~rc1", "amd64"), ("b", "1:9.9", "amd64"), ("d", "1", "x"), ("e", "3", "x")]
    changes = diff_packages(before, after)
    assert [(c.name, c.old, c.new, c.kind) for c in changes] == [
        ("a", "1.0", "1.0~rc1", "downgraded"),
        ("b", "2:1.0", "1:9.9", "downgraded"),
        ("c", "1.0", None, "removed"),
        ("e", None, "3", "added"),
    ]
    assert PackageChange("x", "1.0-1", "1.0-1+b1").kind == "upgraded"
    multi = diff_packages(
        [("libc6", "2.36", "amd64"), ("libc6", "2.36", "i386")],
        [("libc6", "2.37", "amd64"), ("libc6", "2.36", "i386")],
    )
    assert multi == (PackageChange("libc6:amd64", "2.36", "2.37"),)


def test_counts_rate() -> None:
    recs = synthetic_records()
    assert Counts.of([]).rate is None
    only_errors = [dataclasses.replace(recs[0], verdict="error")]
    assert Counts.of(only_errors).rate is None
    c = Counts.of(recs[:4])
    assert c.total == 4 and c.rate is not None


def test_slugs() -> None:
    assert slugs(["debian:bookworm", "a:b", "a-b", "../x", ""]) == {
        "debian:bookworm": "debian-bookworm",
        "a:b": "a-b-6783a31e",
        "a-b": "a-b-d44362d6",
        "../x": "x",
        "": "image",
    }


def test_summary_window_from_history_not_clock() -> None:
    summary, views = build(synthetic_records())
    assert summary.window == "2026-10-31 \u2013 2026-11-29"
    assert summary.last_run is not None and summary.last_run.finished == "2026-11-29T01:44:12Z"
    assert [v.image for v in views] == ["debian:bookworm", "debian:trixie-slim"]


def test_formatting() -> None:
    assert fmt.size(None) == fmt.DASH
    assert fmt.size(999) == "999 B"
    assert fmt.size(29_150_000) == "29.1 MB"
    assert fmt.size(3_200_000_000) == "3.2 GB"
    assert fmt.seconds(0.75) == "0.8 s"
    assert fmt.seconds(152.5) == "2 min 32 s"
    assert fmt.snapshot_label("20261129T000000Z") == "2026-11-29"
    assert fmt.snapshot_label("20261129T123456Z") == "2026-11-29 12:34:56"
    assert fmt.snapshot_label("not-a-time") == "not-a-time"
    assert fmt.window_start("20261129T000000Z", 30) == "20261031T000000Z"


# --- CLI ----------------------------------------------------------------------------


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HOME": str(cwd)}
    return subprocess.run(
        [str(REPROBASE), "report", *args], cwd=cwd, env=env, capture_output=True, text=True
    )


def test_cli_writes_report(tmp_path: Path, history: History) -> None:
    out = tmp_path / "out"
    proc = _cli("--history", str(history.path), "--output", str(out), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"{out / 'index.html'}\n"
    assert (out / "results.json").read_bytes() == render(history)["results.json"]


def test_cli_json_and_config(tmp_path: Path, history: History) -> None:
    cfg = tmp_path / "nightly.toml"
    cfg.write_text(
        f'[nightly]\nimages = ["debian:bookworm"]\nhistory = "{history.path}"\n'
        f'report = "{tmp_path / "from-config"}"\n'
    )
    proc = _cli("--config", str(cfg), "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc == {
        "history": str(history.path),
        "index": str(tmp_path / "from-config" / "index.html"),
        "results": str(tmp_path / "from-config" / "results.json"),
        "images": 2,
        "records": len(synthetic_records()),
    }


def test_cli_missing_history_is_one_line(tmp_path: Path) -> None:
    proc = _cli("--history", str(tmp_path / "nope.sqlite"), cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr == (
        f"error: no history at {tmp_path / 'nope.sqlite'} "
        "(hint: run 'reprobase nightly' first, or pass --history FILE)\n"
    )
    assert not (tmp_path / "nope.sqlite").exists()


def test_config_paths_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[nightly\n")
    # the same one-line errors as the nightly's (factory.common.tomlcheck)
    with pytest.raises(UserError, match=r"bad\.toml: not valid TOML"):
        config_paths(bad)
    bad.write_text("[other]\n")
    with pytest.raises(UserError, match=r"bad.toml: no \[nightly\] table"):
        config_paths(bad)
    bad.write_text("[nightly]\nhistory = 3\n")
    with pytest.raises(UserError, match=r"field 'nightly\.history': must be a str, not int"):
        config_paths(bad)
    bad.write_text('[nightly]\nreport = "/srv/www"\n')
    assert config_paths(bad) == (None, Path("/srv/www"))
    with pytest.raises(UserError, match=r"missing\.toml: no such config file"):
        config_paths(tmp_path / "missing.toml")


def test_default_paths() -> None:
    root = default_paths(Paths.for_user(euid=0))
    assert (root.history, root.output) == (
        Path("/var/lib/reprobase/history.sqlite"),
        Path("/var/lib/reprobase/report"),
    )
    user = default_paths(Paths.for_user(euid=1000, environ={}, home=Path("/home/u")))
    assert (user.history, user.output) == (  # where a user's nightly writes them
        Path("/home/u/.local/share/reprobase/history.sqlite"),
        Path("/home/u/.local/share/reprobase/report"),
    )


def test_shipped_configs_name_history_and_report() -> None:
    schedules = Path(__file__).parent.parent / "schedules"
    for name in ("nightly.toml", "publish.toml"):
        hist, rep = config_paths(schedules / name)
        assert hist == Path("/var/lib/reprobase/history.sqlite")
        assert rep == Path("/var/lib/reprobase/report")


def test_one_night_is_not_called_thirty(tmp_path: Path) -> None:
    """The dashboard never claims more history than it has, nor a snapshot.debian.org
    pin for every image (recorded mirrors exist)."""
    from tests.report_fixtures import synthetic_records

    with History(tmp_path / "h.sqlite") as h:
        for rec in synthetic_records()[:2]:  # night 0 only, amd64 and arm64
            h.add(rec)
        page = render(h)["index.html"].decode()
    assert "last 30 nights" not in page and "1 night so far" in page
    assert "last 1 nights" not in page
    assert "recorded under it" in page  # the tagline names both package sources


def test_latest_says_where_the_packages_came_from(tmp_path: Path) -> None:
    """Issue 12: the dashboard never lets a mirror build pass for a snapshot pin."""
    recs = synthetic_records()
    newest = max((r for r in recs if r.image == "debian:bookworm" and r.kind == "nightly"),
                 key=lambda r: (r.started, r.run_id))  # fmt: skip
    marked = [
        dataclasses.replace(r, packages_from="recorded-mirror") if r is newest else r for r in recs
    ]
    page = render(make_history(tmp_path / "h.sqlite", marked))["images/debian-bookworm.html"]
    text = page.decode()
    want = "a recorded Debian mirror (not snapshot.debian.org)"
    assert f"<dt>packages from</dt><dd>{want}</dd>" in text
    # rows from before the history knew it say nothing rather than guess
    plain = render(make_history(tmp_path / "p.sqlite", recs))["images/debian-bookworm.html"]
    assert b"packages from" not in plain
