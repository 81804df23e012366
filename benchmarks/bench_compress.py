"""Benchmark: the layer compressors on a real bookworm root filesystem tar.

Ours (libdeflate level 4, through the same Compression.encode the layer writer uses, and
zstd level 3) against what layers used before (ISA-L level 3, whose bytes depend on the
CPU) and the standard library's zlib level 6, on the same tar in the same run, rounds
interleaved. Targets (issue 11): at most 2x ISA-L's time, size within 5% of ISA-L's.

The tar is made by mmdebstrap (bookworm minbase, amd64) through a reprobase cache proxy
recording the machine's Debian mirror; or pass --tar FILE to use another one.

Run as root: .venv/bin/python benchmarks/bench_compress.py [--rounds N] [--tar FILE]
"""

from __future__ import annotations

import argparse
import mmap
import os
import shutil
import statistics
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from pathlib import Path

from isal import igzip, isal_zlib

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_build import plain_mmdebstrap

from factory.image.compress import Compression
from factory.source import proxyctl
from factory.source.aptsources import system_debian_mirror
from factory.source.snapshot import today_utc
from factory.source.upstream import mirror_base

Codec = Callable[[memoryview], bytes]


def _stream(obj_factory: Callable[[], object]) -> Codec:
    def run(data: memoryview) -> bytes:
        c = obj_factory()
        return c.compress(data) + c.flush()  # type: ignore[attr-defined, no-any-return]

    return run


def _ours(comp: Compression) -> Codec:
    return lambda data: b"".join(comp.encode(data))


CODECS: dict[str, Codec] = {
    f"ours: {Compression.GZIP.describe()}": _ours(Compression.GZIP),
    "isal level 3 (before; CPU-dependent)": _stream(
        lambda: isal_zlib.compressobj(3, isal_zlib.DEFLATED, 31)
    ),
    "stdlib zlib level 6": _stream(lambda: zlib.compressobj(6, zlib.DEFLATED, 31)),
    f"ours: {Compression.ZSTD.describe()}": _ours(Compression.ZSTD),
}
BASE = "isal level 3 (before; CPU-dependent)"


def make_tar(work: Path) -> Path:
    ts = today_utc().text
    cache = Path(os.environ.get("REPROBASE_BENCH_CACHE", work / "proxy"))
    cfg = proxyctl.ProxyLaunch(cache, mirror_base(system_debian_mirror()), True, work / "proxy.log")
    tar = work / "bookworm.tar"
    print(f"making a bookworm minbase tar (snapshot {ts}) ...", file=sys.stderr)
    with proxyctl.running(cfg) as proxy:
        plain_mmdebstrap("bookworm", ts, proxy.url, tar)
    return tar


def measure(tar: Path, rounds: int) -> dict[str, tuple[list[float], int]]:
    out: dict[str, tuple[list[float], int]] = {k: ([], 0) for k in CODECS}
    with tar.open("rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        view = memoryview(mm)
        raw = bytes(view[: 1 << 20])
        names = list(CODECS)
        for r in range(rounds):
            print(f"round {r + 1}/{rounds} ...", file=sys.stderr)
            for name in names[r % len(names) :] + names[: r % len(names)]:
                t = time.perf_counter()
                blob = CODECS[name](view)
                took = time.perf_counter() - t
                if "zstd" not in name:  # every gzip stream must give the tar back
                    assert igzip.decompress(blob)[: len(raw)] == raw, name
                out[name][0].append(took)
                out[name] = (out[name][0], len(blob))
                del blob
        view.release()
    return out


def report(res: dict[str, tuple[list[float], int]], tar: Path) -> None:
    base_t = statistics.median(res[BASE][0])
    base_s = res[BASE][1]
    mb = tar.stat().st_size / 1e6
    rounds = len(res[BASE][0])
    print(f"\n## layer compression, bookworm minbase rootfs tar ({mb:.0f} MB), {rounds} rounds\n")
    print("| compressor | median s | min s | MB out | time / isal-3 | size / isal-3 |")
    print("|---|---|---|---|---|---|")
    for name, (times, size) in res.items():
        t = statistics.median(times)
        print(
            f"| {name} | {t:.2f} | {min(times):.2f} | {size / 1e6:.2f} | "
            f"{t / base_t:.2f} | {size / base_s:.3f} |"
        )
    ours = f"ours: {Compression.GZIP.describe()}"
    t_ratio = statistics.median(res[ours][0]) / base_t
    s_ratio = res[ours][1] / base_s
    print(
        f"\ngzip target: time <= 2x isal-3 -> {t_ratio:.2f}x "
        f"({'met' if t_ratio <= 2 else 'MISSED'}); size within 5% of isal-3 -> "
        f"{(s_ratio - 1) * 100:+.1f}% ({'met' if s_ratio <= 1.05 else 'MISSED'}; smaller is better)"
    )


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--tar", type=Path, help="compress this tar instead of making one")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-compress-", dir="/var/tmp"))
    try:
        if args.tar:
            tar = args.tar
        elif os.geteuid() != 0:
            print("error: run as root (mmdebstrap root mode), or pass --tar", file=sys.stderr)
            return 2
        else:
            tar = make_tar(work)
        report(measure(tar, args.rounds), tar)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
