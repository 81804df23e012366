"""Where reprobase keeps its files by default: the one rule, for every command.

It lives here, in the package that stands alone, so that the proxy started on its
own (``reprobase-proxy``, ``python -m cache_proxy``) and ``reprobase build`` agree
on the proxy's store; ``factory.common.paths`` names every other path from the same base.

- root (FHS 3.0 §5.5, §5.8): cache /var/cache/reprobase, data /var/lib/reprobase,
  configuration /etc/reprobase;
- everyone else (XDG Base Directory Specification 0.8): $XDG_CACHE_HOME/reprobase
  (~/.cache), $XDG_DATA_HOME/reprobase (~/.local/share), $XDG_CONFIG_HOME/reprobase
  (~/.config). A relative XDG value is invalid by the specification and ignored.
"""

from __future__ import annotations

import enum
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

NAME = "reprobase"
CACHE_ENV = "REPROBASE_PROXY_CACHE_DIR"  # the proxy's store, for every command that runs one


class Scheme(enum.Enum):
    FHS = "fhs"  # root: the system's directories
    XDG = "xdg"  # a user: the XDG base directories


def _xdg(environ: Mapping[str, str], var: str, home: Path, default: str) -> Path:
    value = environ.get(var, "")
    return Path(value) if os.path.isabs(value) else home / default


@dataclass(frozen=True)
class BaseDirs:
    scheme: Scheme
    cache: Path  # may be deleted at any time: the proxy's store
    data: Path  # kept: history, report, local OCI store
    config: Path  # configuration files

    @classmethod
    def for_user(
        cls,
        euid: int | None = None,
        environ: Mapping[str, str] | None = None,
        home: Path | None = None,
    ) -> BaseDirs:
        """The base directories of this process's user (arguments for tests)."""
        uid = os.geteuid() if euid is None else euid
        if uid == 0:
            root = Path("/")
            return cls(
                Scheme.FHS, root / "var/cache" / NAME, root / "var/lib" / NAME, root / "etc" / NAME
            )
        env = os.environ if environ is None else environ
        h = Path.home() if home is None else home
        return cls(
            Scheme.XDG,
            _xdg(env, "XDG_CACHE_HOME", h, ".cache") / NAME,
            _xdg(env, "XDG_DATA_HOME", h, ".local/share") / NAME,
            _xdg(env, "XDG_CONFIG_HOME", h, ".config") / NAME,
        )

    @property
    def proxy_cache(self) -> Path:
        """The cache proxy's blobs and index."""
        return self.cache / "proxy"


def proxy_cache_dir(environ: Mapping[str, str] | None = None) -> Path:
    """The proxy's store unless a flag says otherwise: $REPROBASE_PROXY_CACHE_DIR, else
    the default of this user (the same for `reprobase proxy` and `reprobase build`)."""
    env = os.environ if environ is None else environ
    value = env.get(CACHE_ENV)
    return Path(value) if value else BaseDirs.for_user(environ=env).proxy_cache


def protected_reason(path: Path) -> str | None:
    """Why path may never be written or replaced, whatever it holds (None: it may be)."""
    resolved = path.resolve()
    cwd = Path.cwd().resolve()
    if resolved == Path("/"):
        return "the root directory"
    if resolved == Path.home().resolve():
        return "the home directory"
    if resolved == cwd:
        return "the current directory"
    if resolved in cwd.parents:
        return "a parent of the current directory"
    return None


def unsafe_path_reason(path: Path, *, probe: bool = True) -> str | None:
    """Why a new file or directory may not be written at ``path``, in one line; None if
    it may (what is there already, if anything, is the caller's to judge).

    The one rule for every output reprobase writes (the proxy's --port-file and
    --access-log, build outputs, installed schedule files), checked before any work:

    1. ``path`` is never ``/``, the home directory, the current directory or one of
       its parents ("it is the home directory"), whatever they hold;
    2. the nearest existing ancestor of its parent must be a directory
       ("/srv/file is not a directory"), where the missing ones will be created;
    3. with ``probe``, that directory must be writable: a temporary directory is
       created and removed in it (the reason is the system's, e.g. "Permission
       denied"). ``probe=False`` is for dry runs, which must not write anything.

    Callers word the refusal, e.g. ``cannot write --port-file PATH: <reason>``.
    """
    why = protected_reason(path)
    if why is not None:
        return f"it is {why}"
    existing = path.absolute().parent
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is not a directory"
    if probe:
        try:
            os.rmdir(tempfile.mkdtemp(prefix=".reprobase-probe-", dir=existing))
        except OSError as exc:
            return str(exc.strerror or exc)
    return None
