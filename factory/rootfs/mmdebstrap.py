"""Root filesystem with mmdebstrap: no container daemon, bit-identical given SOURCE_DATE_EPOCH.

`mmdebstrap_argv` is pure (what to run); `bootstrap` runs it through factory.common.runner.
"""

from __future__ import annotations

import os
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from factory.common import runner
from factory.common.arch import Architecture
from factory.recipes.recipe import Recipe
from factory.rootfs.buildenv import BuildEnv, faketime_lib
from factory.rootfs.normalize import BUILD_ONLY_DPKG_OPTIONS
from factory.source.buildsource import BuildSource
from factory.source.snapshot import KEYRING, Timestamp, mirror_sources, snapshot_sources


@dataclass(frozen=True)
class RootfsJob:
    recipe: Recipe
    arch: Architecture
    pin: Timestamp
    source: BuildSource
    env: BuildEnv
    workdir: Path  # private to this build: sources file, output tar

    @property
    def sources_path(self) -> Path:
        return self.workdir / "debian.sources"

    @property
    def phases_path(self) -> Path:
        return self.workdir / "phases"

    @property
    def facts_path(self) -> Path:
        """What the SBOM needs from the chroot before normalisation (factory.rootfs.debhashes)."""
        return self.workdir / "sbom-facts.json"


# mmdebstrap's hook points, in the order it reaches them, and the phase each one ends.
# A marker hook appends "NAME UPTIME" to a file outside the chroot: it changes nothing
# in the root filesystem. /proc/uptime, not `date`: build B's libfaketime shifts the
# wall clock (not this file), and Python reads the same clock as CLOCK_BOOTTIME.
PHASE_HOOKS = (
    ("setup", "setup"),  # ends: mmdebstrap's own set-up (apt configuration, directories)
    ("extract", "download and unpack essential"),
    ("essential", "configure essential"),
    ("customize", "install packages"),
)


def boot_clock() -> float:
    """The clock of /proc/uptime, which the marker hooks read."""
    return time.clock_gettime(time.CLOCK_BOOTTIME)


def _marker(kind: str, name: str, path: Path) -> str:
    return f'--{kind}-hook=read u _ < /proc/uptime; echo "{name} $u" >> {shlex.quote(str(path))}'


def phase_durations(marks: list[tuple[str, float]], start: float, end: float) -> dict[str, float]:
    """Pure: seconds per phase from the markers' times; the last phase ends at `end`."""
    out: dict[str, float] = {}
    prev = start
    for name, t in marks:
        out[name] = round(max(0.0, t - prev), 3)
        prev = t
    if marks:
        out["write the tar"] = round(max(0.0, end - prev), 3)
    return out


def read_phases(job: RootfsJob, start: float, end: float) -> dict[str, float]:
    try:
        lines = job.phases_path.read_text().splitlines()
    except OSError:
        return {}
    marks = []
    for line in lines:
        name, _, t = line.rpartition(" ")
        try:
            marks.append((name, float(t)))
        except ValueError:
            continue
    return phase_durations(marks, start, end)


def _hook(*argv: str) -> str:
    # mmdebstrap runs hooks with `sh -c CMD exec ROOTDIR`: "$1" is the chroot.
    return " ".join(shlex.quote(a) if a != '"$1"' else a for a in argv)


def mmdebstrap_argv(job: RootfsJob, root_mode: bool) -> list[str]:
    r = job.recipe
    argv = [
        "mmdebstrap",
        f"--mode={'root' if root_mode else 'unshare'}",
        f"--variant={r.variant}",
        f"--architectures={job.arch.debian}",
        f"--components={','.join(r.components)}",
        f"--keyring={KEYRING}",
        "--format=tar",
        # merged-/usr the debootstrap way (symlinks + usr-is-merged): without it
        # bookworm's init-system-helpers pulls in usrmerge and with it all of perl.
        "--hook-dir=/usr/share/mmdebstrap/hooks/maybe-merged-usr",
        '--aptopt=Acquire::Languages "none"',
        '--aptopt=Acquire::Retries "3"',
    ]
    argv += [_marker(kind, name, job.phases_path) for kind, name in PHASE_HOOKS]
    if job.source.kind == "snapshot":
        argv.append('--aptopt=Acquire::Check-Valid-Until "false"')
    if job.source.proxy:
        argv.append(f'--aptopt=Acquire::http::Proxy "{job.source.proxy}"')
    if r.packages:
        argv.append(f"--include={','.join(r.packages)}")
    if r.slim:
        argv += [f"--dpkgopt={o}" for o in r.slim.dpkg_options()]
    # last, so that taking them out again (factory.rootfs.normalize) leaves the recipe's
    # options byte for byte as they were
    argv += [f"--dpkgopt={o}" for o in BUILD_ONLY_DPKG_OPTIONS]
    # Maintainer scripts run in the chroot: they see the shifted clock only if the
    # preloaded library exists there too (removed again before the tar). Only for the
    # host's own architecture: an emulated arm64 process cannot load an amd64 library.
    native = job.arch is Architecture.native()
    lib = faketime_lib() if job.env.clock_offset_days and native else None
    if lib:
        d = os.path.dirname(lib)
        argv.append(f'--setup-hook=mkdir -p "$1{d}" && cp {shlex.quote(lib)} "$1{d}/"')
    for cmd in r.customize:
        argv.append('--customize-hook=chroot "$1" /bin/sh -ec ' + shlex.quote(cmd))
    # reads the chroot, writes outside it: apt's lists (the .debs' SHA-256) go next
    argv.append(
        "--customize-hook="
        + _hook(sys.executable, "-m", "factory.rootfs.debhashes", '"$1"', str(job.facts_path))
    )
    argv.append(
        "--customize-hook="
        + _hook(
            sys.executable,
            "-m",
            "factory.rootfs.normalize",
            '"$1"',
            "--epoch",
            str(job.pin.epoch),
            "--sources-file",
            str(job.sources_path),
        )
    )
    if lib:
        d = os.path.dirname(lib)
        # rmdir: the multiarch directory goes too if the setup hook created it
        argv.append(
            f'--customize-hook=rm -rf "$1{d}"; rmdir "$1{os.path.dirname(d)}" 2>/dev/null || true'
        )
    argv.append(_marker("customize", "customize and normalise", job.phases_path))
    # "-": the tar comes to us on stdout (hooks' output goes to stderr), never to disk
    argv += [r.suite, "-"]
    argv += job.source.lines(r.suite, r.components)
    return argv


