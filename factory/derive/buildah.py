"""Run a Containerfile's steps with buildah: chroot isolation, no daemon, private storage.

`bud_argv`/`push_argv`/`build_env` are pure (what to run, with what environment);
`run_steps` runs them through factory.common.runner. buildah's output is only an
intermediate: its new layer is re-serialised by factory.derive.reserialise and its
config is read for the Containerfile's settings only (factory.derive.describe), so
nothing buildah chooses by itself (compression, tar order, timestamps, history,
labels, its version) reaches the image.

What each step sees:
- SOURCE_DATE_EPOCH, always (declared as ARG in the copy of the Containerfile that is
  run): `useradd` writes the epoch's day into /etc/shadow instead of today's;
- the cache proxy as `http_proxy` in buildah's own environment, which buildah passes to
  RUN steps (`--http-proxy`, its default) and never writes into the image;
- in build B: another TZ and locale, and the clock a day ahead (libfaketime, bind-mounted
  read-only for the steps at MOUNT_FAKETIME; the empty mount point is dropped again).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from factory.common import runner
from factory.common.arch import Architecture
from factory.rootfs.buildenv import BuildEnv, faketime_lib

MOUNT_FAKETIME = "/.reprobase-faketime"  # dropped from the layer by reserialise
IMAGE_NAME = "localhost/reprobase-derived:build"


@dataclass(frozen=True)
class StepsJob:
    containerfile: Path  # the copy to run (ARGs declared), outside the context
    context: Path  # the unpacked canonical context
    base: str  # transport reference of the base, e.g. oci:/work/base-amd64:base
    arch: Architecture
    build_args: tuple[tuple[str, str], ...]  # the user's, and SOURCE_DATE_EPOCH
    env: BuildEnv
    workdir: Path  # private: buildah's storage and run state
    proxy: str | None  # the cache proxy's URL, for the steps only
    driver: str = "vfs"  # buildah's storage driver (storage_driver()); no byte depends on it

    @property
    def output(self) -> Path:
        return self.workdir / "out"

    @property
    def faketime(self) -> str | None:
        """The library to shift the clock, when B asks for it and the steps run natively
        (an emulated arm64 step cannot load an amd64 library)."""
        if not self.env.clock_offset_days or self.arch is not Architecture.native():
            return None
        return faketime_lib()

    def varied_args(self) -> tuple[tuple[str, str], ...]:
        """Build B's variations, as build arguments (declared ARG in the run copy)."""
        if self.env.name == "A":
            return ()
        out = [("TZ", self.env.tz), ("LANG", self.env.lang), ("LC_ALL", self.env.lang)]
        lib = self.faketime
        if lib:
            out += [
                ("LD_PRELOAD", f"{MOUNT_FAKETIME}/{Path(lib).name}"),
                ("FAKETIME", f"+{self.env.clock_offset_days}d"),
                ("NO_FAKE_STAT", "1"),
                ("DONT_FAKE_MONOTONIC", "1"),
            ]
        return tuple(out)


def storage_driver() -> str:
    """overlay where the kernel has it and we are root (no copy of the base for the steps,
    half the system time of vfs here), else vfs (a full copy; works on any file system).
    Either way a private store per build: nothing is shared with another build or with
    the host's containers. REPROBASE_BUILDAH_STORAGE=overlay|vfs chooses; no byte of the
    image depends on it (factory.derive.changes)."""
    chosen = os.environ.get("REPROBASE_BUILDAH_STORAGE")
    if chosen in ("overlay", "vfs"):
        return chosen
    try:
        has_overlay = "overlay" in Path("/proc/filesystems").read_text().split()
    except OSError:
        has_overlay = False
    return "overlay" if has_overlay and os.geteuid() == 0 else "vfs"


def _global(job: StepsJob) -> list[str]:
    w = job.workdir
    return ["buildah", "--root", str(w / "storage"), "--runroot", str(w / "run"),
            "--storage-driver", job.driver]  # fmt: skip


def bud_argv(job: StepsJob) -> list[str]:
    argv = [
        *_global(job),
        "bud",
        "--isolation", "chroot",  # no daemon, no runtime: buildah runs the steps itself
        "--layers=false",  # one new layer for all steps; no cache shared between builds
        "--identity-label=false",
        "--pull-never",
        "--from", job.base,
        "--platform", job.arch.oci_platform_string(),
        "-f", str(job.containerfile),
        "-t", IMAGE_NAME,
    ]  # fmt: skip
    for k, v in (*job.build_args, *job.varied_args()):
        argv += ["--build-arg", f"{k}={v}"]
    lib = job.faketime
    if lib:
        argv += ["--volume", f"{os.path.dirname(lib)}:{MOUNT_FAKETIME}:ro"]
    return [*argv, str(job.context)]


def push_argv(job: StepsJob) -> list[str]:
    # dir: with -D: every layer as a plain tar, named by its diff_id, nothing recompressed
    return [*_global(job), "push", "--quiet", "-D", IMAGE_NAME, f"dir:{job.output}"]


def build_env(job: StepsJob) -> dict[str, str]:
    env = runner.clean_env({"TMPDIR": str(job.workdir / "tmp"), "HOME": str(job.workdir)})
    env["TZ"], env["LANG"], env["LC_ALL"] = job.env.tz, job.env.lang, job.env.lang
    if job.proxy:
        env["http_proxy"] = env["HTTP_PROXY"] = job.proxy
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    return env


def varied(job: StepsJob, argv: list[str]) -> list[str]:
    """argv run with B's host name (a new UTS namespace) and umask, as base builds are."""
    wrap = [sys.executable, "-m", "factory.rootfs.varyenv", "--umask", f"{job.env.umask:04o}"]
    if job.env.hostname and os.geteuid() == 0:
        wrap = ["unshare", "--uts", "--", *wrap, "--hostname", job.env.hostname]
    return [*wrap, "--", *argv]


def run_steps(job: StepsJob, clock: Callable[[str], None] = lambda _name: None) -> Path:
    """Run the steps; the result as a `dir:` image (manifest.json, config, plain tars).
    clock(phase) is called as each phase ends."""
    runner.require_tool("buildah")
    (job.workdir / "tmp").mkdir(parents=True, exist_ok=True)
    env = build_env(job)
    runner.run(varied(job, bud_argv(job)), env=env, cwd=job.workdir)
    clock(f"buildah bud ({job.driver})")
    runner.run(push_argv(job), env=env, cwd=job.workdir)
    clock("buildah push (plain tars)")
    return job.output


def buildah_version() -> str:
    out = runner.output(["buildah", "--version"]).split()
    return out[2] if len(out) > 2 else "unknown"
