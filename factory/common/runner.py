"""The one place that starts subprocesses.

Every command is an argv list (never a shell string), runs with a cleaned
environment, is logged in full, and a failure is raised once with the last
lines of the tool's stderr.
"""

from __future__ import annotations

import logging
import os
import shlex
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import BinaryIO

from factory.common.errors import ToolFailed, UserError
from factory.common.paths import DEBIAN_PATH

log = logging.getLogger("reprobase.run")

# Tool -> Debian package that provides it, for "missing tool" errors.
TOOL_PACKAGES: dict[str, str] = {
    "mmdebstrap": "mmdebstrap",
    "skopeo": "skopeo",
    "umoci": "umoci",
    "unshare": "util-linux",
    "chroot": "coreutils",
    "faketime": "faketime",
    "debuerreotype-init": "debuerreotype",
    "docker-registry": "docker-registry",
    "qemu-aarch64-static": "qemu-user-static",
    "arch-test": "arch-test",
    "diffoscope": "diffoscope-minimal",
    "systemd-analyze": "systemd",
}

# Host state that must never reach a build: locale and timezone are fixed so that
# tools print and sort the same way on every machine.
BASE_ENV: dict[str, str] = {
    "LC_ALL": "C.UTF-8",
    "LANG": "C.UTF-8",
    "TZ": "UTC",
    "PATH": DEBIAN_PATH,
}


def require_tool(name: str) -> str:
    path = shutil.which(name, path=BASE_ENV["PATH"] + os.pathsep + os.environ.get("PATH", ""))
    if path is None:
        pkg = TOOL_PACKAGES.get(name, name)
        raise UserError(f"required tool '{name}' is not installed", hint=f"apt-get install {pkg}")
    return path


def clean_env(extra: Mapping[str, str] | None = None, keep: Sequence[str] = ()) -> dict[str, str]:
    env = dict(BASE_ENV)
    for key in keep:
        if key in os.environ:
            env[key] = os.environ[key]
    if extra:
        env.update(extra)
    return env


def run(
    argv: Sequence[str | os.PathLike[str]],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    capture: bool = False,
    input_bytes: bytes | None = None,
    check: bool = True,
    stdout: BinaryIO | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """Run argv with a clean environment; raise ToolFailed on failure.
    stdout: a file the tool writes its output into (e.g. a tar), instead of capture."""
    args = [os.fspath(a) for a in argv]
    if "/" not in args[0]:
        require_tool(args[0])
    full_env = dict(env) if env is not None else clean_env()
    log.debug("run: %s", shlex.join(args))
    proc = subprocess.run(
        args,
        env=full_env,
        cwd=cwd,
        input=input_bytes,
        stdout=subprocess.PIPE if capture else stdout if stdout is not None else subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        check=False,
    )
    if check and proc.returncode != 0:
        tail = (proc.stderr or b"").decode("utf-8", "replace")
        tail = "\n".join(tail.splitlines()[-15:])
        # The argv is for --debug: the user's one line is the tool's own words (ToolFailed).
        log.debug("command failed (%d): %s", proc.returncode, shlex.join(args))
        raise ToolFailed(args, proc.returncode, tail)
    return proc


def output(
    argv: Sequence[str | os.PathLike[str]],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> str:
    """Run argv and return its stdout as text."""
    return run(argv, env=env, cwd=cwd, capture=True).stdout.decode("utf-8", "replace")


def spawn(
    argv: Sequence[str | os.PathLike[str]],
    *,
    env: Mapping[str, str] | None = None,
    log_path: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start a long-running helper (e.g. the cache proxy); its output goes to log_path."""
    args = [os.fspath(a) for a in argv]
    log.debug("spawn: %s", shlex.join(args))
    out = log_path.open("ab") if log_path else subprocess.DEVNULL
    try:
        return subprocess.Popen(
            args,
            env=dict(env) if env is not None else clean_env(),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    finally:
        if log_path and not isinstance(out, int):
            out.close()
