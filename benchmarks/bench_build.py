"""Benchmark: `reprobase build --once` against plain mmdebstrap and debuerreotype.

All three build Debian bookworm (amd64) from the same packages, through one warm
reprobase cache proxy in recorder mode over the machine's configured Debian mirror
(snapshot.debian.org is not reachable here), so network noise is out of the
comparison. Rounds alternate the tools so that machine noise hits all of them.

Run as root: .venv/bin/python benchmarks/bench_build.py [--rounds N] [--suite bookworm]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from factory.image.compress import Compression
from factory.image.layer import write_layer
from factory.source import proxyctl
from factory.source.aptsources import system_debian_mirror
from factory.source.snapshot import today_utc
from factory.source.upstream import mirror_base

ROOT = Path(__file__).resolve().parent.parent
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"


def timed(argv: list[str], env: dict[str, str] | None = None) -> float:
    t = time.monotonic()
    subprocess.run(
        argv, check=True, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    return time.monotonic() - t


def ours(
    suite: str, ts: str, proxy: str, out: Path, slim: bool = False, verified: bool = False
) -> tuple[float, dict]:
    image = f"debian:{suite}{'-slim' if slim else ''}"
    shutil.rmtree(out, ignore_errors=True)
    argv = [
        sys.executable,
        "-m",
        "factory.cli",
        "build",
        image,
        *([] if verified else ["--once"]),
        "--arch",
        "amd64",
        "--snapshot",
        ts,
        "--proxy",
        proxy,
        "--upstream",
        "record",
        "--output",
        str(out),
        "--json",
    ]
    t = time.monotonic()
    p = subprocess.run(argv, check=True, cwd=ROOT, capture_output=True, text=True)
    return time.monotonic() - t, json.loads(p.stdout.strip().splitlines()[-1])


def plain_mmdebstrap(suite: str, ts: str, proxy: str, out: Path) -> float:
    base = "http://snapshot.debian.org/archive"
    env = dict(os.environ, SOURCE_DATE_EPOCH=str(today_utc().epoch))
    return timed(
        [
            "mmdebstrap",
            "--mode=root",
            "--variant=minbase",
            "--architectures=amd64",
            f"--keyring={KEYRING}",
            "--format=tar",
            f'--aptopt=Acquire::http::Proxy "{proxy}"',
            # the same merged-/usr method as reprobase uses, so both install the same packages
            "--hook-dir=/usr/share/mmdebstrap/hooks/maybe-merged-usr",
            '--aptopt=Acquire::Check-Valid-Until "false"',
            '--aptopt=Acquire::Languages "none"',
            suite,
            str(out),
            f"deb [check-valid-until=no] {base}/debian/{ts}/ {suite} main",
            f"deb [check-valid-until=no] {base}/debian/{ts}/ {suite}-updates main",
            f"deb [check-valid-until=no] {base}/debian-security/{ts}/ {suite}-security main",
        ],
        env,
    )


def debuerreotype(suite: str, ts: str, proxy: str, work: Path, slim: bool) -> tuple[float, Path]:
    """init + minimizing config + fixup (+ slimify) + tar, the documented pipeline."""
    rootfs, tar = work / "rootfs", work / f"debuerreotype{'-slim' if slim else ''}.tar"
    iso = f"{ts[:4]}-{ts[4:6]}-{ts[6:8]}T{ts[9:11]}:{ts[11:13]}:{ts[13:15]}Z"
    env = dict(os.environ, http_proxy=proxy)
    shutil.rmtree(rootfs, ignore_errors=True)
    t = time.monotonic()
    subprocess.run(
        ["debuerreotype-init", "--keyring", KEYRING, str(rootfs), suite, iso],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for step in (
        ["debuerreotype-minimizing-config", str(rootfs)],
        *([["debuerreotype-slimify", str(rootfs)]] if slim else []),
        ["debuerreotype-fixup", str(rootfs)],
        ["debuerreotype-tar", str(rootfs), str(tar)],
    ):
        subprocess.run(
            step, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
    took = time.monotonic() - t
    shutil.rmtree(rootfs, ignore_errors=True)
    return took, tar


def compressed_size(tar: Path, work: Path) -> int:
    """The same pinned compressor as our layers, so sizes compare content, not gzip."""
    r = write_layer(tar, work / "sized.gz", Compression.GZIP, 2**31 - 1)
    (work / "sized.gz").unlink()
    return r.size


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--suite", default="bookworm")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("error: run as root (mmdebstrap root mode, debuerreotype)", file=sys.stderr)
        return 2
    ts = today_utc().text
    work = Path(tempfile.mkdtemp(prefix="bench-build-", dir="/var/tmp"))
    cache = Path(os.environ.get("REPROBASE_BENCH_CACHE", work / "proxy"))
    cfg = proxyctl.ProxyLaunch(cache, mirror_base(system_debian_mirror()), True, work / "proxy.log")
    inner: list[float] = []
    times: dict[str, list[float]] = {
        "reprobase build (verified: A and B)": [],
        "reprobase build --once": [],
        "mmdebstrap": [],
        "debuerreotype": [],
    }
    try:
        with proxyctl.running(cfg) as proxy:
            print(f"warming the proxy (snapshot {ts}) ...", file=sys.stderr)
            ours(args.suite, ts, proxy.url, work / "warm")
            debuerreotype(args.suite, ts, proxy.url, work, slim=False)
            results: dict[str, object] = {}

            def run_ours() -> None:
                t, res = ours(args.suite, ts, proxy.url, work / "ours")
                times["reprobase build --once"].append(t)
                # the part of our own run that was mmdebstrap itself: the rest is ours
                inner.append(
                    sum(v for k, v in res["durations"].items() if k.endswith("(mmdebstrap)"))
                )
                results["ours"] = res

            def run_verified() -> None:
                t, res = ours(args.suite, ts, proxy.url, work / "verified", verified=True)
                assert res["reproducible"], res.get("differences")
                times["reprobase build (verified: A and B)"].append(t)
                results["verified"] = res

            def run_mm() -> None:
                times["mmdebstrap"].append(
                    plain_mmdebstrap(args.suite, ts, proxy.url, work / "mm.tar")
                )

            def run_dbr() -> None:
                t, results["dtar"] = debuerreotype(args.suite, ts, proxy.url, work, slim=False)
                times["debuerreotype"].append(t)

            tools = [run_verified, run_ours, run_mm, run_dbr]
            for r in range(args.rounds):
                print(f"round {r + 1}/{args.rounds} ...", file=sys.stderr)
                # rotate the order, and flush the page cache's dirty pages before each run,
                # so that no tool always pays for the previous one's writes
                k = r % len(tools)
                for tool in tools[k:] + tools[:k]:
                    os.sync()
                    tool()
            res, dtar = results["ours"], results["dtar"]
            assert isinstance(res, dict) and isinstance(dtar, Path)
            _, slim_res = ours(args.suite, ts, proxy.url, work / "ours-slim", slim=True)
            _, dslim = debuerreotype(args.suite, ts, proxy.url, work, slim=True)
            sizes = {
                "plain": (_plat(res), (dtar.stat().st_size, compressed_size(dtar, work))),
                "slim": (_plat(slim_res), (dslim.stat().st_size, compressed_size(dslim, work))),
            }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report(times, sizes, args.suite, inner)
    verified = results["verified"]
    assert isinstance(verified, dict)
    stages(verified)
    return 0


def stages(res: dict) -> None:
    """Where the time of one verified build went, per build and stage (from its --json)."""
    d = res["durations"]
    print("\n## where the time goes (last verified build, seconds)\n")
    print("| stage | build A | build B |")
    print("|---|---|---|")
    names = sorted({k.split(": ", 1)[1] for k in d if k.startswith("build A amd64: ")})
    for name in names:
        a, b = d.get(f"build A amd64: {name}"), d.get(f"build B amd64: {name}")
        print(f"| {name} | {a if a is not None else '-'} | {b if b is not None else '-'} |")
    spans = [res[k]["span"] for k in ("build_a", "build_b")]
    print(f"\nspans (s since start): A {spans[0]}, B {spans[1]}; whole run {res['seconds']} s")


def _plat(res: dict) -> tuple[int, int]:
    p = res["build_a"]["digests"]["platforms"]["linux/amd64"]
    return p["uncompressed_size"], p["size"]


def report(times: dict[str, list[float]], sizes: dict, suite: str, inner: list[float]) -> None:
    med = {k: statistics.median(v) for k, v in times.items()}
    low = {k: min(v) for k, v in times.items()}
    o, m, d = med["reprobase build --once"], med["mmdebstrap"], med["debuerreotype"]
    print(
        f"\n## build time, {suite} amd64 minbase, warm recorder proxy, "
        f"{len(times['mmdebstrap'])} alternating rounds\n"
    )
    print("| tool | median s | min s | runs | ratio ours/tool (median) |")
    print("|---|---|---|---|---|")
    for k, v in times.items():
        runs = ", ".join(f"{x:.1f}" for x in v)
        print(f"| {k} | {med[k]:.1f} | {low[k]:.1f} | {runs} | {o / med[k]:.2f} |")
    mm_noise = (max(times["mmdebstrap"]) - min(times["mmdebstrap"])) / min(times["mmdebstrap"])
    print(f"\nmmdebstrap alone varies by {mm_noise * 100:.0f}% between identical runs here")
    lo, lm = low["reprobase build --once"], low["mmdebstrap"]
    print(
        f"overhead over plain mmdebstrap, medians: {(o - m) / m * 100:+.1f}%, "
        f"minimums: {(lo - lm) / lm * 100:+.1f}%"
    )
    own = [t - i for t, i in zip(times["reprobase build --once"], inner, strict=True)]
    print(
        f"overhead inside our own runs (total minus our mmdebstrap stage): median "
        f"{statistics.median(own):.2f} s = {statistics.median(own) / m * 100:.1f}% of "
        f"mmdebstrap's median (target < 15%)"
    )
    print(f"against debuerreotype: {d / o:.2f}x faster (target: faster)")
    v = med["reprobase build (verified: A and B)"]
    print(
        f"verified build (A and B at once): {v / m:.2f}x plain mmdebstrap (target <= 1.25), "
        f"{v / d:.2f}x debuerreotype's single unverified build (target <= 0.7), "
        f"{v / o:.2f}x our single build"
    )
    print("\n## image size (bytes; compressed = same pinned gzip for both)\n")
    print(
        "| variant | ours uncompressed | debuerreotype tar | ratio | ours compressed |"
        " debuerreotype compressed | ratio |"
    )
    print("|---|---|---|---|---|---|---|")
    for variant, ((ou, oc), (du, dc)) in sizes.items():
        print(f"| {variant} | {ou} | {du} | {ou / du:.3f} | {oc} | {dc} | {oc / dc:.3f} |")


if __name__ == "__main__":
    sys.exit(main())
