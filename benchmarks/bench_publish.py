"""Push throughput: reprobase's client against `skopeo copy`, same layout, same registry.

    .venv/bin/python benchmarks/bench_publish.py [--mb 150] [--runs 5]

Starts docker-registry on 127.0.0.1 (temporary storage), writes a synthetic multi-arch
layout of about --mb megabytes of gzip'd random layers, then alternates pushes of
that layout into fresh repositories by both tools (skopeo with --all so that both
push every platform), checks that both land on the same digest, and pushes once more
into an existing repository to count the blobs a no-change push uploads (should be 0).
Prints a table; bounded by --runs and the layout size.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from factory.common import runner
from factory.common.canonical import sha256_digest
from factory.registry import push_layout_sync
from tests.registry_fixtures import (
    Registry,
    make_layout,
    skopeo_raw,
    start_registry,
    unique_repo,
)


def _layout_size(layout: Path) -> int:
    return sum(p.stat().st_size for p in (layout / "blobs" / "sha256").iterdir())


def _push(tool: str, layout: Path, reg: Registry, digest: str) -> float:
    ref = reg.ref(unique_repo(), "t")
    t = time.perf_counter()
    if tool == "reprobase":
        res = push_layout_sync(layout, [ref])
        assert res.skipped_blobs == 0 and res.mounted_blobs == 0
    else:
        argv = ["skopeo", "copy", "--all", "--dest-tls-verify=false", "--quiet"]
        runner.run([*argv, f"oci:{layout}", f"docker://{ref}"])
    secs = time.perf_counter() - t
    assert sha256_digest(skopeo_raw(ref)) == digest, f"{tool} changed the digest"
    return secs


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--mb", type=int, default=150, help="approximate layout size in MB")
    ap.add_argument("--runs", type=int, default=5, help="pushes per tool")
    opts = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-publish-") as tmp:
        root = Path(tmp)
        per_platform = opts.mb * 1_000_000 // 2
        sizes = [per_platform * f // 100 for f in (45, 30, 15, 7, 3)]
        t0 = time.perf_counter()
        top = make_layout(root / "layout", layer_sizes=sizes, seed=42)
        size = _layout_size(root / "layout")
        made = time.perf_counter() - t0
        print(
            f"layout: {size / 1e6:.1f} MB, 2 platforms x {len(sizes)} layers, made in {made:.1f} s"
        )
        # A fresh registry (storage and port) for every push: skopeo's blob-info cache
        # would otherwise mount blobs from its earlier pushes instead of uploading them.
        rows: list[tuple[str, int, float]] = []
        for run in range(1, opts.runs + 1):
            for tool in ("reprobase", "skopeo copy") if run % 2 else ("skopeo copy", "reprobase"):
                reg = start_registry(root / f"registry-{tool[:6]}-{run}")
                try:
                    rows.append((tool, run, _push(tool, root / "layout", reg, top.digest)))
                finally:
                    reg.stop()
        reg = start_registry(root / "registry-second")
        try:
            ref = reg.ref(unique_repo("again"), "t")
            push_layout_sync(root / "layout", [ref])
            t = time.perf_counter()
            again = push_layout_sync(root / "layout", [ref])
            second = time.perf_counter() - t
        finally:
            reg.stop()
    print(f"\n{'tool':<12} {'run':>3} {'seconds':>8} {'MB/s':>8}")
    for tool, run, secs in rows:
        print(f"{tool:<12} {run:>3} {secs:>8.2f} {size / 1e6 / secs:>8.1f}")
    med = {
        tool: statistics.median(s for t, _, s in rows if t == tool)
        for tool in ("reprobase", "skopeo copy")
    }
    ours, theirs = (size / 1e6 / med[t] for t in ("reprobase", "skopeo copy"))
    print(f"\nmedian: reprobase {ours:.1f} MB/s, skopeo {theirs:.1f} MB/s")
    print(f"throughput ratio reprobase/skopeo: {ours / theirs:.2f} (>= 1.0 means no slower)")
    print(
        f"second push of the unchanged image: {again.uploaded_blobs} blobs uploaded, "
        f"{again.skipped_blobs} skipped, {second:.2f} s"
    )
    return 0 if again.uploaded_blobs == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
