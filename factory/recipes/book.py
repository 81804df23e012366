"""Where recipes are found: one search path, resolved in one documented order.

1. ``--recipes DIR`` (repeatable), in the order given;
2. ``REPROBASE_RECIPES`` (colon-separated directories, like PATH);
3. the recipes shipped with reprobase (factory.common.shipped).

A directory holds ``NAME/TAG.toml`` for the recipe ``NAME:TAG``; the first directory
that has it wins, so a user's own ``debian/bookworm.toml`` shadows the shipped one.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from factory.common import shipped
from factory.common.errors import UserError

ENV = "REPROBASE_RECIPES"
FLAG = "--recipes"
# NAME and TAG are single path components: a name can never leave its directory
_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


@dataclass(frozen=True)
class RecipeDir:
    path: Path
    origin: str  # --recipes | REPROBASE_RECIPES | package | checkout | given


@dataclass(frozen=True)
class BookEntry:
    ref: str  # NAME:TAG
    path: Path
    origin: RecipeDir
    shadowed: bool  # an earlier directory has the same NAME:TAG


def _user_dir(raw: str, origin: str) -> RecipeDir:
    path = Path(raw).expanduser().absolute()
    if not path.is_dir():
        where = f"{ENV}={raw}" if origin == ENV else f"{FLAG} {raw}"
        raise UserError(
            f"{where}: not a directory",
            hint="give directories holding NAME/TAG.toml recipes",
        )
    return RecipeDir(path, origin)


@dataclass(frozen=True)
class RecipeBook:
    dirs: tuple[RecipeDir, ...]

    @classmethod
    def resolve(
        cls, flags: Sequence[str | Path] | None = None, environ: Mapping[str, str] | None = None
    ) -> RecipeBook:
        """The search path: flags, then the environment, then the shipped recipes."""
        env = os.environ if environ is None else environ
        dirs = [_user_dir(str(d), FLAG) for d in flags or ()]
        dirs += [_user_dir(d, ENV) for d in env.get(ENV, "").split(":") if d]
        path, origin = shipped.where(shipped.Shipped.IMAGES)
        dirs.append(RecipeDir(path, origin))
        return cls(tuple(dirs))

    @classmethod
    def of(cls, directory: Path) -> RecipeBook:
        """One directory alone (tests, tools)."""
        return cls((RecipeDir(directory, "given"),))

    def find(self, name: str, tag: str) -> Path | None:
        for d in self.dirs:
            candidate = d.path / name / f"{tag}.toml"
            if candidate.is_file():
                return candidate
        return None

    def entries(self) -> list[BookEntry]:
        """Every recipe of every directory, in search order; later duplicates are shadowed."""
        seen: set[str] = set()
        found = []
        for d in self.dirs:
            for p in sorted(d.path.glob("*/*.toml"), key=lambda p: (p.parent.name, p.stem)):
                ref = f"{p.parent.name}:{p.stem}"
                if not (_PART.fullmatch(p.parent.name) and _PART.fullmatch(p.stem)):
                    continue
                found.append(BookEntry(ref, p, d, shadowed=ref in seen))
                seen.add(ref)
        return found

    def names(self) -> list[str]:
        return sorted({e.ref for e in self.entries()})

    def describe(self) -> str:
        return ", ".join(str(d.path) for d in self.dirs)


def split_ref(image: str) -> tuple[str, str] | None:
    """NAME:TAG -> (NAME, TAG), or None when image is not of that form."""
    name, sep, tag = image.partition(":")
    if sep and _PART.fullmatch(name) and _PART.fullmatch(tag):
        return name, tag
    return None
