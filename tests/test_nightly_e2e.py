"""The nightly, end to end, on two consecutive days against a real registry.

Night 1 builds debian:bookworm-slim and a deliberately non-reproducible recipe:
the first is published, the second refused with its diff report kept. Night 2
(the next day's snapshot, same package set) must re-tag the published image
instead of minting a new digest, re-verify night 1's image, and refuse the bad
recipe again. History and report show all of it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import subprocess
from pathlib import Path

import pytest

from factory.cli import main
from factory.report.history import History
from factory.source import proxyctl
from tests.build_fixtures import ROOT
from tests.registry_fixtures import Registry, registry, skopeo_raw

pytestmark = [pytest.mark.root, pytest.mark.network, pytest.mark.slow]
__all__ = ["registry"]
TODAY = dt.datetime.now(dt.UTC).date()
DAY1, DAY2 = TODAY - dt.timedelta(days=1), TODAY
BAD = ROOT / "tests" / "data" / "nondeterministic.toml"


def _digest(raw: bytes) -> str:
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def _night(
    config: Path, day: dt.date, capsys: pytest.CaptureFixture[str], jobs: int = 2
) -> tuple[int, dict]:
    argv = ["nightly", "--config", str(config), "--date", day.isoformat(), "--json"]
    rc = main([*argv, "--jobs", str(jobs)])
    out = capsys.readouterr().out.strip().splitlines()
    return rc, json.loads(out[-1])


def test_two_nights(
    recorded_mirror: proxyctl.ProxyHandle,
    registry: Registry,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    state = tmp_path / "state"
    config = tmp_path / "nightly.toml"
    config.write_text(
        "[nightly]\n"
        f'images = ["debian:bookworm-slim", "{BAD}"]\n'
        'architectures = ["amd64"]\n'
        f'proxy = "{recorded_mirror.url}"\nupstream = "record"\n'
        f'publish = ["{registry.host}/nightly"]\nreverify = 1\n'
        f'history = "{state}/history.sqlite"\nreport = "{state}/report"\n'
    )
    slim = lambda tag: registry.ref("nightly/debian", tag)  # noqa: E731

    # night 1: slim published, the non-reproducible recipe refused
    rc, night1 = _night(config, DAY1, capsys, jobs=2)
    assert rc == 1 and night1["ok"] is False
    # both images' A and B builds were scheduled over two slots, never more
    assert (night1["jobs"], night1["peak_builds"]) == (2, 2)
    by_image = {r["image"]: r for r in night1["results"]}
    assert by_image["debian:bookworm-slim"]["verdict"] == "reproducible"
    assert by_image["test:nondeterministic"]["verdict"] == "differs"
    assert "etc/build-stamp" in by_image["test:nondeterministic"]["message"]
    published = by_image["debian:bookworm-slim"]["index_digest"]
    for tag in (
        "bookworm-slim",
        f"bookworm-slim-{DAY1:%Y%m%d}",
        f"bookworm-slim-{DAY1:%Y%m%d}T000000Z",
    ):
        assert _digest(skopeo_raw(slim(tag))) == published
    bad = subprocess.run(
        [
            "skopeo",
            "inspect",
            "--raw",
            "--tls-verify=false",
            f"docker://{registry.ref('nightly/test', 'nondeterministic')}",
        ],
        capture_output=True,
        check=False,
    )
    assert bad.returncode != 0  # nothing of it was published
    mismatch = state / "mismatches" / f"test-nondeterministic-{DAY1:%Y%m%d}T000000Z"
    assert (mismatch / "report.json").is_file() and (mismatch / "a" / "index.json").is_file()

    # night 2: same package set -> the date tag points at night 1's digest
    rc, night2 = _night(config, DAY2, capsys)
    assert rc == 1
    rows = {(r["kind"], r["image"]): r for r in night2["results"]}
    assert rows[("nightly", "debian:bookworm-slim")]["verdict"] == "unchanged"
    assert rows[("nightly", "debian:bookworm-slim")]["index_digest"] == published
    assert _digest(skopeo_raw(slim(f"bookworm-slim-{DAY2:%Y%m%d}"))) == published
    assert _digest(skopeo_raw(slim("bookworm-slim"))) == published  # not moved
    assert rows[("nightly", "test:nondeterministic")]["verdict"] == "differs"
    # continuous re-verification of night 1's published image, from the registry
    assert rows[("reverify", "debian:bookworm-slim")]["verdict"] == "reproducible"
    assert rows[("reverify", "debian:bookworm-slim")]["digest_b"] == published

    # --jobs 1 builds the same bytes as --jobs 2 (same day, own state, a local store)
    solo = tmp_path / "solo"
    config1 = tmp_path / "nightly1.toml"
    config1.write_text(
        "[nightly]\n"
        'images = ["debian:bookworm-slim"]\narchitectures = ["amd64"]\n'
        f'proxy = "{recorded_mirror.url}"\nupstream = "record"\n'
        f'publish = ["oci:{solo}/store"]\n'
        f'history = "{solo}/history.sqlite"\nreport = "{solo}/report"\n'
    )
    rc, alone = _night(config1, DAY1, capsys, jobs=1)
    assert rc == 0 and (alone["jobs"], alone["peak_builds"]) == (1, 1)
    assert [r["index_digest"] for r in alone["results"]] == [published]

    # history and report show it
    with History(state / "history.sqlite") as h:
        verdicts = sorted((r.kind, r.image, r.verdict, r.snapshot[:8]) for r in h.records())
    assert verdicts == sorted(
        [
            ("nightly", "debian:bookworm-slim", "reproducible", f"{DAY1:%Y%m%d}"),
            ("nightly", "test:nondeterministic", "differs", f"{DAY1:%Y%m%d}"),
            ("nightly", "debian:bookworm-slim", "unchanged", f"{DAY2:%Y%m%d}"),
            ("nightly", "test:nondeterministic", "differs", f"{DAY2:%Y%m%d}"),
            ("reverify", "debian:bookworm-slim", "reproducible", f"{DAY1:%Y%m%d}"),
        ]
    )
    html = (state / "report" / "index.html").read_text()
    assert "debian:bookworm-slim" in html and "test:nondeterministic" in html
    results = json.loads((state / "report" / "results.json").read_text())
    assert len(results["records"]) == 5


def test_second_nightly_is_refused_while_one_runs(tmp_path: Path) -> None:
    from factory.common.errors import UserError
    from factory.nightly.run import nightly_lock

    lock = tmp_path / "nightly.lock"
    with (
        nightly_lock(lock),
        pytest.raises(UserError, match="another nightly is running"),
        nightly_lock(lock),
    ):
        pass
