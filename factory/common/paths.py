"""Every default path of reprobase, decided here (``reprobase paths`` prints them).

The base directories follow one rule, ``cache_proxy.paths.BaseDirs`` (root: FHS,
/var/cache and /var/lib; others: XDG); this module names what lives in them. A flag,
an environment variable or a config file key still wins over these defaults; each
command documents its order.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cache_proxy.paths import BaseDirs

# Debian's standard PATH: what subprocesses get (runner) and what images say (config Env).
DEBIAN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# Scratch space for builds: they need gigabytes, so disk-backed /var/tmp, never a
# tmpfs /tmp. Each job gets its own reprobase-JOB-* directory and removes it.
SCRATCH = Path("/var/tmp")


def scratch_dir(job: str) -> Path:
    """A new private work directory for one job (the caller removes it)."""
    return Path(tempfile.mkdtemp(prefix=f"reprobase-{job}-", dir=SCRATCH))


def scratch(job: str) -> tempfile.TemporaryDirectory[str]:
    """A work directory removed when the `with` block ends."""
    return tempfile.TemporaryDirectory(prefix=f"reprobase-{job}-", dir=SCRATCH)


@dataclass(frozen=True)
class Paths:
    base: BaseDirs

    @classmethod
    def for_user(
        cls,
        euid: int | None = None,
        environ: Mapping[str, str] | None = None,
        home: Path | None = None,
    ) -> Paths:
        return cls(BaseDirs.for_user(euid, environ, home))

    @property
    def proxy_cache(self) -> Path:
        return self.base.proxy_cache

    @property
    def history(self) -> Path:
        return self.base.data / "history.sqlite"

    @property
    def report(self) -> Path:
        return self.base.data / "report"

    @property
    def store(self) -> Path:
        """The local OCI store (one layout per image name) a nightly may publish to."""
        return self.base.data / "store"

    @property
    def tools(self) -> Path:
        """Cached venvs of other reprobase versions (reproduce --tool-version)."""
        return self.base.cache / "tools"

    @property
    def nightly_configs(self) -> tuple[Path, ...]:
        """Where `reprobase nightly` looks for its config before the shipped one."""
        system = Path("/etc/reprobase/nightly.toml")
        own = self.base.config / "nightly.toml"
        return (system,) if own == system else (own, system)

    def to_json(self) -> dict[str, Any]:
        return {
            "scheme": self.base.scheme.value,
            "cache": str(self.base.cache),
            "data": str(self.base.data),
            "config": str(self.base.config),
            "proxy_cache": str(self.proxy_cache),
            "history": str(self.history),
            "report": str(self.report),
            "store": str(self.store),
            "tools": str(self.tools),
            "nightly_configs": [str(p) for p in self.nightly_configs],
        }
