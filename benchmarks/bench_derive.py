"""Benchmark: a verified derived build (`reprobase build -f`, two builds compared) against
one plain `buildah bud` of the same Containerfile (no verification), in the same run.

Both build FROM the same reprobase bookworm-slim (amd64, built once here) through one
warm reprobase cache proxy in recorder mode over the machine's configured Debian mirror,
with chroot isolation and a fresh private buildah store per build (the store's driver is
the one reprobase picks, overlay where the kernel has it). Rounds alternate the tools so
that machine noise hits all of them. Target: verified <= 1.3 x plain.

Run as root: .venv/bin/python benchmarks/bench_derive.py [--rounds N]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from factory.derive.buildah import storage_driver
from factory.source import proxyctl
from factory.source.aptsources import system_debian_mirror
from factory.source.snapshot import today_utc
from factory.source.upstream import mirror_base

ROOT = Path(__file__).resolve().parent.parent
CONTAINERFILES = {
    # as the tests write it: apt's lists and caches stay in buildah's layer (167 MB raw)
    "apt, lists kept": """\
FROM oci:{base}:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends hello
RUN useradd -m app
COPY hello.txt /app/hello.txt
USER app
CMD ["hello"]
""",
    # as Docker's best practices write it: the lists removed in the same step
    "apt, lists removed": """\
FROM oci:{base}:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends hello \\
    && rm -rf /var/lib/apt/lists/*
RUN useradd -m app
COPY hello.txt /app/hello.txt
USER app
CMD ["hello"]
""",
}


def timed(argv: list[str], env: dict[str, str] | None = None) -> float:
    t = time.monotonic()
    subprocess.run(argv, check=True, env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)  # fmt: skip
    return time.monotonic() - t


def cli(*argv: str) -> list[str]:
    return [sys.executable, "-m", "factory.cli", *argv]


def plain_bud(work: Path, base: Path, ctx: Path, proxy: str, sde: str) -> float:
    store = Path(tempfile.mkdtemp(prefix="bench-bud-", dir=work))
    argv = ["buildah", "--root", str(store / "s"), "--runroot", str(store / "r"),
            "--storage-driver", storage_driver(), "bud", "--isolation", "chroot",
            "--layers=false", "--from", f"oci:{base}:bookworm-slim",
            "--build-arg", f"SOURCE_DATE_EPOCH={sde}", "-f", str(ctx / "Containerfile"),
            "-t", "localhost/bench:plain", str(ctx)]  # fmt: skip
    env = {**os.environ, "http_proxy": proxy}
    try:
        return timed(argv, env)
    finally:
        shutil.rmtree(store, ignore_errors=True)


def ours(work: Path, ctx: Path, proxy: str, once: bool) -> float:
    out = work / f"out-{'once' if once else 'verified'}"
    shutil.rmtree(out, ignore_errors=True)
    argv = cli("build", "-f", str(ctx / "Containerfile"), "--tag", "bench:1", "--proxy", proxy,
               "--upstream", "record", "--output", str(out))  # fmt: skip
    if once:
        argv.append("--once")
    return timed(argv)


def rounds(
    work: Path, base: Path, ctx: Path, proxy: str, sde: str, n: int
) -> dict[str, list[float]]:
    """n rounds, the tools alternating, so that machine noise hits all of them."""
    times: dict[str, list[float]] = {"buildah bud (plain)": [], "reprobase --once": [],
                                     "reprobase verified (A+B)": []}  # fmt: skip
    for _ in range(n):
        times["buildah bud (plain)"].append(plain_bud(work, base, ctx, proxy, sde))
        times["reprobase --once"].append(ours(work, ctx, proxy, once=True))
        times["reprobase verified (A+B)"].append(ours(work, ctx, proxy, once=False))
    return times


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    if os.geteuid() != 0 or shutil.which("buildah") is None:
        print("needs root and buildah", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="bench-derive-", dir="/var/tmp"))
    ts = today_utc()
    results: dict[str, dict[str, list[float]]] = {}
    try:
        cfg = proxyctl.ProxyLaunch(work / "proxy", mirror_base(system_debian_mirror()), True,
                                   work / "proxy.log")  # fmt: skip
        with proxyctl.running(cfg) as proxy:
            base = work / "base"
            subprocess.run(
                cli("build", "debian:bookworm-slim", "--once", "--arch", "amd64", "--snapshot",
                    ts.text, "--proxy", proxy.url, "--upstream", "record", "--output", str(base)),
                check=True, cwd=ROOT, stdout=subprocess.DEVNULL,
            )  # fmt: skip
            for variant, text in CONTAINERFILES.items():
                ctx = work / f"ctx-{len(results)}"
                ctx.mkdir()
                (ctx / "hello.txt").write_text("hello\n")
                (ctx / "Containerfile").write_text(text.format(base=base))
                ours(work, ctx, proxy.url, once=True)  # warm the proxy with the steps' packages
                results[variant] = rounds(work, base, ctx, proxy.url, str(ts.epoch), args.rounds)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"derived build, {args.rounds} rounds, median seconds (storage: {storage_driver()})")
    met = True
    for variant, times in results.items():
        ref = statistics.median(times["buildah bud (plain)"])
        print(f"\n{variant}\n")
        print(f"| {'tool':<26} | {'seconds':>8} | {'ratio':>6} |")
        print(f"|{'-' * 28}|{'-' * 10}|{'-' * 8}|")
        for name, ts_ in times.items():
            m = statistics.median(ts_)
            print(f"| {name:<26} | {m:8.1f} | {m / ref:5.2f}x |")
        met = met and statistics.median(times["reprobase verified (A+B)"]) / ref <= 1.3
    print(f"\ntarget: verified <= 1.30x plain buildah bud: {'met' if met else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
