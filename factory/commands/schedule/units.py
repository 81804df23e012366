"""The schedule files: systemd service + timer and a cron.d entry (pure text).

The copies in schedules/ are these texts rendered with the default paths; a test
keeps them equal, so the shipped files and `reprobase schedule install` never drift.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from factory.common.paths import DEBIAN_PATH

DEFAULT_REPROBASE = Path("/opt/reprobase/.venv/bin/reprobase")
DEFAULT_CONFIG = Path("/etc/reprobase/publish.toml")
SERVICE_NAME = "reprobase-nightly.service"
TIMER_NAME = "reprobase-nightly.timer"
CRON_NAME = "reprobase"  # /etc/cron.d file names may not contain dots (run-parts rules)

# snapshot.debian.org imports the archive shortly after midnight UTC and a nightly
# pins midnight of its day; 01:30 UTC leaves the import time to finish.
HOUR, MINUTE = 1, 30

SERVICE = """\
[Unit]
Description=reprobase nightly: build Debian base images twice, publish the reproducible ones
Wants=network-online.target
After=network-online.target

[Service]
Type=oneshot
ExecStart={nightly}
# The dashboard is written whatever the night's verdict (ExecStopPost runs on failure too).
ExecStopPost=-{report}
Environment=LC_ALL=C.UTF-8 TZ=UTC PYTHONUNBUFFERED=1
# Optional: REPROBASE_REGISTRY_USER=... and REPROBASE_REGISTRY_PASSWORD=... (mode 0600).
EnvironmentFile=-/etc/reprobase/env
# /var/lib/reprobase (history, OCI store, report) and /var/cache/reprobase (proxy cache).
StateDirectory=reprobase
CacheDirectory=reprobase
WorkingDirectory=/var/lib/reprobase
TimeoutStartSec=6h
Nice=10
SyslogIdentifier=reprobase-nightly
# Hardening that mmdebstrap's root mode survives: it must mount, chroot and unshare
# (build B gets its own UTS namespace and hostname), dpkg must create setuid files
# and set file capabilities, and qemu-user needs writable+executable memory for
# foreign architectures. So no RestrictNamespaces, ProtectHostname, RestrictSUIDSGID,
# MemoryDenyWriteExecute, SystemCallFilter or capability bounding set here.
PrivateTmp=yes
ProtectSystem=full
# read-only, not yes: registry logins live in /root/.docker and /root/.config/containers.
ProtectHome=read-only
NoNewPrivileges=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
RestrictRealtime=yes
UMask=0022
"""

TIMER = """\
[Unit]
Description=reprobase nightly at 01:30 UTC, after snapshot.debian.org's midnight import

[Timer]
OnCalendar=*-*-* {hour:02d}:{minute:02d}:00 UTC
# Spread load on snapshot.debian.org; a missed night (machine off) runs at boot.
RandomizedDelaySec=20min
Persistent=true
AccuracySec=1min
Unit={service}

[Install]
WantedBy=timers.target
"""

CRON = """\
# reprobase nightly at 01:30 UTC, after snapshot.debian.org's midnight import.
# Install as /etc/cron.d/{name} (cron.d file names may not contain dots).
# Debian's cron reads the time in the system's time zone: on a machine that is not
# on UTC, change "{minute} {hour}" to 01:30 UTC in local time.
# flock -n skips a night while the previous run still holds the lock (reprobase
# nightly takes its own lock too); the report is written whatever the verdict.
SHELL=/bin/sh
PATH={path}
{line}
"""
CRON_LOG = "/var/log/reprobase-nightly.log"
CRON_LOCK = "/run/lock/reprobase-nightly.cron"


@dataclass(frozen=True)
class UnitPaths:
    reprobase: Path  # the console script ExecStart runs
    config: Path  # the nightly config (TOML)

    def command(self, sub: str) -> str:
        return shlex.join([str(self.reprobase), sub, "--config", str(self.config)])


def _check_path(path: Path, what: str) -> None:
    # systemd and cron both split command lines on whitespace and treat % and $ specially.
    if not path.is_absolute() or re.search(r"[\s%$\\\"'`;&|<>]", str(path)):
        raise ValueError(f"{what} must be an absolute path without spaces or shell characters")


def service(paths: UnitPaths) -> str:
    _check_path(paths.reprobase, "the reprobase executable")
    _check_path(paths.config, "the config file")
    return SERVICE.format(nightly=paths.command("nightly"), report=paths.command("report"))


def timer() -> str:
    return TIMER.format(hour=HOUR, minute=MINUTE, service=SERVICE_NAME)


def cron(paths: UnitPaths) -> str:
    _check_path(paths.reprobase, "the reprobase executable")
    _check_path(paths.config, "the config file")
    nightly = f"flock -n {CRON_LOCK} {paths.command('nightly')} >>{CRON_LOG} 2>&1"
    report = f"{paths.command('report')} >>{CRON_LOG} 2>&1"
    line = f"{MINUTE} {HOUR} * * * root {nightly}; {report}"
    return CRON.format(name=CRON_NAME, line=line, minute=MINUTE, hour=HOUR, path=DEBIAN_PATH)


def systemd_units(paths: UnitPaths) -> dict[str, str]:
    return {SERVICE_NAME: service(paths), TIMER_NAME: timer()}


def shipped_files() -> dict[str, str]:
    """schedules/ file name -> its text with the default paths."""
    default = UnitPaths(DEFAULT_REPROBASE, DEFAULT_CONFIG)
    return {**systemd_units(default), "reprobase.cron": cron(default)}
