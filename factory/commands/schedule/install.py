"""Installing schedules: a plan of file writes and commands, shown or carried out."""

from __future__ import annotations

import os
import shlex
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cache_proxy.paths import unsafe_path_reason
from factory.common import runner
from factory.common.errors import UserError


@dataclass(frozen=True)
class WriteFile:
    path: Path
    text: str
    mode: int = 0o644

    def describe(self) -> str:
        return f"write {self.path}"

    def apply(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(self.text)
            os.chmod(tmp, self.mode)
            os.replace(tmp, self.path)  # a reader never sees half a unit file
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


@dataclass(frozen=True)
class RunCommand:
    argv: tuple[str, ...]

    def describe(self) -> str:
        return f"run {shlex.join(self.argv)}"

    def apply(self) -> None:
        runner.run(self.argv)


Action = WriteFile | RunCommand


def check_systemd_running() -> None:
    """Refuse early, before writing anything, where systemd is not the running init."""
    systemctl = runner.require_tool("systemctl")
    proc = runner.run([systemctl, "is-system-running"], capture=True, check=False)
    state = proc.stdout.decode("utf-8", "replace").strip() or "unknown"
    # "degraded" is a running systemd with a failed unit somewhere: installing is fine.
    if state not in ("running", "degraded", "starting", "initializing", "maintenance"):
        raise UserError(
            f"systemd is not running here (systemctl is-system-running: {state})",
            hint="pass --no-enable to only write the units, or use cron: "
            "reprobase schedule install --cron",
        )


def check_writable_dir(directory: Path, *, probe: bool) -> None:
    """--prefix must be (or become) a directory we can write; probe: prove it by creating
    and removing a temporary directory in its nearest existing ancestor."""
    why = unsafe_path_reason(directory / "x", probe=probe)  # the one rule (cache_proxy.paths)
    if why is not None:
        raise UserError(
            f"cannot write into {directory}: {why}", hint="run as root, or pass --prefix DIR"
        )


def apply(actions: list[Action], *, dry_run: bool) -> list[str]:
    """Carry out (or, with dry_run, only describe) the actions; return what was done."""
    done = []
    for action in actions:
        if not dry_run:
            try:
                action.apply()
            except OSError as exc:
                raise UserError(
                    f"cannot {action.describe()}: {exc.strerror or exc}",
                    hint="run as root, or pass --prefix DIR",
                ) from exc
        done.append(action.describe())
    return done
