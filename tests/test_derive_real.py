"""Derived images for real: buildah runs a Containerfile FROM a reprobase bookworm-slim
(built once for the module through the recorded mirror), twice, B varied with the clock a
day ahead; the result runs under podman, reproduces from a local registry, and a
tampered context or a `date` step is reported as differing, naming the file."""

from __future__ import annotations

import base64
import gzip
import io
import json
import os
import random
import shutil
import subprocess
import sys
import tarfile
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from factory.source import proxyctl
from tests.build_fixtures import TEST_SNAPSHOT, recorded_mirror, slim_once  # noqa: F401
from tests.registry_fixtures import Registry, registry  # noqa: F401

ROOT = Path(__file__).resolve().parent.parent
pytestmark = [
    pytest.mark.slow,
    pytest.mark.root,
    pytest.mark.network,
    pytest.mark.skipif(shutil.which("buildah") is None, reason="needs buildah"),
]
APP = """\
FROM {base}
RUN apt-get update && apt-get install -y --no-install-recommends hello
RUN useradd -m app
COPY hello.txt /app/hello.txt
COPY bin/ /app/bin/
ENV GREETING=hi
USER app
CMD ["hello"]
"""
DATE = "FROM {base}\nRUN date > /stamp\n"


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    result: dict[str, Any]
    hostname: str


def reprobase(*argv: str, hostname: str | None = None, env: dict[str, str] | None = None) -> Run:
    """The CLI as a user runs it, under a distinctive host name (to search the image for)."""
    hostname = hostname or f"leakcheck-{uuid.uuid4().hex[:12]}"
    cmd = ["unshare", "--uts", "--", sys.executable, "-m", "factory.rootfs.varyenv",
           "--hostname", hostname, "--", sys.executable, "-m", "factory.cli", *argv]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=False, timeout=900,
                          env={**os.environ, **(env or {})})  # fmt: skip
    last = proc.stdout.strip().splitlines()[-1:] or [""]
    result = json.loads(last[0]) if last[0].startswith("{") else {}
    return Run(proc.returncode, proc.stdout, proc.stderr, result, hostname)


@dataclass
class Fixture:
    base_layout: Path
    base_ref: str  # in the local registry, by tag
    proxy: str
    work: Path
    registry: Registry


@pytest.fixture(scope="module")
def env(
    recorded_mirror: proxyctl.ProxyHandle,  # noqa: F811
    registry: Registry,  # noqa: F811
    slim_once: Path,  # noqa: F811
    tmp_path_factory: pytest.TempPathFactory,
) -> Fixture:
    work = tmp_path_factory.mktemp("derive")
    base = slim_once
    ref = registry.ref("debian", "bookworm-slim")
    pub = subprocess.run([sys.executable, "-m", "factory.cli", "publish", str(base), ref],
                         capture_output=True, text=True, cwd=ROOT, check=False)  # fmt: skip
    assert pub.returncode == 0, pub.stderr
    return Fixture(base, ref, recorded_mirror.url, work, registry)


def app_context(where: Path, greeting: str = "hello from the context\n") -> Path:
    (where / "bin").mkdir(parents=True)
    (where / "hello.txt").write_text(greeting)
    (where / "bin" / "run.sh").write_text("#!/bin/sh\nexec hello\n")
    (where / "bin" / "run.sh").chmod(0o700)
    return where


def build(
    fx: Fixture, text: str, name: str, *extra: str, tag: str = "", storage: str = ""
) -> tuple[Run, Path]:
    ctx = app_context(fx.work / f"ctx-{name}")
    (ctx / "Containerfile").write_text(text.format(base=fx.base_ref))
    out = fx.work / f"out-{name}"
    run = reprobase("build", "-f", str(ctx / "Containerfile"), "--tag", tag or f"{name}:1",
                    "--proxy", fx.proxy, "--upstream", "record", "--output", str(out),
                    "--json", *extra,
                    env={"REPROBASE_BUILDAH_STORAGE": storage} if storage else None)  # fmt: skip
    return run, out


@pytest.fixture(scope="module")
def app(env: Fixture) -> tuple[Run, Path]:
    run, out = build(env, APP, "myapp", "--push", env.registry.ref("myapp", "1"))
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return run, out


def blobs(layout: Path) -> dict[str, bytes]:
    """Every blob of the layout, layers uncompressed."""
    out = {}
    for p in sorted((layout / "blobs" / "sha256").iterdir()):
        data = p.read_bytes()
        out[p.name] = gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
    return out


def read(layout: Path, digest: str) -> dict[str, Any]:
    obj = json.loads((layout / "blobs" / "sha256" / digest.split(":", 1)[1]).read_bytes())
    assert isinstance(obj, dict)
    return obj


def top(layout: Path) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    entry = json.loads((layout / "index.json").read_bytes())["manifests"][0]
    idx = read(layout, entry["digest"])
    man = read(layout, idx["manifests"][0]["digest"])
    return idx, man, read(layout, man["config"]["digest"])


