"""The same bytes on any machine: goldens checked on this CPU, other CPU models, arm64, trixie.

tests/hostprobe.py computes every digest of the byte path (tar, both compressors, canonical
JSON, a whole two-architecture image) from fixed inputs; tests/golden/byte-path.json holds
what it must print. A golden made on one CPU proves nothing about another, so the probe runs
under qemu-x86_64-static with several CPU models (a control proves the model really changes
what the code sees), under an arm64 Python in an arm64 chroot and under trixie's Python.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from factory.common.errors import UserError
from factory.image import selftest
from factory.source.aptsources import system_debian_mirror
from tests.build_fixtures import ROOT, TEST_SNAPSHOT

GOLDEN = json.loads((ROOT / "tests/golden/byte-path.json").read_text())
PROBE = ROOT / "tests/hostprobe.py"
QEMU = "qemu-x86_64-static"
# baseline x86-64 (v1), SSE4.2 (v2), AVX2 (v3), and an AVX-512 model (qemu's TCG drops the
# AVX-512 bits it cannot emulate: the code then sees an AVX2 machine with other CPUID data)
CPU_MODELS = ("qemu64", "Nehalem", "Haswell-v4", "Icelake-Server-v4")


def _probe(prefix: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    proc = subprocess.run(
        [*prefix, str(PROBE)], capture_output=True, text=True, check=False, env=env, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out: dict[str, Any] = json.loads(proc.stdout)
    return out


def _need(tool: str) -> str:
    path = shutil.which(tool)
    assert path, f"{tool} is missing: scripts/setup.sh installs it"
    return path


# --- this machine -----------------------------------------------------------------------


def test_goldens_natively() -> None:
    from tests.hostprobe import probe

    assert probe() == GOLDEN


def test_known_answers_shipped_are_the_goldens() -> None:
    assert GOLDEN["answers"] == selftest.KNOWN_ANSWERS
    assert selftest.run_selftest().passed


def test_selftest_refuses_a_machine_that_differs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(selftest.KNOWN_ANSWERS, "gzip:sample", "sha256:" + "0" * 64)
    with pytest.raises(UserError) as exc:
        selftest.require_selftest()
    line = exc.value.render()
    assert "\n" not in line and "gzip:sample" in line and "would not reproduce" in line
    assert "--allow-selftest-mismatch" in line
    res = selftest.require_selftest(allow_mismatch=True)
    assert res.to_json() == {"passed": False, "mismatches": ["gzip:sample"], "overridden": True}


# --- other x86-64 CPUs ------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("cpu", CPU_MODELS)
def test_goldens_under_other_cpu_models(cpu: str) -> None:
    out = _probe([_need(QEMU), "-cpu", cpu, sys.executable])
    assert out["digests"] == GOLDEN


ISAL_PROBE = """
import hashlib, sys
sys.path.insert(0, sys.argv[1])
from isal import isal_zlib
from factory.image.selftest import sample_bytes
c = isal_zlib.compressobj(3, isal_zlib.DEFLATED, 31)
print(hashlib.sha256(c.compress(sample_bytes(192 * 1024)) + c.flush()).hexdigest())
"""


@pytest.mark.slow
def test_control_cpu_models_change_what_a_dispatching_compressor_emits() -> None:
    """Without this, passing goldens under qemu could mean qemu changed nothing: ISA-L
    (which picks kernels by CPUID) gives other bytes on the baseline and the AVX2 model,
    and the self-test's 192 KiB sample is enough to show it."""
    digests = {}
    for cpu in ("qemu64", "Haswell-v4"):
        argv = [_need(QEMU), "-cpu", cpu, sys.executable, "-c", ISAL_PROBE, str(ROOT)]
        proc = subprocess.run(argv, capture_output=True, text=True, check=True)
        digests[cpu] = proc.stdout.strip()
    assert len(set(digests.values())) == 2, digests


# --- other architectures and Pythons, in chroots ----------------------------------------


