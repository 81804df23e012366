"""Recipes: what to build, as validated frozen dataclasses read from images/*.toml.

A recipe `debian:bookworm` lives in images/debian/bookworm.toml. A path to a
.toml file works too. Every mistake in a recipe is reported as one line naming
the file and the field.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from factory.common.arch import Architecture
from factory.common.canonical import canonical_json, sha256_digest
from factory.common.errors import UserError
from factory.common.tomlcheck import Table, read_toml
from factory.recipes.book import RecipeBook, split_ref

KNOWN_SUITES = ("bullseye", "bookworm", "trixie", "forky", "sid", "unstable")
VARIANTS = (
    "extract",
    "custom",
    "essential",
    "apt",
    "required",
    "minbase",
    "buildd",
    "important",
    "debootstrap",
    "standard",
)
COMPRESSIONS = ("gzip", "zstd")


@dataclass(frozen=True)
class SlimRules:
    """dpkg path filters (dpkg.cfg path-exclude/path-include) for slim variants."""

    path_exclude: tuple[str, ...] = ()
    path_include: tuple[str, ...] = ()

    def dpkg_options(self) -> list[str]:
        return [f"path-exclude={p}" for p in self.path_exclude] + [
            f"path-include={p}" for p in self.path_include
        ]


@dataclass(frozen=True)
class Recipe:
    name: str
    tag: str
    suite: str
    variant: str = "minbase"
    components: tuple[str, ...] = ("main",)
    packages: tuple[str, ...] = ()
    architectures: tuple[str, ...] = ("amd64",)
    compression: str = "gzip"
    description: str = ""
    slim: SlimRules | None = None
    # Shell commands run inside the chroot (with SOURCE_DATE_EPOCH exported) after
    # the packages are installed and before normalisation.
    customize: tuple[str, ...] = ()
    source: str = field(default="", compare=False)  # the file it came from, for errors

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.tag}"

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("source")
        if self.slim is None:
            d.pop("slim")
        if not self.customize:
            d.pop("customize")  # keeps the digest of recipes without it stable
        return d

    def digest(self) -> str:
        """Digest of the canonical JSON form: what an image records and a rebuild checks."""
        return sha256_digest(canonical_json(self.to_json()))


_FIELDS: dict[str, type] = {
    "name": str,
    "tag": str,
    "suite": str,
    "variant": str,
    "components": list,
    "packages": list,
    "architectures": list,
    "compression": str,
    "description": str,
    "slim": dict,
    "customize": list,
}
_SLIM_FIELDS = ("path_exclude", "path_include")


def _err(src: str, fieldname: str, msg: str) -> UserError:
    return Table(src).error(fieldname, msg)


def _str_list(src: str, key: str, value: Any) -> tuple[str, ...]:
    return Table(src).strings(key, value)


def recipe_from_dict(data: dict[str, Any], src: str) -> Recipe:
    top = Table(src)
    top.check_types(data, _FIELDS)
    top.require(data, "name", "tag", "suite")
    if data["suite"] not in KNOWN_SUITES:
        raise _err(
            src, "suite", f"unknown suite {data['suite']!r} (known: {', '.join(KNOWN_SUITES)})"
        )
    variant = data.get("variant", "minbase")
    if variant not in VARIANTS:
        raise _err(src, "variant", f"unknown mmdebstrap variant {variant!r}")
    compression = data.get("compression", "gzip")
    if compression not in COMPRESSIONS:
        raise _err(src, "compression", f"must be one of {', '.join(COMPRESSIONS)}")
    arches = _str_list(src, "architectures", data.get("architectures", ["amd64"]))
    for a in arches:
        try:
            Architecture.parse(a)
        except UserError as exc:
            raise _err(src, "architectures", exc.message) from None
    slim = None
    if "slim" in data:
        top.sub("slim").check_types(data["slim"], dict.fromkeys(_SLIM_FIELDS, list))
        for key, value in data["slim"].items():
            top.sub("slim").strings(key, value)
        slim = SlimRules(
            tuple(data["slim"].get("path_exclude", ())), tuple(data["slim"].get("path_include", ()))
        )
    return Recipe(
        name=data["name"],
        tag=data["tag"],
        suite=data["suite"],
        variant=variant,
        components=_str_list(src, "components", data.get("components", ["main"])),
        packages=tuple(sorted(_str_list(src, "packages", data.get("packages", [])))),
        architectures=arches,
        compression=compression,
        description=data.get("description", ""),
        slim=slim,
        customize=_str_list(src, "customize", data.get("customize", [])),
        source=src,
    )


def _book(book: RecipeBook | Path | None) -> RecipeBook:
    if isinstance(book, Path):
        return RecipeBook.of(book)
    return RecipeBook.resolve() if book is None else book


def recipe_path(image: str, book: RecipeBook | Path | None = None) -> Path:
    """The file of recipe NAME:TAG, the first found along the search path (recipebook),
    or the .toml path given."""
    if image.endswith(".toml"):
        return Path(image)
    found = _book(book)
    ref = split_ref(image)
    if ref is None:
        raise UserError(
            f"bad image name {image!r}",
            hint=f"use NAME:TAG such as debian:bookworm (see {available(found)})",
        )
    path = found.find(*ref)
    if path is None:
        raise UserError(
            f"no recipe for {image!r} in {found.describe()}",
            hint=f"available: {available(found)}; add a directory with --recipes DIR",
        )
    return path


def available(book: RecipeBook | Path | None = None) -> str:
    return ", ".join(_book(book).names()) or "no recipes"


def load_recipe(image: str, book: RecipeBook | Path | None = None) -> Recipe:
    path = recipe_path(image, book)
    if not path.is_file():
        raise UserError(f"no recipe {path}", hint="give a path to a recipe .toml file")
    return recipe_from_dict(read_toml(path, "recipe"), str(path))
