"""Large layers are compared streaming: peak RSS stays bounded (a correctness property)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.diff_fixtures import big_layout, rootfs_like

SIZE = 200 << 20  # ~200 MB of file contents per layer
CHANGED = "usr/lib/pkg0150/f011.so"
LIMIT_MB = 150


def changed_offset() -> int:
    """Where the fixture's change starts in CHANGED (half its size, unless bytes agree)."""
    for f in rootfs_like(SIZE):
        if f.path == CHANGED:
            new = next(g for g in rootfs_like(SIZE, change=CHANGED) if g.path == CHANGED)
            return next(i for i, (x, y) in enumerate(zip(f.data, new.data, strict=True)) if x != y)
    raise AssertionError(CHANGED)


# VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss across exec, so a child
# forked from a pytest that has grown to 300 MB reports 300 MB whatever it used itself.
CHILD = """
import json, sys
from factory.diffing import diff_images
r = diff_images(sys.argv[1], sys.argv[2])
hwm = next(l for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print(json.dumps({
    "rss_mb": int(hwm.split()[1]) / 1024,
    "rows": [[d.subject, d.field, d.offset] for d in r.differences],
}))
"""


def run_child(a: Path, b: Path) -> dict[str, object]:
    root = Path(__file__).resolve().parent.parent
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(a), str(b)], cwd=root, capture_output=True, check=True
    )
    result: dict[str, object] = json.loads(out.stdout)
    return result


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("big")
    return {
        "a": big_layout(tmp / "a", rootfs_like(SIZE)),
        "b": big_layout(tmp / "b", rootfs_like(SIZE, change=CHANGED)),
        "c": big_layout(tmp / "c", rootfs_like(SIZE, change=CHANGED, shuffled=True)),
    }


@pytest.mark.slow
def test_sorted_layers_bounded_memory(big: dict[str, Path]) -> None:
    result = run_child(big["a"], big["b"])
    assert result["rows"] == [["/" + CHANGED, "content", changed_offset()]]
    assert isinstance(result["rss_mb"], float) and result["rss_mb"] < LIMIT_MB


@pytest.mark.slow
def test_unsorted_layers_bounded_memory(big: dict[str, Path]) -> None:
    """The on-disk index path (entries in another order) is bounded too."""
    result = run_child(big["a"], big["c"])
    offset = changed_offset()
    assert result["rows"] == [["/" + CHANGED, "content", offset], ["tar", "entry order", None]]
    assert isinstance(result["rss_mb"], float) and result["rss_mb"] < LIMIT_MB
