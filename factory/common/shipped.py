"""What ships with reprobase besides code: the recipes and the schedule templates.

The repository's top-level ``images/`` and ``schedules/`` are the source of truth; a
wheel carries a copy in ``factory/_data/`` (made by setup.py at build time), found
here through importlib.resources. Only an editable checkout, which has no copy, falls
back to the source tree. Every reader of those directories goes through this module.
"""

from __future__ import annotations

import enum
from importlib import resources
from pathlib import Path

from factory.common.errors import UserError


class Shipped(enum.Enum):
    IMAGES = "images"
    SCHEDULES = "schedules"


def _checkout() -> Path | None:
    """The source tree factory/ was imported from, when it is a checkout (editable)."""
    root = Path(__file__).resolve().parents[2]
    return root if (root / "pyproject.toml").is_file() else None


def where(what: Shipped) -> tuple[Path, str]:
    """(directory, origin) with origin "package" (inside the installed package) or
    "checkout" (an editable install's source tree)."""
    packaged = resources.files("factory") / "_data" / what.value
    if packaged.is_dir():
        # pip, pipx and uv install wheels as plain files: the resource is a real path
        return Path(str(packaged)), "package"
    root = _checkout()
    if root is not None and (root / what.value).is_dir():
        return root / what.value, "checkout"
    raise UserError(
        f"this reprobase installation has no {what.value}/ directory",
        hint="reinstall it from a wheel or sdist built with setup.py (pip install reprobase)",
    )


def directory(what: Shipped) -> Path:
    return where(what)[0]


def images_dir() -> Path:
    return directory(Shipped.IMAGES)


def schedule(name: str) -> Path:
    """A shipped schedule template, e.g. schedule("nightly.toml")."""
    return directory(Shipped.SCHEDULES) / name
