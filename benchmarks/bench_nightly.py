"""Benchmark: a nightly of the four amd64 images with a warm proxy, against the sum of
eight single builds (two per image) in the same run, with --jobs 1 and the default
(one build per core); its peak memory; and what a second night fetches.

Targets (issue 15): the nightly <= 0.6 x the eight single builds; the second night
fetches only what changed.

Run as root: .venv/bin/python benchmarks/bench_nightly.py
"""

from __future__ import annotations

import contextlib
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
IMAGES = ["debian:bookworm", "debian:bookworm-slim", "debian:trixie", "debian:trixie-slim"]


PEAK: list[int] = []  # peak PSS of each cli() run's process tree (bytes), in order


def _memfd_bytes(pid: int, seen: set[tuple[int, int]]) -> int:
    """Bytes in the in-memory files (memfd) a process holds open and does not map: the
    rootfs tars mmdebstrap writes to us are RAM that PSS does not show."""
    total = 0
    try:
        fds = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:  # the process has ended meanwhile
        return 0
    for fd in fds:
        try:
            if not os.readlink(fd).startswith("/memfd:"):
                continue
            st = fd.stat()
        except OSError:
            continue
        if (st.st_dev, st.st_ino) not in seen:
            seen.add((st.st_dev, st.st_ino))
            total += st.st_size
    return total


def _tree_pss(pid: int) -> int:
    """Proportional set size summed over a process and its descendants (shared pages
    counted once), from /proc, plus the memfd files they hold (counted once)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue
    total, todo = 0, [pid]
    memfds: set[tuple[int, int]] = set()
    while todo:
        p = todo.pop()
        todo.extend(children.get(p, ()))
        total += _memfd_bytes(p, memfds)
        try:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total


def cli(*args: str) -> tuple[float, dict]:
    t = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "factory.cli", *args, "--json"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    peak = 0
    while proc.poll() is None:
        peak = max(peak, _tree_pss(proc.pid))
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=0.5)  # the sampling period, not a wait for a server
    out, err = proc.communicate()
    PEAK.append(peak)
    took = time.monotonic() - t
    p = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
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
            conf1 = work / "nightly-jobs1.toml"
            conf1.write_text(
                conf.read_text()
                .replace(f"{work}/store", f"{work}/store1")
                .replace(f"{work}/history", f"{work}/history1")
                .replace(f"{work}/report", f"{work}/report1")
            )
            solo, r_solo = cli(
                "nightly", "--config", str(conf1), "--date", day1.isoformat(), "--jobs", "1"
            )
            peak_solo = PEAK[-1]
            night1, r1 = cli("nightly", "--config", str(conf), "--date", day1.isoformat())
            peak_night1 = PEAK[-1]
            night2, r2 = cli("nightly", "--config", str(conf), "--date", day2.isoformat())
    finally:
        shutil.rmtree(work, ignore_errors=True)
    eight = 2 * sum(single.values())
    jobs = r1.get("jobs")
    print(
        f"\n## nightly ({len(IMAGES)} images, amd64, warm proxy; load {os.getloadavg()[0]:.1f})\n"
    )
    print("| measure | seconds | ratio to 8 single builds | peak memory (PSS + memfd) |")
    print("|---|---|---|---|")
    for image, t in single.items():
        print(f"| single build {image} | {t:.1f} | | |")
    print(f"| 8 single builds (2 x sum) | {eight:.1f} | 1.00 | |")
    print(
        f"| nightly --jobs 1, night 1 | {solo:.1f} | {solo / eight:.2f} | "
        f"{peak_solo / (1 << 20):.0f} MiB |"
    )
    print(
        f"| nightly --jobs {jobs} (default), night 1 | {night1:.1f} | {night1 / eight:.2f} | "
        f"{peak_night1 / (1 << 20):.0f} MiB ({r1.get('peak_builds')} builds at once) |"
    )
    print(f"| nightly, night 2 (no-change re-tag) | {night2:.1f} | {night2 / eight:.2f} | |")
    same = sorted(x["index_digest"] for x in r_solo["results"]) == sorted(
        x["index_digest"] for x in r1["results"] if x["kind"] == "nightly"
    )
    print(f"\n--jobs 1 and --jobs {jobs} published the same digests: {same}; target <= 0.60")
    for name, r in (("night 1", r1), ("night 2", r2)):
        up = sum(x["upstream_bytes"] or 0 for x in r["results"] if x["kind"] == "nightly")
        verdicts = sorted({x["verdict"] for x in r["results"]})
        print(f"upstream bytes, {name}: {up} ({', '.join(verdicts)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