def test_the_app_double_builds_identical_on_the_unchanged_base(
    env: Fixture, app: tuple[Run, Path]
) -> None:
    run, out = app
    r = run.result
    assert r["reproducible"] is True and r["verified"] is True
    assert r["build_b"]["env"]["clock_offset_days"] == "1"
    assert r["build_b"]["env"]["hostname"] != r["build_a"]["env"]["hostname"]
    assert r["build_a"]["digests"] == r["build_b"]["digests"]
    idx, man, cfg = top(out)
    bidx, bman, bcfg = top(env.base_layout)
    # the base's layer, byte for byte; one new layer of ours on top
    assert len(man["layers"]) == 2 and man["layers"][0] == bman["layers"][0]
    assert cfg["rootfs"]["diff_ids"][0] == bcfg["rootfs"]["diff_ids"][0]
    assert cfg["history"][0] == bcfg["history"][0] and len(cfg["history"]) == 2
    ann = idx["annotations"]
    assert ann["org.opencontainers.image.base.digest"] == r["base_digest"]
    base_index = json.loads((env.base_layout / "index.json").read_bytes())["manifests"][0]
    assert r["base_digest"] == base_index["digest"]  # the tag, resolved once to a digest
    assert ann["org.reprobase.derived.containerfile"] == APP.format(base=env.base_ref)
    assert (
        ann["org.reprobase.source-date-epoch"]
        == bidx["annotations"]["org.reprobase.source-date-epoch"]
    )
    assert cfg["created"] == bcfg["created"]  # SOURCE_DATE_EPOCH, not the build's clock
    assert cfg["config"]["User"] == "app" and "GREETING=hi" in cfg["config"]["Env"]
    assert not any("proxy" in e.lower() for e in cfg["config"]["Env"])
    assert r["pushed"][0]["digest"] == r["index_digest"]


def test_the_image_holds_neither_the_proxy_nor_the_host_name(
    env: Fixture, app: tuple[Run, Path]
) -> None:
    run, out = app
    hostport = env.proxy.removeprefix("http://").rstrip("/").encode()
    found = blobs(out)
    assert len(found) == 5  # index, manifest, config, the base's layer, ours
    for name, data in found.items():
        assert hostport not in data, name
        assert run.hostname.encode() not in data, name
        assert b"reprobase-verify-b" not in data, name


def test_shadow_follows_source_date_epoch(app: tuple[Run, Path]) -> None:
    run, out = app
    _idx, man, _cfg = top(out)
    layer = (out / "blobs" / "sha256" / man["layers"][-1]["digest"].split(":", 1)[1]).read_bytes()
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(layer))) as tf:
        shadow = tf.extractfile("etc/shadow").read().decode()  # type: ignore[union-attr]
        names = tf.getnames()
        mode = tf.getmember("app/bin/run.sh").mode
    day = run.result["source_date_epoch"] // 86400
    assert f"app:!:{day}:" in shadow
    assert "app/hello.txt" in names and "usr/bin/hello" in names and mode == 0o755
    assert not [n for n in names if n.startswith(("var/log/apt/", "var/lib/apt/lists/x"))]
    assert "var/log/dpkg.log" not in names and "etc/hosts" not in names


