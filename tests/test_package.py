"""The package as a user gets it: a wheel installed into a fresh venv, run from an empty
directory, with no access to the source tree (the CI check of issue 14).

The wheel is built from a copy of the checkout (what git would check out), which is
deleted before anything runs, so nothing can quietly read the source tree; every
command runs with cwd = an empty directory and a clean environment.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from factory.cli import COMMANDS
from factory.source import proxyctl
from tests.build_fixtures import TEST_SNAPSHOT, recorded_mirror  # noqa: F401
from tests.diff_fixtures import F, base_files, simple

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ["debian:bookworm", "debian:bookworm-slim", "debian:trixie", "debian:trixie-slim"]


def checkout_copy(dest: Path) -> Path:
    """The files a checkout has (tracked, or new and not ignored): no .venv, no build/."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, check=True,
    ).stdout.decode().split("\0")  # fmt: skip
    for name in filter(None, listed):
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dest / name)
    return dest


def sdist(source: Path, out: Path) -> Path:
    """The sdist, built by setuptools' PEP 517 backend in a venv of its own."""
    builder = out / "builder"
    subprocess.run([sys.executable, "-m", "venv", str(builder)], check=True, timeout=300)
    pip = [str(builder / "bin" / "pip"), "install", "-q", "setuptools>=77"]
    subprocess.run(pip, check=True, capture_output=True, timeout=600)
    code = "import sys, setuptools.build_meta as m; print(m.build_sdist(sys.argv[1]))"
    done = subprocess.run(
        [str(builder / "bin" / "python"), "-c", code, str(out)],
        cwd=source, check=True, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    return out / done.stdout.strip().splitlines()[-1]


def record(wheel: Path) -> dict[str, str]:
    """path -> sha256 of every file in the wheel but its RECORD."""
    z = zipfile.ZipFile(wheel)
    rows = z.read("reprobase-0.1.0.dist-info/RECORD").decode().splitlines()
    return {
        r.split(",")[0]: r.split(",")[1] for r in rows if not r.split(",")[0].endswith("RECORD")
    }


def pip_wheel(source: Path, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", str(source), "-w", str(out)],
        cwd=out, check=True, capture_output=True, timeout=600,
    )  # fmt: skip
    (wheel,) = out.glob("reprobase-*.whl")
    return wheel


@dataclass(frozen=True)
class Installed:
    venv: Path
    wheel: Path
    from_sdist: Path
    empty: Path
    home: Path
    env: dict[str, str]
    seconds: dict[str, float]

    def run(
        self, *argv: str, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        exe = argv[0] if argv[0].startswith("/") else str(self.venv / "bin" / argv[0])
        proc = subprocess.run(
            [exe, *argv[1:]], cwd=self.empty, env=self.env, capture_output=True, text=True,
            timeout=timeout, check=False,
        )  # fmt: skip
        if check:
            assert proc.returncode == 0, (argv, proc.stdout[-2000:], proc.stderr[-2000:])
        return proc


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    base = tmp_path_factory.mktemp("package")
    seconds: dict[str, float] = {}
    t = time.monotonic()
    src = checkout_copy(base / "src")
    wheel = pip_wheel(src, base / "wheel")
    seconds["wheel"] = time.monotonic() - t
    t = time.monotonic()
    (base / "sdist").mkdir()
    from_sdist = pip_wheel(sdist(src, base / "sdist"), base / "sdist")
    seconds["sdist+wheel"] = time.monotonic() - t
    shutil.rmtree(src)  # from here on there is no source tree to read but /work's
    venv = base / "venv"
    t = time.monotonic()
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", str(wheel)],
        cwd=base, check=True, capture_output=True, timeout=600,
    )  # fmt: skip
    seconds["install"] = time.monotonic() - t
    empty, home = base / "empty", base / "home"
    empty.mkdir()
    home.mkdir()
    env = {
        "PATH": f"{venv / 'bin'}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": str(home),
        "LANG": "C.UTF-8",
    }
    yield Installed(venv, wheel, from_sdist, empty, home, env, seconds)


def test_the_wheel_carries_every_subpackage_recipe_and_schedule(installed: Installed) -> None:
    names = set(zipfile.ZipFile(installed.wheel).namelist())
    for pkg in ("commands", "commands/schedule", "diffing", "registry", "report"):
        assert f"factory/{pkg}/__init__.py" in names, pkg
    for ref in SHIPPED:
        name, tag = ref.split(":")
        assert f"factory/_data/images/{name}/{tag}.toml" in names
    for f in (ROOT / "schedules").rglob("*"):
        if f.is_file() and "__pycache__" not in f.parts:
            assert f"factory/_data/schedules/{f.relative_to(ROOT / 'schedules')}" in names, f
    entry = zipfile.ZipFile(installed.wheel).read("reprobase-0.1.0.dist-info/entry_points.txt")
    assert b"reprobase = factory.cli:main" in entry
    assert b"reprobase-proxy = cache_proxy.cli:main" in entry
    print(f"wheel {installed.wheel.stat().st_size} bytes, {installed.seconds}")


def test_the_sdist_builds_the_same_wheel(installed: Installed) -> None:
    assert record(installed.from_sdist) == record(installed.wheel)


def test_imports_come_from_the_venv(installed: Installed) -> None:
    code = "import factory, cache_proxy; print(factory.__file__); print(cache_proxy.__file__)"
    for line in installed.run("python", "-c", code).stdout.splitlines():
        assert Path(line).is_relative_to(installed.venv), line


def test_every_subcommand_answers_help(installed: Installed) -> None:
    listed = installed.run("python", "-c", "from factory.cli import COMMANDS; print(*COMMANDS)")
    assert listed.stdout.split() == list(COMMANDS)  # the wheel's dispatcher is this tree's
    for name in COMMANDS:
        proc = installed.run("reprobase", name, "--help")
        assert proc.stdout.startswith(f"usage: reprobase {name}"), (name, proc.stdout[:200])
    assert installed.run("reprobase", "--version").stdout.strip() == "reprobase 0.1.0"
    assert "--cache-dir" in installed.run("reprobase-proxy", "--help").stdout
    assert "--cache-dir" in installed.run("python", "-m", "cache_proxy", "--help").stdout


def test_images_and_paths_come_from_the_package(installed: Installed) -> None:
    doc = json.loads(installed.run("reprobase", "images", "--json").stdout)
    assert [r["ref"] for r in doc["recipes"]] == SHIPPED
    for r in doc["recipes"]:
        assert r["origin"] == "package" and Path(r["path"]).is_relative_to(installed.venv)
    paths = json.loads(installed.run("reprobase", "paths", "--json").stdout)
    assert paths["schedules"]["origin"] == "package"
    assert Path(paths["schedules"]["path"]).is_relative_to(installed.venv)
    assert [d["origin"] for d in paths["recipes"]] == ["package"]
    if not any(Path(p).is_file() for p in paths["nightly_configs"]):
        assert Path(paths["nightly_config"]).is_relative_to(installed.venv)
    expected = "/var/cache/reprobase/proxy" if os.geteuid() == 0 else f"{installed.home}/.cache"
    assert paths["proxy_cache"].startswith(expected)


@pytest.mark.parametrize("argv", [("reprobase", "proxy"), ("reprobase-proxy", "--workers", "2")])
def test_the_installed_proxy_answers_healthz(
    installed: Installed, tmp_path: Path, argv: tuple[str, ...]
) -> None:
    port_file = tmp_path / "port"
    proc = subprocess.Popen(
        [str(installed.venv / "bin" / argv[0]), *argv[1:], "--listen", "127.0.0.1:0",
         "--cache-dir", str(tmp_path / "cache"), "--port-file", str(port_file),
         "--access-log", "none"],
        cwd=installed.empty, env=installed.env, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not port_file.exists():
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "no port file"
            time.sleep(0.02)  # polling the port file the proxy writes once it listens
        url = f"http://{port_file.read_text().strip()}/healthz"
        with urllib.request.urlopen(url, timeout=10) as resp:
            assert (resp.status, resp.read()) == (200, b"ok")
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


def test_the_installed_diff(installed: Installed, tmp_path: Path) -> None:
    a = simple(tmp_path / "a", base_files())
    same = simple(tmp_path / "same", base_files())
    b = simple(tmp_path / "b", [*base_files(), F("etc/extra", b"more\n")])
    installed.run("reprobase", "diff", str(a), str(same))
    proc = installed.run("reprobase", "diff", str(a), str(b), "--json", check=False)
    assert proc.returncode == 1, proc.stderr
    assert "etc/extra" in proc.stdout


@pytest.mark.root
def test_the_installed_build_through_the_recorded_mirror(
    installed: Installed,
    recorded_mirror: proxyctl.ProxyHandle,  # noqa: F811
    tmp_path: Path,
) -> None:
    out = tmp_path / "layout"
    proc = installed.run(
        "reprobase", "build", "debian:bookworm-slim", "--once", "--arch", "amd64",
        "--snapshot", TEST_SNAPSHOT, "--proxy", recorded_mirror.url, "--upstream", "record",
        "--output", str(out), "--json",
        timeout=900,
    )  # fmt: skip
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert (result["image"], result["output"]) == ("debian:bookworm-slim", str(out))
    assert result["packages_from"] == "recorded-mirror"
    assert (out / "index.json").is_file() and (out / "oci-layout").is_file()
