"""The nightly's configuration file (schedules/*.toml, table [nightly]), validated."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from factory.common.errors import UserError
from factory.common.paths import Paths
from factory.publish.targets import PublishTarget
from factory.source.upstream import UPSTREAMS

_TYPES: dict[str, type] = {
    "images": list, "architectures": list, "upstream": str, "publish": list, "reverify": int,
    "history": str, "report": str, "cache_dir": str, "proxy": str,
}  # fmt: skip
NIGHTLY_KEYS = frozenset(_TYPES)  # every key [nightly] may have (the report reads two)


@dataclass(frozen=True)
class NightlyConfig:
    images: tuple[str, ...]
    architectures: tuple[str, ...] | None
    upstream: str
    publish: tuple[PublishTarget, ...]
    reverify: int
    history: Path
    report: Path
    cache_dir: Path
    source: str
    proxy: str | None = None  # an already running reprobase proxy (e.g. on a build network)


def _field(src: str, key: str, msg: str) -> UserError:
    return UserError(f"{src}: field 'nightly.{key}': {msg}")


def _strings(src: str, key: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise _field(src, key, "must be a list of non-empty strings")
    return tuple(value)


def config_from_dict(data: dict[str, Any], src: str) -> NightlyConfig:
    table = data.get("nightly")
    if not isinstance(table, dict):
        raise UserError(f"{src}: no [nightly] table", hint="see schedules/nightly.toml")
    for key, value in table.items():
        if key not in _TYPES:
            raise _field(src, key, f"unknown key (known: {', '.join(sorted(_TYPES))})")
        if not isinstance(value, _TYPES[key]) or isinstance(value, bool):
            raise _field(src, key, f"must be a {_TYPES[key].__name__}")
    if "images" not in table:
        raise _field(src, "images", "is required")
    if not table["images"]:
        raise _field(src, "images", "lists no image")
    upstream = table.get("upstream", "auto")
    if upstream not in UPSTREAMS:
        raise _field(src, "upstream", f"must be one of {', '.join(UPSTREAMS)}")
    if "proxy" in table and upstream == "auto":
        raise _field(src, "upstream", "with a proxy, say what it serves: snapshot or record")
    if table.get("reverify", 0) < 0:
        raise _field(src, "reverify", "must be >= 0")
    arches = table.get("architectures")
    defaults = Paths.for_user()  # a key left out means the same path as everywhere else
    return NightlyConfig(
        images=_strings(src, "images", table["images"]),
        architectures=_strings(src, "architectures", arches) if arches is not None else None,
        upstream=upstream,
        publish=tuple(PublishTarget(t) for t in _strings(src, "publish", table.get("publish", []))),
        reverify=int(table.get("reverify", 0)),
        history=Path(table.get("history", defaults.history)),
        report=Path(table.get("report", defaults.report)),
        cache_dir=Path(table.get("cache_dir", defaults.proxy_cache)),
        source=src,
        proxy=table.get("proxy"),
    )


def load_config(path: Path) -> NightlyConfig:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path}: no such config file", hint="see schedules/nightly.toml") from None
    except OSError as exc:
        raise UserError(f"cannot read config {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a text file (TOML is UTF-8)", hint="check --config") from None
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{path}: not valid TOML: {exc}") from None
    return config_from_dict(data, str(path))