def _pins() -> list[str]:
    """The compressors' exact pins, from the one place they are decided."""
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    return [d for d in deps if d.split("==")[0] in ("deflate", "zstandard")]


def _python_chroot(root: Path, suite: str, arch: str, wheel_platform: str, py: str) -> Path:
    """A minimal Debian with python3, our byte path and the pinned wheels for its arch."""
    mirror = system_debian_mirror()
    subprocess.run(
        ["mmdebstrap", "--quiet", "--variant=essential", "--include=python3", f"--arch={arch}",
         suite, str(root), f"deb {mirror} {suite} main"],
        check=True, capture_output=True, timeout=1200,
    )  # fmt: skip
    pins = _pins()
    assert len(pins) == 2, pins
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--target", str(root / "opt/wheels"),
         "--platform", wheel_platform, "--python-version", py, "--only-binary=:all:", *pins],
        check=True, capture_output=True, timeout=600,
    )  # fmt: skip
    src = root / "opt/src"
    # the byte path's packages (factory's error type is cache_proxy's; nothing else of it)
    for pkg in ("factory", "cache_proxy"):
        shutil.copytree(ROOT / pkg, src / pkg)
    (src / "tests").mkdir()
    shutil.copy(PROBE, src / "tests/hostprobe.py")
    return root


def _chroot_probe(root: Path) -> dict[str, Any]:
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "PYTHONPATH": "/opt/wheels", "LC_ALL": "C"}
    proc = subprocess.run(
        ["chroot", str(root), "/usr/bin/python3", "/opt/src/tests/hostprobe.py"],
        capture_output=True, text=True, check=False, env=env, timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    out: dict[str, Any] = json.loads(proc.stdout)
    return out


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="mmdebstrap and chroot need root")


@needs_root
@pytest.mark.root
@pytest.mark.network
@pytest.mark.slow
def test_goldens_on_an_arm64_host(tmp_path: Path) -> None:
    _need("qemu-aarch64-static")
    root = _python_chroot(tmp_path / "arm64", "bookworm", "arm64", "manylinux2014_aarch64", "3.11")
    out = _chroot_probe(root)
    assert out["host"]["machine"] == "aarch64"
    assert out["digests"] == GOLDEN


@needs_root
@pytest.mark.root
@pytest.mark.network
@pytest.mark.slow
def test_goldens_under_trixie_python(tmp_path: Path) -> None:
    root = _python_chroot(tmp_path / "trixie", "trixie", "amd64", "manylinux2014_x86_64", "3.13")
    out = _chroot_probe(root)
    assert out["host"]["python"].startswith("3.13.")
    assert out["digests"] == GOLDEN


# --- a whole build whose layer compression ran on another CPU ----------------------------


def _build_once(proxy_url: str, output: Path, prefix: list[str]) -> dict[str, Any]:
    argv = [
        *prefix, sys.executable, "-m", "factory.cli", "build", "debian:bookworm-slim",
        "--arch", "amd64", "--snapshot", TEST_SNAPSHOT, "--proxy", proxy_url,
        "--upstream", "record", "--once", "--output", str(output), "--json",
    ]  # fmt: skip
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


@needs_root
@pytest.mark.root
@pytest.mark.network
@pytest.mark.slow
def test_whole_build_on_another_cpu_model_gives_the_same_index(
    recorded_mirror: Any, tmp_path: Path
) -> None:
    """reprobase itself (tar writer, compressor, JSON) runs as a Westmere-class CPU would
    run it; mmdebstrap, which it starts, runs natively: its output is the same either way."""
    native = _build_once(recorded_mirror.url, tmp_path / "native", [])
    other = _build_once(recorded_mirror.url, tmp_path / "other", [_need(QEMU), "-cpu", "Nehalem"])
    assert native["index_digest"] == other["index_digest"]
    assert native["build_a"]["digests"] == other["build_a"]["digests"]
    assert native["compressor_selftest"]["passed"] is True
