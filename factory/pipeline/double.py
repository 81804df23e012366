"""The double build: build A plainly, build B in a deliberately different
environment, compare every digest, and explain any difference.

A and B run at the same time: a build is mostly one process waiting on dpkg and the
disk, so the second costs little (two mmdebstrap runs started together took 21.4 s,
one alone 20.7 s), and both go through the one cache proxy, whose single flight
fetches each file from upstream once for the pair. Their environments stay apart:
each is applied to its own subprocesses (UTS namespace, TZ, locale, umask, clock),
never to this process.

Nothing is written to the output unless both builds agree.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from factory.common import outputs
from factory.common.paths import scratch_dir
from factory.common.progress import Progress
from factory.pipeline.attach import (
    attach_provenance,
    attach_sboms,
    attestation_digests,
    compare_attestations,
)
from factory.pipeline.build import BuildRequest, BuildResult, build, move_layout
from factory.pipeline.slots import BuildSlots
from factory.rootfs.buildenv import BuildEnv, env_a, env_b
from factory.source import proxyctl

PAIR = "A+B"


@dataclass
class Verdict:
    a: BuildResult
    b: BuildResult | None  # None with --once
    differences: list[str] = field(default_factory=list)
    report: dict[str, Any] | None = None  # the diff report when they differ
    report_text: str = ""
    upstream_bytes: dict[str, int] = field(default_factory=dict)  # per build, from the proxy
    seconds: dict[str, float] = field(default_factory=dict)  # per build
    # per build: (start, end) in seconds since the command began, to show the overlap
    spans: dict[str, tuple[float, float]] = field(default_factory=dict)

    @property
    def reproducible(self) -> bool:
        return self.b is not None and not self.differences

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "index_digest": self.a.index_digest,
            "build_a": {
                "env": self.a.env.describe(),
                "digests": self.a.digests(),
                "attestations": attestation_digests(self.a),
                "upstream_bytes": self.upstream_bytes.get("A"),
                "span": self.spans.get("A"),
            },
            "verified": self.b is not None,
            "reproducible": self.reproducible,
        }
        if PAIR in self.upstream_bytes:
            # concurrent builds share the proxy's counter: only the pair's total is known
            out["upstream_bytes_pair"] = self.upstream_bytes[PAIR]
        if self.b is not None:
            out["build_b"] = {
                "env": self.b.env.describe(),
                "digests": self.b.digests(),
                "attestations": attestation_digests(self.b),
                "upstream_bytes": self.upstream_bytes.get("B"),
                "span": self.spans.get("B"),
            }
            out["differences"] = self.differences
        if self.report is not None:
            out["diff"] = self.report
        return out


def compare_digests(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """Pure: which of index, manifest, config, layer digests differ, as readable lines."""
    diffs = []
    if a["index"] != b["index"]:
        diffs.append(f"index: {a['index']} != {b['index']}")
    for plat in sorted(set(a["platforms"]) | set(b["platforms"])):
        pa, pb = a["platforms"].get(plat), b["platforms"].get(plat)
        if pa is None or pb is None:
            diffs.append(f"{plat}: only in build {'A' if pb is None else 'B'}")
            continue
        for key in ("manifest", "config", "layer", "diff_id"):
            if pa[key] != pb[key]:
                diffs.append(f"{plat} {key}: {pa[key]} != {pb[key]}")
    return diffs


def explain(a: Path, b: Path) -> tuple[dict[str, Any] | None, str]:
    """Ask `reprobase diff` why two layouts differ (its report names the files)."""
    from factory.diffing import diff_images, render_text

    rep = diff_images(a, b)
    return rep.to_json(), render_text(rep)


def double_build(
    req: BuildRequest,
    output: Path,
    *,
    once: bool,
    progress: Progress,
    keep_dir: Path | None = None,
    meter: Callable[[], int | None] | None = None,
    force: bool = False,
    slots: BuildSlots | None = None,
) -> Verdict:
    """meter() reads the proxy's upstream byte counter (None when there is no proxy).
    The output (and the mismatch evidence) replace only earlier reprobase outputs
    (factory.common.outputs); force lets one of another kind be replaced."""
    base = scratch_dir("build")
    fetched: dict[str, int] = {}
    seconds: dict[str, float] = {}
    spans: dict[str, tuple[float, float]] = {}

    def timed(name: str, env: BuildEnv) -> BuildResult:
        t0 = progress.elapsed()
        with proxyctl.pinned(req.source.proxy):  # the proxy keeps what this build fetches
            result = build(req, env, base / f"layout-{name.lower()}", progress, slots)
        with progress.stage(f"SBOMs (SPDX, CycloneDX), build {name}"):
            attach_sboms(result.layout, result.index, req, result.arches)
        t1 = progress.elapsed()
        seconds[name] = round(t1 - t0, 3)
        spans[name] = (round(t0, 3), round(t1, 3))
        progress.say(f"build {name}: index {result.index_digest}")
        return result

    before = meter() if meter else None
    try:
        if once:
            a = timed("A", env_a(base / "env"))
            _count(fetched, "A", before, meter)
            attach_provenance(a.layout, req, [a])
            move_layout(a.layout, output, force=force)
            a.layout = output
            return Verdict(a, None, upstream_bytes=fetched, seconds=seconds, spans=spans)
        a, b = _both(timed, base)
        _count(fetched, PAIR, before, meter)
        verdict = Verdict(
            a,
            b,
            compare_digests(a.digests(), b.digests()) + compare_attestations(a, b),
            upstream_bytes=fetched,
            seconds=seconds,
            spans=spans,
        )
        if verdict.differences:
            with progress.stage("explaining the difference"):
                verdict.report, verdict.report_text = explain(a.layout, b.layout)
            keep = keep_dir or output.with_name(output.name + ".mismatch")
            _keep_evidence(a, b, verdict, keep, force)
            return verdict
        attach_provenance(a.layout, req, [a, b])
        move_layout(a.layout, output, force=force)
        a.layout = output
        return verdict
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _both(
    timed: Callable[[str, BuildEnv], BuildResult], base: Path
) -> tuple[BuildResult, BuildResult]:
    """Builds A and B at the same time. Leaving the pool waits for both, so a failure
    of one is raised only once the other has stopped using the build directory."""
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="build") as pool:
        fa = pool.submit(timed, "A", env_a(base / "env"))
        fb = pool.submit(timed, "B", env_b(base / "env"))
        return fa.result(), fb.result()


def _count(
    fetched: dict[str, int], key: str, before: int | None, meter: Callable[[], int | None] | None
) -> None:
    after = meter() if meter else None
    if before is not None and after is not None:
        fetched[key] = after - before


def _keep_evidence(
    a: BuildResult, b: BuildResult, verdict: Verdict, keep: Path, force: bool
) -> None:
    """A mismatch publishes nothing; both layouts and the report are kept for inspection."""
    with outputs.replacing(keep, outputs.OutputKind.MISMATCH, force=force) as new:
        new.mkdir()
        shutil.move(str(a.layout), str(new / "a"))
        shutil.move(str(b.layout), str(new / "b"))
        (new / "report.json").write_text(json.dumps(verdict.to_json(), indent=2, sort_keys=True))
        (new / "report.txt").write_text(verdict.report_text + "\n")
    a.layout, b.layout = keep / "a", keep / "b"
