"""Benchmark: a nightly (bookworm + trixie, amd64) with a warm proxy, against the sum
of single builds of the same images in the same run; and what a second night fetches.

Targets: verification and publication add under 20% beyond the second build
(nightly <= 1.2 x two builds per image); the second night fetches only what changed.

Run as root: .venv/bin/python benchmarks/bench_nightly.py
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from factory.source import proxyctl
from factory.source.aptsources import system_debian_mirror
from factory.source.upstream import mirror_base

ROOT = Path(__file__).resolve().parent.parent
IMAGES = ["debian:bookworm", "debian:trixie"]


def cli(*args: str) -> tuple[float, dict]:
    t = time.monotonic()
    p = subprocess.run(
        [sys.executable, "-m", "factory.cli", *args, "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    took = time.monotonic() - t
    if p.returncode not in (0, 1):
        raise SystemExit(f"{args[0]} failed: {p.stderr[-2000:]}")
    return took, json.loads(p.stdout.strip().splitlines()[-1])


def main() -> int:
    if os.geteuid() != 0:
        print("error: run as root", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="bench-nightly-", dir="/var/tmp"))
    cache = Path(os.environ.get("REPROBASE_BENCH_CACHE", work / "proxy"))
    today = dt.datetime.now(dt.UTC).date()
    day1, day2 = today - dt.timedelta(days=1), today
    try:
        cfg = proxyctl.ProxyLaunch(
            cache, mirror_base(system_debian_mirror()), True, work / "proxy.log"
        )
        with proxyctl.running(cfg) as proxy:
            src = ["--proxy", proxy.url, "--upstream", "record"]
            print("warming the proxy ...", file=sys.stderr)

            def once(image: str, day: dt.date, out: str) -> float:
                took, _ = cli(
                    "build",
                    image,
                    "--once",
                    "--arch",
                    "amd64",
                    "--date",
                    day.isoformat(),
                    "--output",
                    str(work / out),
                    *src,
                )
                return took

            # day 2 stays cold: its upstream bytes show what a new night really fetches
            for image in IMAGES:
                once(image, day1, "warm")
            single = {image: once(image, day1, "single") for image in IMAGES}
            conf = work / "nightly.toml"
            conf.write_text(
                "[nightly]\n"
                f"images = {json.dumps(IMAGES)}\n"
                'architectures = ["amd64"]\n'
                f'proxy = "{proxy.url}"\nupstream = "record"\n'
                f'publish = ["oci:{work}/store"]\nreverify = 0\n'
                f'history = "{work}/history.sqlite"\nreport = "{work}/report"\n'
            )
            night1, r1 = cli("nightly", "--config", str(conf), "--date", day1.isoformat())
            night2, r2 = cli("nightly", "--config", str(conf), "--date", day2.isoformat())
    finally:
        shutil.rmtree(work, ignore_errors=True)
    two_builds = 2 * sum(single.values())
    print("\n## nightly (bookworm + trixie, amd64, warm proxy)\n")
    print("| measure | seconds | ratio |")
    print("|---|---|---|")
    for image, t in single.items():
        print(f"| single build {image} | {t:.1f} | |")
    print(f"| 2 x sum of single builds | {two_builds:.1f} | 1.00 |")
    print(
        f"| nightly, night 1 (build x2, verify, publish, history, report) | {night1:.1f} | "
        f"{night1 / two_builds:.2f} |"
    )
    print(f"| nightly, night 2 (no-change re-tag) | {night2:.1f} | {night2 / two_builds:.2f} |")
    over = (night1 - two_builds) / two_builds * 100
    print(f"\nverification + publication beyond the second build: {over:+.1f}% (target < 20%)")
    for name, r in (("night 1", r1), ("night 2", r2)):
        up = sum(x["upstream_bytes"] or 0 for x in r["results"] if x["kind"] == "nightly")
        verdicts = sorted({x["verdict"] for x in r["results"]})
        print(f"upstream bytes, {name}: {up} ({', '.join(verdicts)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
