"""Benchmark: what SBOMs and provenance add to one verified (double) build.

Builds debian:bookworm (amd64) with `reprobase build` (A and B, concurrently) through a
warm cache proxy in recorder mode, and reports:
  - the verified build's wall time, and the same build by the code before attestations
    (a git worktree at --baseline-rev), whose index digest must be the same: attaching
    SBOMs and provenance never changes the image;
  - the attestation work itself, measured where it happens: the chroot hook that reads
    dpkg status, copyright files and apt's lists (factory.rootfs.debhashes, run again on
    the image's extracted root filesystem, Python start-up included, once per build),
    the SBOM stage of each build (from the build's own durations), and the provenance.
The target: the attestation work under 3% of the verified build.

Run as root: .venv/bin/python benchmarks/bench_attest.py [--baseline-rev REV] [--rounds N]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from factory.attest.store import local_referrers, read_local_artifact  # noqa: E402
from factory.common.canonical import canonical_json  # noqa: E402
from factory.source import proxyctl  # noqa: E402
from factory.source.aptsources import system_debian_mirror  # noqa: E402
from factory.source.snapshot import today_utc  # noqa: E402
from factory.source.upstream import mirror_base  # noqa: E402


def build(code: Path, proxy: str, ts: str, out: Path) -> dict[str, Any]:
    argv = [sys.executable, "-m", "factory.cli", "build", "debian:bookworm", "--arch", "amd64",
            "--snapshot", ts, "--proxy", proxy, "--upstream", "record", "--output", str(out),
            "--force", "--json"]  # fmt: skip
    env = dict(os.environ, PYTHONPATH=str(code))
    t = time.monotonic()
    proc = subprocess.run(argv, cwd=code, env=env, capture_output=True, text=True, check=False)
    wall = time.monotonic() - t
    if proc.returncode != 0:
        raise SystemExit(f"build failed ({code}):\n{proc.stderr[-2000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["wall"] = wall
    return dict(result)


def hook_seconds(layout: Path, work: Path) -> float:
    """The debhashes hook over the image's own root filesystem (as in the chroot, minus the
    apt lists that normalisation removed: the lists of the machine stand in for them)."""
    top = json.loads((layout / "index.json").read_bytes())["manifests"][0]["digest"][7:]
    index = json.loads((layout / "blobs/sha256" / top).read_bytes())
    man = json.loads((layout / "blobs/sha256" / index["manifests"][0]["digest"][7:]).read_bytes())
    rootfs = work / "rootfs"
    rootfs.mkdir()
    blob = layout / "blobs/sha256" / man["layers"][0]["digest"][7:]
    subprocess.run(["tar", "-xzf", str(blob), "-C", str(rootfs)], check=True)
    lists = rootfs / "var/lib/apt/lists"
    shutil.rmtree(lists, ignore_errors=True)
    shutil.copytree("/var/lib/apt/lists", lists, ignore=shutil.ignore_patterns("lock", "partial"))
    for packed in sorted(lists.glob("*.lz4")):  # apt in the chroot keeps its lists plain
        subprocess.run(["lz4", "-d", "-q", "--rm", str(packed), str(packed.with_suffix(""))],
                       check=True)  # fmt: skip
    plain = sum(p.stat().st_size for p in lists.glob("*_Packages"))
    print(f"(hook measured over {plain / 1e6:.0f} MB of plain Packages lists)")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.monotonic()
    subprocess.run([sys.executable, "-m", "factory.rootfs.debhashes", str(rootfs),
                    str(work / "facts.json")], check=True, cwd=ROOT)  # fmt: skip
    wall = time.monotonic() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    print(f"(hook: {wall:.3f} s wall, {cpu:.3f} s CPU; a loaded machine widens the gap)")
    return wall


def provenance_seconds(layout: Path) -> float:
    """Reading, re-serialising and storing the provenance statement (what attach does)."""
    t = time.monotonic()
    for d in local_referrers(layout):
        if d.annotations.get("org.reprobase.attestation") == "provenance":
            canonical_json(json.loads(read_local_artifact(layout, d).payload))
    return time.monotonic() - t


def sbom_seconds(result: dict[str, Any]) -> float:
    return float(sum(v for k, v in result["durations"].items() if k.startswith("SBOMs")))


def baseline_rev() -> str:
    """The last commit before the chroot hook (the first attestation code to reach builds)."""
    first = subprocess.run(
        ["git", "log", "--format=%H", "-Sdebhashes", "--", "factory/rootfs/mmdebstrap.py"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    return f"{first[-1]}^" if first else "HEAD"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--baseline-rev", default=None, help="code before attestations")
    ap.add_argument("--rounds", type=int, default=1)
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("run as root (mmdebstrap root mode)", file=sys.stderr)
        return 2
    rev = args.baseline_rev or baseline_rev()
    ts = today_utc().text
    work = Path(tempfile.mkdtemp(prefix="bench-attest-", dir="/var/tmp"))
    base = work / "baseline"
    try:
        subprocess.run(["git", "worktree", "add", "--detach", str(base), rev], cwd=ROOT,
                       check=True, capture_output=True)  # fmt: skip
        cache = Path(os.environ.get("REPROBASE_BENCH_CACHE", work / "proxy"))
        cfg = proxyctl.ProxyLaunch(cache, mirror_base(system_debian_mirror()), True, work / "p.log")
        with proxyctl.running(cfg) as proxy:
            build(ROOT, proxy.url, ts, work / "warm")  # warms the proxy for both
            ours: list[dict[str, Any]] = []
            theirs: list[dict[str, Any]] = []
            for i in range(args.rounds):
                for code, runs, name in ((ROOT, ours, "new"), (base, theirs, "old")):
                    runs.append(build(code, proxy.url, ts, work / f"{name}-{i}"))
        new, old = ours[-1], theirs[-1]
        layout = work / f"new-{args.rounds - 1}"
        hook = hook_seconds(layout, work)
        sboms = sbom_seconds(new)
        prov = provenance_seconds(layout)
        wall_new = statistics.median(r["wall"] for r in ours)
        wall_old = statistics.median(r["wall"] for r in theirs)
        # A and B run at the same time: each pays its hook and SBOM stage; counted both
        added = 2 * hook + sboms + prov
        delta = (wall_new / wall_old - 1) * 100
        # the hook as the build sees it: how much longer mmdebstrap's last phase took
        phase = "mmdebstrap: customize and normalise"
        grew = {
            b: new["durations"].get(f"build {b} amd64: {phase}", 0.0)
            - old["durations"].get(f"build {b} amd64: {phase}", 0.0)
            for b in ("A", "B")
        }
        in_build = max(grew.values()) + sboms / 2 + prov  # on the critical path: one of A, B
        rows = [
            ("verified build, with attestations", wall_new, ""),
            (f"verified build, before attestations ({rev[:12]})", wall_old, ""),
            ("  difference (noise included)", wall_new - wall_old, f"{delta:+.1f}%"),
            ("chroot hook (dpkg, copyright, apt lists) x2", 2 * hook, ""),
            ("SBOM stage, builds A + B", sboms, ""),
            ("provenance", prov, ""),
            ("attestation work, total", added, f"{added / wall_new * 100:.2f}% of the build"),
            (f"'{phase}' grew by (A, B)", sum(grew.values()),
             f"{grew['A']:.2f} s, {grew['B']:.2f} s"),
            ("in the build, critical path (A and B concurrent)", in_build,
             f"{in_build / wall_new * 100:.2f}% of the build"),
        ]  # fmt: skip
        print(f"{'what':<52} {'seconds':>9}  note")
        for what, s, note in rows:
            print(f"{what:<52} {s:>9.3f}  {note}")
        print("\nstages of the last verified build (seconds), new code vs before attestations:")
        for key in sorted(set(new["durations"]) | set(old["durations"])):
            a, b = new["durations"].get(key), old["durations"].get(key)
            print(f"  {key:<60} {a if a is not None else '-':>9} {b if b is not None else '-':>9}")
        same = new["index_digest"] == old["index_digest"]
        print(f"\nindex digest with attestations    {new['index_digest']}")
        print(f"index digest before attestations  {old['index_digest']}  "
              f"({'identical' if same else 'DIFFERENT'})")  # fmt: skip
        worst = max(added, in_build)
        verdict = "met" if worst / wall_new < 0.03 else "NOT met"
        print(f"target: attestation work < 3% of the verified build: {verdict} "
              f"({worst / wall_new:.2%})")  # fmt: skip
        return 0 if same else 1
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(base)], cwd=ROOT,
                       check=False, capture_output=True)  # fmt: skip
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
