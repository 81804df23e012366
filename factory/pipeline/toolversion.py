"""Rebuilding with the reprobase version an image records (`reproduce --tool-version`).

An image carries the version of reprobase that built it (org.reprobase.version). A
rebuild by another version may differ for reasons that say nothing about the image,
so `reproduce` says so before it starts, and `--tool-version recorded` rebuilds with
the recorded version instead: that exact version is installed from the configured
package index (pip's own configuration: PIP_INDEX_URL, PIP_FIND_LINKS, pip.conf) into
a cached venv under the cache directory (factory.common.paths), and the same command line
is run by it.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from factory import __version__
from factory.common import runner
from factory.common.errors import UserError
from factory.common.paths import Paths, scratch

log = logging.getLogger("reprobase.toolversion")
FLAG = "--tool-version"
TOOLS_ENV = "REPROBASE_TOOLS_DIR"  # where the venvs go (default: factory.common.paths' tools)
CURRENT, RECORDED = "current", "recorded"
# PEP 440, public and local parts: a version is also a directory name, so nothing else
_VERSION = re.compile(r"[0-9][0-9A-Za-z.!+_-]*")
# pip's configuration and what it needs to reach an index
_PIP_ENV = ("HOME", "XDG_CONFIG_HOME", "http_proxy", "https_proxy", "no_proxy",
            "SSL_CERT_FILE", "SSL_CERT_DIR")  # fmt: skip
_COMPLETE = ".reprobase-complete"


def wanted(choice: str, recorded: str) -> str | None:
    """The version to rebuild with, or None for this one."""
    if choice == CURRENT:
        return None
    version = recorded if choice == RECORDED else choice
    if not version:
        raise UserError(
            "the image does not record the reprobase version that built it",
            hint=f"give {FLAG} VERSION, or rebuild with this one (reprobase {__version__})",
        )
    if not _VERSION.fullmatch(version):
        raise UserError(f"{FLAG} {version!r} is not a version", hint="e.g. 0.1.0 or recorded")
    return None if version == __version__ else version


def notice(reference: str, recorded: str) -> str | None:
    """The one line said before a rebuild by another version than the image's."""
    if not recorded or recorded == __version__:
        return None
    return (
        f"note: {reference} was built by reprobase {recorded}, this is {__version__}: "
        f"rebuilding with {__version__} (hint: {FLAG} recorded rebuilds with {recorded})"
    )


def _pip_env() -> dict[str, str]:
    env = runner.clean_env(keep=_PIP_ENV)
    env.update({k: v for k, v in os.environ.items() if k.startswith("PIP_")})
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def _installed_version(exe: Path) -> str:
    if not exe.is_file():
        return ""
    proc = runner.run([exe, "--version"], capture=True, check=False)
    said = proc.stdout.decode("utf-8", "replace").strip()
    return said.removeprefix("reprobase ") if proc.returncode == 0 else ""


def venv_for(version: str, tools: Path | None = None) -> Path:
    """The `reprobase` executable of VERSION, installed once into a cached venv."""
    where = tools or Path(os.environ.get(TOOLS_ENV) or Paths.for_user().tools)
    home = where / f"reprobase-{version}"
    exe = home / "bin" / "reprobase"
    home.parent.mkdir(parents=True, exist_ok=True)
    with open(home.parent / f".{home.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two rebuilds at once install it once
        if (home / _COMPLETE).is_file() and _installed_version(exe) == version:
            return exe
        shutil.rmtree(home, ignore_errors=True)  # a half-made venv from a cut install
        print(
            f"installing reprobase {version} into {home} from the configured package index",
            file=sys.stderr,
            flush=True,
        )
        # venvs are not relocatable: made in place, marked complete last
        runner.run([sys.executable, "-m", "venv", home], env=_pip_env())
        pip: list[str | os.PathLike[str]] = [home / "bin" / "python", "-m", "pip", "install"]
        runner.run([*pip, "--quiet", f"reprobase=={version}"], env=_pip_env())
        got = _installed_version(exe)
        if got != version:
            raise UserError(
                f"the package index gave reprobase {got or '(nothing)'}, not {version}",
                hint="check pip's index configuration (PIP_INDEX_URL, PIP_FIND_LINKS)",
            )
        (home / _COMPLETE).write_text(version + "\n", encoding="utf-8")
    return exe


def without_flag(argv: Sequence[str]) -> list[str]:
    """argv without --tool-version and its value: what the other version is given."""
    out: list[str] = []
    skip = False
    for a in argv:
        if skip:
            skip = False
        elif a == FLAG:
            skip = True
        elif not a.startswith(FLAG + "="):
            out.append(a)
    return out


def hand_over(exe: Path, version: str, argv: Sequence[str]) -> None:
    """Replace this process by reprobase VERSION running the same command (no return)."""
    args = [str(exe), *without_flag(argv)]
    print(f"rebuilding with reprobase {version} ({exe})", file=sys.stderr, flush=True)
    log.debug("exec: %s", args)
    os.execv(exe, args)


def maybe_hand_over(reference: str, choice: str, argv: Sequence[str]) -> None:
    """With --tool-version other than current: read the image's recorded version and,
    when it is not this one, run the command with that version (no return)."""
    if choice == CURRENT:
        return
    if "reproduce" not in argv:
        raise UserError(f"{FLAG} needs the reprobase command line", hint="run reprobase itself")
    from factory.image.selfdesc import read_spec
    from factory.registry.fetch import fetch

    with scratch("version") as work:
        layout, tag = fetch(reference, Path(work))
        recorded = read_spec(layout, tag).versions["reprobase"]
    version = wanted(choice, recorded)
    if version is None:
        return  # this is the version asked for: rebuild here
    hand_over(venv_for(version), version, argv)
