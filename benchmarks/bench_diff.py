"""Benchmark: `reprobase diff` against diffoscope on the same two image tars.

Two OCI archive tars, each one gzip layer of ~170 MB (a synthetic rootfs-like tree of
~12,000 files), that differ in one file. Both tools run in the same run on the same
files; time and peak RSS come from /usr/bin/time (GNU time). diffoscope is capped by
a timeout and reported as ">= timeout" if it hits it.

    .venv/bin/python benchmarks/bench_diff.py [--size-mb 170] [--timeout 420] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from factory.common.runner import clean_env  # noqa: E402
from tests.diff_fixtures import big_layout, layout_to_archive, rootfs_like  # noqa: E402

GNU_TIME = "/usr/bin/time"


@dataclass(frozen=True)
class Result:
    name: str
    seconds: float
    rss_mb: float | None
    exit_code: int | None  # None: killed at the timeout
    note: str = ""


def timed(name: str, argv: list[str], timeout: float, out: Path) -> Result:
    """Run argv under GNU time (argv list, clean env); kill its process group at the timeout."""
    stats = out.with_suffix(".time")
    full = [GNU_TIME, "-f", "%e %M", "-o", str(stats), *argv]
    env = clean_env({"PYTHONPATH": str(ROOT)})
    start = time.monotonic()
    with out.open("wb") as sink:
        proc = subprocess.Popen(full, stdout=sink, stderr=subprocess.STDOUT, env=env,
                                cwd=ROOT, start_new_session=True)  # fmt: skip
        try:
            code: int | None = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return Result(name, time.monotonic() - start, None, None, f">= {timeout:.0f} s timeout")
    seconds, rss_kb = stats.read_text().split()[-2:]
    return Result(name, float(seconds), int(rss_kb) / 1024, code)


def pick_changed(size_mb: int) -> str:
    """A binary file in the middle of the tree."""
    paths = [f.path for f in rootfs_like(size_mb << 20) if f.path.endswith(".so")]
    return paths[len(paths) // 2]


def make_images(tmp: Path, size_mb: int, changed: str) -> tuple[Path, Path, float]:
    start = time.monotonic()
    tars = []
    for name, change in (("a", None), ("b", changed)):
        layout = big_layout(tmp / name, rootfs_like(size_mb << 20, change=change))
        tars.append(layout_to_archive(layout, tmp / f"{name}.tar"))
        shutil.rmtree(layout)
    return tars[0], tars[1], time.monotonic() - start


def fmt_row(r: Result, base: Result) -> str:
    secs = r.note or f"{r.seconds:8.2f} s"
    rss = f"{r.rss_mb:8.0f} MB" if r.rss_mb is not None else "       ? MB"
    ratio = r.seconds / base.seconds
    speed = f">= {ratio:.0f}x" if r.exit_code is None else f"{ratio:.1f}x"
    return f"{r.name:<28} {secs:>18} {rss:>12} {speed:>10}  exit {r.exit_code}"


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--size-mb", type=int, default=170)
    ap.add_argument("--timeout", type=float, default=420)
    ap.add_argument("--keep", type=Path, help="keep the tars and outputs in this directory")
    args = ap.parse_args()
    diffoscope = shutil.which("diffoscope")
    if diffoscope is None:
        print("diffoscope is not installed (apt-get install diffoscope-minimal)", file=sys.stderr)
        return 2
    tmp = args.keep or Path(tempfile.mkdtemp(prefix="bench-diff-"))
    tmp.mkdir(parents=True, exist_ok=True)
    try:
        changed = pick_changed(args.size_mb)
        a, b, gen = make_images(tmp, args.size_mb, changed)
        print(
            f"images: {a.stat().st_size >> 20} MB and {b.stat().st_size >> 20} MB OCI archives "
            f"(layer of ~{args.size_mb} MB uncompressed), made in {gen:.1f} s; "
            f"they differ in /{changed}"
        )
        py = sys.executable
        api = (
            "import sys; from factory.diffing import diff_images, render_summary; "
            "r = diff_images(sys.argv[1], sys.argv[2]); print(render_summary(r)); "
            "sys.exit(0 if r.identical else 1)"
        )
        ours = timed("reprobase diff (CLI)", [py, "-m", "factory.cli", "diff", str(a), str(b)],
                     args.timeout, tmp / "ours.txt")  # fmt: skip
        ours_api = timed("reprobase diff_images (API)", [py, "-c", api, str(a), str(b)],
                         args.timeout, tmp / "ours-api.txt")  # fmt: skip
        sem = timed("reprobase diff --semantic", [py, "-m", "factory.cli", "diff", "--semantic",
                    str(a), str(b)], args.timeout, tmp / "ours-sem.txt")  # fmt: skip
        report = str(tmp / "diffoscope.txt")
        argv = [diffoscope, "--no-progress", "--text", report, str(a), str(b)]
        theirs = timed("diffoscope", argv, args.timeout, tmp / "diffoscope.log")
        print(f"\n{'tool':<28} {'time':>18} {'peak RSS':>12} {'vs ours':>10}")
        for r in (ours, ours_api, sem, theirs):
            print(fmt_row(r, ours))
        lines = (tmp / "ours.txt").read_text().splitlines()
        found = any(changed in line for line in lines[:2])
        print(f"\nours names /{changed} in its summary: {found}")
        print("\n".join("  " + line for line in lines[:2]))
        if theirs.exit_code is not None:
            print(f"diffoscope speed-up: {theirs.seconds / ours.seconds:.1f}x (CLI), "
                  f"{theirs.seconds / ours_api.seconds:.1f}x (API)")  # fmt: skip
        else:
            print(f"diffoscope did not finish within {args.timeout:.0f} s: speed-up >= "
                  f"{args.timeout / ours.seconds:.0f}x")  # fmt: skip
        return 0 if found else 1
    finally:
        if args.keep is None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