def build_env_vars(job: RootfsJob) -> dict[str, str]:
    e = job.env
    env = {
        "SOURCE_DATE_EPOCH": str(job.pin.epoch),  # every chroot command must see it (useradd)
        "TZ": e.tz,
        "LANG": e.lang,
        "LC_ALL": e.lang,
        "PATH": runner.BASE_ENV["PATH"],
        "TMPDIR": str(job.workdir / "tmp"),
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
        "HOME": str(job.workdir),
    }
    lib = faketime_lib() if e.clock_offset_days else None
    if lib:
        env["LD_PRELOAD"] = lib
        env["FAKETIME"] = f"+{e.clock_offset_days}d"
        env["NO_FAKE_STAT"] = "1"  # else every file mtime tar reads is shifted too
        env["DONT_FAKE_MONOTONIC"] = "1"
    env.update(e.extra_env)
    return env


def image_sources(job: RootfsJob) -> str:
    """The image's own apt sources, for images built FROM it: the snapshot it is pinned to,
    or, for a plain-mirror build, that mirror (never a loopback proxy or a file: URL,
    which would leak the build host; such builds keep the snapshot sources)."""
    from factory.source.upstream import public_url  # factory.source.upstream imports this module

    src, recipe = job.source, job.recipe
    if src.kind == "mirror" and public_url(src.debian_url):
        security = public_url(src.security_url) if src.security_url else None
        return mirror_sources(recipe.suite, recipe.components, src.debian_url, security)
    return snapshot_sources(recipe.suite, recipe.components, job.pin)


def memory_file(name: str) -> BinaryIO:
    """A seekable file in memory (memfd): mmdebstrap's tar is read back at once by the
    layer writer, so writing it to the scratch disk first would be a pass for nothing."""
    return open(os.memfd_create(name, os.MFD_CLOEXEC), "w+b")


def bootstrap(job: RootfsJob) -> BinaryIO:
    """Run mmdebstrap; its root filesystem tar, open and at its start (the caller closes it)."""
    job.workdir.mkdir(parents=True, exist_ok=True)
    (job.workdir / "tmp").mkdir(exist_ok=True)
    job.sources_path.write_text(image_sources(job))
    root_mode = os.geteuid() == 0
    argv = mmdebstrap_argv(job, root_mode)
    if job.env.hostname and root_mode:
        argv = [
            "unshare",
            "--uts",
            "--",
            sys.executable,
            "-m",
            "factory.rootfs.varyenv",
            "--hostname",
            job.env.hostname,
            "--umask",
            f"{job.env.umask:04o}",
            "--",
            *argv,
        ]
    else:
        argv = [
            sys.executable,
            "-m",
            "factory.rootfs.varyenv",
            "--umask",
            f"{job.env.umask:04o}",
            "--",
            *argv,
        ]
    job.phases_path.unlink(missing_ok=True)
    tar = memory_file(f"rootfs-{job.arch.debian}-{job.env.name}")
    try:
        runner.run(argv, env=build_env_vars(job), cwd=job.workdir, stdout=tar)
    except BaseException:
        tar.close()
        raise
    tar.seek(0)
    return tar


def mmdebstrap_version() -> str:
    out = runner.output(["mmdebstrap", "--version"]).strip()
    return out.split()[-1] if out else "unknown"
