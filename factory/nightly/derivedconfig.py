"""The nightly's derived images (`[[nightly.derived]]`), checked when the config is read so
that a mistake stops nothing midway (what a night does with them: factory.nightly.derived).

    [[nightly.derived]]
    name = "myapp:latest"              # NAME:TAG it is published as
    containerfile = "myapp/Containerfile"   # relative paths: to this config file
    context = "myapp"                  # default: the Containerfile's directory
    base = "debian:bookworm-slim"      # one of `images`: its FROM, each night
    build_args = {VERSION = "1.0"}     # optional
    architectures = ["amd64"]          # optional; default: the night's, else the base's
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from factory.common.errors import UserError
from factory.common.tomlcheck import Table

_TYPES: dict[str, type] = {
    "name": str, "containerfile": str, "context": str, "base": str, "build_args": dict,
    "architectures": list,
}  # fmt: skip


@dataclass(frozen=True)
class DerivedImage:
    name: str  # "myapp:latest"
    containerfile: Path
    context: Path
    base: str  # a recipe the same nightly builds, e.g. "debian:bookworm-slim"
    build_args: tuple[tuple[str, str], ...] = ()  # sorted
    architectures: tuple[str, ...] | None = None

    @property
    def repository(self) -> str:
        return self.name.rpartition(":")[0]

    @property
    def tag(self) -> str:
        return self.name.rpartition(":")[2]


def _name(t: Table, value: str) -> str:
    name, _, tag = value.rpartition(":")
    if not name or not tag or "/" in tag or any(c.isspace() for c in value) or "@" in value:
        raise t.error("name", f"{value!r}: expected NAME:TAG", hint='e.g. name = "myapp:latest"')
    if name != name.lower() or name.startswith(("/", ".")) or ".." in name.split("/"):
        raise t.error("name", f"{value!r}: a repository name is lowercase, relative, no '..'")
    return value


def _path(t: Table, key: str, value: str, here: Path, want_dir: bool) -> Path:
    path = Path(value)
    path = Path(os.path.abspath(path if path.is_absolute() else here / path))  # no '..' left
    ok = path.is_dir() if want_dir else path.is_file()
    if not ok:
        what = "directory" if want_dir else "file"
        raise t.error(key, f"{value!r}: no such {what} ({path})")
    return path


def _build_args(t: Table, value: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    from factory.derive.containerfile import parse_build_args

    if not all(isinstance(v, str) for v in value.values()):
        raise t.error("build_args", "values must be strings")
    try:
        args = parse_build_args(f"{k}={v}" for k, v in value.items())
    except UserError as exc:
        raise t.error("build_args", exc.message.removeprefix("--build-arg ")) from None
    return tuple(sorted(args.items()))


def parse_one(src: str, n: int, value: Any, images: tuple[str, ...]) -> DerivedImage:
    t = Table(src, f"nightly.derived[{n}].")
    if not isinstance(value, dict):
        raise Table(src, "nightly.").error("derived", "must be tables: [[nightly.derived]]")
    t.check_types(value, _TYPES)
    t.require(value, "name", "containerfile", "base")
    here = Path(src).parent if src and not src.startswith("<") else Path.cwd()
    cf = _path(t, "containerfile", value["containerfile"], here, want_dir=False)
    context = (
        _path(t, "context", value["context"], here, want_dir=True)
        if "context" in value
        else cf.parent
    )
    if value["base"] not in images:
        raise t.error(
            "base",
            f"{value['base']!r} is not one of this nightly's images",
            hint=f"list it in images (now: {', '.join(images)}): a derived image is rebuilt "
            "on the base the same night verified",
        )
    args = _build_args(t, value.get("build_args", {}))
    arches = value.get("architectures")
    out = DerivedImage(
        _name(t, value["name"]), cf, context, value["base"], args,
        t.strings("architectures", arches) if arches is not None else None,
    )  # fmt: skip
    _check_containerfile(t, out)
    return out


def _check_containerfile(t: Table, d: DerivedImage) -> None:
    """Refused now, not at 3 a.m.: what `reprobase build -f` would refuse in it."""
    from factory.derive.containerfile import parse

    try:
        parse(d.containerfile.read_text(encoding="utf-8"), dict(d.build_args))
    except (OSError, UnicodeDecodeError) as exc:
        raise t.error("containerfile", f"cannot read it ({exc})") from None
    except UserError as exc:
        raise t.error("containerfile", exc.message) from None


def parse_derived(src: str, value: Any, images: tuple[str, ...]) -> tuple[DerivedImage, ...]:
    if not isinstance(value, list):
        raise Table(src, "nightly.").error("derived", "must be tables: [[nightly.derived]]")
    out = tuple(parse_one(src, n, v, images) for n, v in enumerate(value))
    names = [d.name for d in out]
    for n, d in enumerate(out):
        if d.name in names[:n]:
            raise Table(src, f"nightly.derived[{n}].").error("name", f"{d.name!r} is listed twice")
        if d.name in images:
            raise Table(src, f"nightly.derived[{n}].").error(
                "name", f"{d.name!r} is also a base image of this nightly"
            )
    return out
