"""Real builds of debian:bookworm (amd64) with mmdebstrap, through the recorded mirror."""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

import pytest

from factory.recipes.recipe import load_recipe
from tests.build_fixtures import TEST_SNAPSHOT, BuildRun, run_build

pytestmark = [pytest.mark.root, pytest.mark.network, pytest.mark.slow]


def _layer_path(run: BuildRun) -> Path:
    digest = run.result["build_a"]["digests"]["platforms"]["linux/amd64"]["layer"]
    return run.output / "blobs" / "sha256" / digest.split(":")[1]


def test_double_build_is_reproducible(bookworm_build: BuildRun) -> None:
    r = bookworm_build.result
    assert r["verified"] is True and r["reproducible"] is True
    assert r["differences"] == []
    assert r["build_a"]["digests"] == r["build_b"]["digests"]
    assert r["index_digest"] == r["build_a"]["digests"]["index"]
    ea, eb = r["build_a"]["env"], r["build_b"]["env"]
    for key in ("hostname", "TZ", "LANG", "umask", "workdir"):
        assert ea[key] != eb[key], key
    assert eb["clock_offset_days"] == "1"
    # A and B ran at the same time: the proxy's counter is known for the pair only
    assert r["build_a"]["upstream_bytes"] is None and r["build_b"]["upstream_bytes"] is None
    assert isinstance(r["upstream_bytes_pair"], int)
    index = json.loads((bookworm_build.output / "index.json").read_text())
    assert [m["digest"] for m in index["manifests"]] == [r["index_digest"]]
    for blob in (bookworm_build.output / "blobs" / "sha256").iterdir():
        assert hashlib.sha256(blob.read_bytes()).hexdigest() == blob.name


def test_skopeo_reads_the_layout(bookworm_build: BuildRun) -> None:
    ref = f"oci:{bookworm_build.output}:bookworm"
    raw = subprocess.run(["skopeo", "inspect", "--raw", ref], capture_output=True, check=True)
    assert (
        "sha256:" + hashlib.sha256(raw.stdout).hexdigest() == bookworm_build.result["index_digest"]
    )
    info = json.loads(
        subprocess.run(["skopeo", "inspect", ref], capture_output=True, check=True).stdout
    )
    assert info["Architecture"] == "amd64" and info["Os"] == "linux"
    assert (
        info["Created"]
        == f"{TEST_SNAPSHOT[:4]}-{TEST_SNAPSHOT[4:6]}-{TEST_SNAPSHOT[6:8]}T00:00:00Z"
    )
    labels = info["Labels"]
    assert labels["org.reprobase.snapshot"] == TEST_SNAPSHOT
    assert labels["org.reprobase.packages-from"] == "recorded-mirror"
    assert labels["org.reprobase.recipe.digest"] == load_recipe("debian:bookworm").digest()
    assert labels["org.reprobase.rebuild"].startswith(
        f"reprobase build debian:bookworm --snapshot {TEST_SNAPSHOT} --arch amd64"
    )


def test_rootfs_runs_apt_under_chroot(bookworm_build: BuildRun, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    subprocess.run(
        ["umoci", "unpack", "--image", f"{bookworm_build.output}:bookworm", str(bundle)],
        check=True, capture_output=True,
    )  # fmt: skip
    out = subprocess.run(
        ["chroot", str(bundle / "rootfs"), "/bin/sh", "-c", "apt-get --version"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert out.stdout.startswith("apt 2.")
    sources = (bundle / "rootfs/etc/apt/sources.list.d/debian.sources").read_text()
    assert f"URIs: http://snapshot.debian.org/archive/debian/{TEST_SNAPSHOT}\n" in sources
    assert not (bundle / "rootfs/etc/apt/sources.list").exists()


def _scan(path: Path, needles: list[bytes]) -> set[bytes]:
    """Stream the decompressed layer and report which needles occur anywhere in it."""
    found: set[bytes] = set()
    keep = max(len(n) for n in needles)
    tail = b""
    with gzip.open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            buf = tail + chunk
            found |= {n for n in needles if n in buf}
            tail = buf[-keep:]
    return found


def test_no_host_state_in_the_layer(bookworm_build: BuildRun) -> None:
    port = bookworm_build.proxy_url.rstrip("/").rsplit(":", 1)[1]
    needles = [
        bookworm_build.hostname.encode(),  # the build host's name
        f"127.0.0.1:{port}".encode(),  # the proxy's address
        b"/var/tmp/reprobase-",  # the build directory
        b"reprobase-verify-b",  # build B's host name
        b"Acquire::http::Proxy",
    ]
    assert _scan(_layer_path(bookworm_build), needles) == set()
    with tarfile.open(_layer_path(bookworm_build), "r:gz") as tf:
        members = {m.name: m for m in tf.getmembers()}
        hostname = tf.extractfile(members["etc/hostname"])
        assert hostname is not None and hostname.read() == b"localhost\n"
        assert members["etc/resolv.conf"].size == 0
    assert not [m for m in members.values() if m.ischr() or m.isblk()]
    # apt's empty lock files may stay; logs and index files named after the mirror may not
    leftovers = [
        n
        for n, m in members.items()
        if n.startswith(("var/log/apt/", "var/lib/apt/lists/")) and m.size > 0
    ]
    assert leftovers == []
    epoch = bookworm_build.result["source_date_epoch"]
    assert max(m.mtime for m in members.values()) <= epoch


def test_mismatch_is_refused_and_explained(recorded_mirror, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    recipe = tmp_path / "nondeterministic.toml"
    recipe.write_text(
        'name = "test"\ntag = "nondeterministic"\nsuite = "bookworm"\n'
        'architectures = ["amd64"]\n'
        # the wall clock at build time: the classic reproducibility bug
        'customize = ["date +%s%N > /etc/build-stamp"]\n'
    )
    out = tmp_path / "layout"
    run = run_build(str(recipe), out, recorded_mirror)
    assert run.returncode == 1, run.stderr[-2000:]
    r = run.result
    assert r["reproducible"] is False and r["output"] is None
    assert any(d.startswith("linux/amd64 layer:") for d in r["differences"])
    assert r["build_a"]["digests"]["index"] != r["build_b"]["digests"]["index"]
    assert "NOT REPRODUCIBLE" in run.stdout
    assert "etc/build-stamp" in run.stdout  # the diff report names the differing file
    assert not out.exists()  # nothing published
    report = json.loads((tmp_path / "layout.mismatch" / "report.json").read_text())
    assert "etc/build-stamp" in json.dumps(report["diff"])


def test_podman_loads_the_layout(bookworm_build: BuildRun, tmp_path: Path) -> None:
    # podman refuses a runroot path longer than 50 characters: pytest's are longer
    run = Path(tempfile.mkdtemp(prefix="rb-podman-", dir="/tmp"))
    store = ["podman", "--root", str(tmp_path / "root"), "--runroot", str(run),
             "--storage-driver", "vfs"]  # fmt: skip
    out = subprocess.run(
        [*store, "load", "-i", str(bookworm_build.output)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert "Loaded image" in out.stdout
    ids = subprocess.run(
        [*store, "images", "--no-trunc", "--format", "{{.ID}}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    config = bookworm_build.result["build_a"]["digests"]["platforms"]["linux/amd64"]["config"]
    assert [i.removeprefix("sha256:") for i in ids] == [config.removeprefix("sha256:")]
    shutil.rmtree(run, ignore_errors=True)