def test_it_runs_under_podman(app: tuple[Run, Path], tmp_path: Path) -> None:
    if shutil.which("podman") is None or shutil.which("runc") is None:
        pytest.skip("needs podman and runc")
    _run, out = app
    conf = tmp_path / "containers.conf"
    conf.write_text("[containers]\ndefault_ulimits = []\n")
    runroot = Path(tempfile.mkdtemp(prefix="rb-podman-"))
    pod = ["podman", "--root", str(tmp_path / "root"), "--runroot", str(runroot),
           "--storage-driver", "vfs", "--runtime", "runc"]  # fmt: skip
    try:
        proc = subprocess.run(
            [*pod, "run", "--rm", "--network", "none", f"oci:{out}:1",
             "sh", "-c", "hello && cat /app/hello.txt && id -un && /app/bin/run.sh"],
            capture_output=True, text=True, check=False, timeout=300,
            env={"CONTAINERS_CONF": str(conf), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
        )  # fmt: skip
    finally:
        shutil.rmtree(runroot, ignore_errors=True)
        shutil.rmtree(tmp_path / "root", ignore_errors=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n")[:4] == [
        "Hello, world!", "hello from the context", "app", "Hello, world!"
    ]  # fmt: skip


@pytest.mark.skipif(
    "overlay" not in Path("/proc/filesystems").read_text(), reason="no overlay in this kernel"
)
def test_buildahs_storage_driver_changes_no_byte(env: Fixture, app: tuple[Run, Path]) -> None:
    """overlay lists copied-up files and moved directories that vfs does not: the layer
    is what changed on the base either way (factory/derive/changes.py). The app was built
    on overlay (the default where the kernel has it); this build uses vfs."""
    from factory.derive.buildah import storage_driver

    assert storage_driver() == "overlay"
    run, _out = app
    other, _ = build(env, APP, "vfs", "--once", tag="myapp:1", storage="vfs")
    assert other.returncode == 0, other.stdout[-2000:] + other.stderr[-2000:]
    assert other.result["index_digest"] == run.result["index_digest"]


def test_a_date_step_differs_naming_the_file_and_nothing_is_written(env: Fixture) -> None:
    target = env.registry.ref("datey", "1")
    run, out = build(env, DATE, "datey", "--push", target)
    assert run.returncode == 1, run.stderr[-2000:]
    assert run.result["reproducible"] is False and run.result["output"] is None
    assert "/stamp" in run.stdout and "NOT REPRODUCIBLE" in run.stdout
    assert "/stamp" in json.dumps(run.result["diff"])
    assert not out.exists() and "pushed" not in run.result
    status, _ = proxyctl.fetch(f"http://{env.registry.host}/v2/datey/manifests/1")
    assert status == 404


def test_reproduce_from_the_registry_says_identical(env: Fixture, app: tuple[Run, Path]) -> None:
    run, _out = app
    ref = env.registry.ref("myapp", "1")
    got = reprobase("reproduce", ref, "--proxy", env.proxy, "--upstream", "record", "--json")
    assert got.returncode == 0, got.stderr[-3000:]
    assert got.result["reproduced"] is True and got.result["kind"] == "derived"
    assert got.result["rebuilt_digest"] == run.result["index_digest"]
    assert "reproduced: identical" in got.stdout


def test_a_tampered_context_says_differs(env: Fixture, app: tuple[Run, Path]) -> None:
    _run, out = app
    tampered = env.work / "tampered"
    shutil.copytree(out, tampered)
    tamper_context(tampered)
    got = reprobase("reproduce", str(tampered), "--proxy", env.proxy, "--upstream", "record",
                    "--json")  # fmt: skip
    assert got.returncode == 1, got.stderr[-3000:]
    assert got.result["reproduced"] is False and "differs" in got.stdout
    assert "/app/hello.txt" in got.result["diff_summary"]


def test_a_large_context_travels_as_a_referrer_and_reproduces(env: Fixture) -> None:
    """Above the embedding limit the context is not in the image: --push attaches it as an
    OCI referrer, and reproduce from the registry fetches it by its recorded digest."""
    ctx = env.work / "ctx-big"
    ctx.mkdir()
    (ctx / "blob.bin").write_bytes(random.Random(17).randbytes(96 * 1024))
    (ctx / "Containerfile").write_text(f"FROM {env.base_ref}\nCOPY blob.bin /blob.bin\n")
    ref = env.registry.ref("big", "1")
    run = reprobase("build", "-f", str(ctx / "Containerfile"), "--tag", "big:1",
                    "--proxy", env.proxy, "--upstream", "record",
                    "--output", str(env.work / "out-big"), "--push", ref, "--json")  # fmt: skip
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert run.result["context_embedded"] is False
    idx, _man, _cfg = top(env.work / "out-big")
    assert "org.reprobase.derived.context" not in idx["annotations"]
    got = reprobase("reproduce", ref, "--proxy", env.proxy, "--upstream", "record", "--json")
    assert got.returncode == 0, got.stdout[-2000:] + got.stderr[-2000:]
    assert got.result["rebuilt_digest"] == run.result["index_digest"]


def tamper_context(layout: Path) -> None:
    """Change one file of the embedded context (its digest updated to match): what the
    image says it was built from is no longer what its layer holds."""
    from factory.common.canonical import canonical_json, sha256_digest
    from factory.derive.context import Context, pack, unpack

    index_file = layout / "index.json"
    outer = json.loads(index_file.read_bytes())
    idx = read(layout, outer["manifests"][0]["digest"])
    ann = idx["annotations"]
    ctx = Context.from_embedded(ann["org.reprobase.derived.context"],
                                ann["org.reprobase.derived.context.digest"])  # fmt: skip
    tmp = Path(tempfile.mkdtemp()) / "c"
    unpack(ctx, tmp, 0)
    (tmp / "hello.txt").write_text("tampered\n")
    new = pack(tmp)
    shutil.rmtree(tmp.parent)
    ann["org.reprobase.derived.context"] = new.embedded()
    ann["org.reprobase.derived.context.digest"] = new.digest
    data = canonical_json(idx)
    digest = sha256_digest(data)
    (layout / "blobs" / "sha256" / digest.split(":", 1)[1]).write_bytes(data)
    outer["manifests"][0].update({"digest": digest, "size": len(data)})
    index_file.write_bytes(canonical_json(outer))
    assert base64.b64decode(ann["org.reprobase.derived.context"])


@pytest.fixture(autouse=True)
def _no_leftovers() -> Iterator[None]:
    before = {p.name for p in Path("/var/tmp").glob("reprobase-derive-*")}
    yield
    after = {p.name for p in Path("/var/tmp").glob("reprobase-derive-*")}
    assert after <= before, f"left behind: {sorted(after - before)}"
