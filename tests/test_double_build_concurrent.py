"""Builds A and B run at the same time through one cold cache proxy, and still agree.

A fresh recorder proxy (nothing cached) serves one double build of debian:bookworm-slim.
Its access log says, for every file, who fetched it upstream (MISS) and who read the
growing download or the stored blob (COALESCED, HIT): the pair must fetch each file once.
"""

from __future__ import annotations

import collections
import re
from pathlib import Path

import pytest

from factory.source import proxyctl
from factory.source.aptsources import system_debian_mirror
from factory.source.upstream import mirror_base
from tests.build_fixtures import run_build

pytestmark = [pytest.mark.root, pytest.mark.network, pytest.mark.slow]

ACCESS = re.compile(r'"GET (\S+)" (\d{3}) (\d+|-) (HIT|MISS|COALESCED|-) ')


def test_pair_overlaps_agrees_and_fetches_each_file_once(tmp_path: Path) -> None:
    cache = tmp_path / "cold"
    log = tmp_path / "proxy.log"
    cfg = proxyctl.ProxyLaunch(cache, mirror_base(system_debian_mirror()), True, log)
    with proxyctl.running(cfg) as proxy:
        run = run_build("debian:bookworm-slim", tmp_path / "layout", proxy)
        metrics = proxy.metrics()
    assert run.returncode == 0, run.stderr[-3000:]
    r = run.result
    assert r["reproducible"] is True and r["build_a"]["digests"] == r["build_b"]["digests"]

    (a0, a1), (b0, b1) = r["build_a"]["span"], r["build_b"]["span"]
    assert a0 < b1 and b0 < a1, (r["build_a"]["span"], r["build_b"]["span"])  # they overlap

    per_url: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for line in log.read_text().splitlines():
        m = ACCESS.search(line)
        if m and "/archive/" in m.group(1):
            per_url[m.group(1)][m.group(4)] += 1
    debs = [u for u in per_url if u.endswith(".deb")]
    assert len(debs) > 50, len(debs)  # the log really holds the build's downloads
    twice = {u: c for u, c in per_url.items() if c["MISS"] > 1}
    assert twice == {}, twice  # no file went upstream twice
    # both builds asked for every package, and one of them got it from the other's fetch
    assert all(sum(per_url[u].values()) == 2 and per_url[u]["MISS"] == 1 for u in debs)
    # the proxy's own misses (indexes it fetches to check pool files) come on top
    assert metrics["reprobase_proxy_misses_total"] >= sum(c["MISS"] for c in per_url.values())
    # the build reads the archive's Release files before the pair starts: those come on top
    assert 0 < r["upstream_bytes_pair"] <= metrics["reprobase_proxy_upstream_bytes_total"]

    # where the time went: mmdebstrap's phases add up to its stage, for each build
    d = r["durations"]
    for name in ("A", "B"):
        prefix = f"build {name} amd64: mmdebstrap: "
        phases = {k.removeprefix(prefix): v for k, v in d.items() if k.startswith(prefix)}
        assert set(phases) == {
            "setup", "download and unpack essential", "configure essential",
            "install packages", "customize and normalise", "write the tar",
        }  # fmt: skip
        whole = d[f"build {name} amd64: root filesystem (mmdebstrap)"]
        assert abs(sum(phases.values()) - whole) < 0.5, (phases, whole)
        for stage in ("canonical tar", "compression", "OCI config and manifest"):
            assert d[f"build {name} amd64: {stage}"] >= 0
