"""The nightly's configuration file (schedules/*.toml, table [nightly]), validated."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from factory.common.errors import UserError
from factory.common.paths import Paths
from factory.common.tomlcheck import Table, read_toml, table_of
from factory.nightly.derivedconfig import DerivedImage, parse_derived
from factory.nightly.trustconfig import QuorumSpec, parse_quorum, parse_watch
from factory.publish.targets import PublishTarget
from factory.source.upstream import UPSTREAMS

_TYPES: dict[str, type] = {
    "images": list, "architectures": list, "upstream": str, "publish": list, "reverify": int,
    "history": str, "report": str, "cache_dir": str, "proxy": str,
    "attest_key": str, "sign_command": str,
    "quorum": dict, "watch": list,  # factory.nightly.trustconfig
    "derived": list,  # [[nightly.derived]]: factory.nightly.derivedconfig
}  # fmt: skip
CONFIG_HINT = "see schedules/nightly.toml"
NIGHTLY_TYPES = _TYPES  # every key [nightly] may have, and its type (the report reads two)


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
    # re-verification signs what it rebuilt (a rebuild attestation, attached to the image)
    attest_key: Path | None = None  # private key PEM, or the public key with sign_command
    sign_command: str | None = None  # a hardware token signs instead (factory.attest.signer)
    quorum: QuorumSpec | None = None  # the moving tag waits for N rebuilders (nightly.quorumgate)
    watch: tuple[str, ...] = ()  # images built elsewhere, rebuilt each night (nightly.watch)
    derived: tuple[DerivedImage, ...] = ()  # Containerfiles FROM our images (nightly.derived)


def _field(src: str, key: str, msg: str) -> UserError:
    return Table(src, "nightly.").error(key, msg)


def _strings(src: str, key: str, value: Any) -> tuple[str, ...]:
    return Table(src, "nightly.").strings(key, value)


def config_from_dict(data: dict[str, Any], src: str) -> NightlyConfig:
    table = table_of(data, "nightly", src, CONFIG_HINT)
    Table(src, "nightly.").check_types(table, _TYPES)
    Table(src, "nightly.").require(table, "images")
    if not table["images"]:
        raise _field(src, "images", "lists no image")
    upstream = table.get("upstream", "auto")
    if upstream not in UPSTREAMS:
        raise _field(src, "upstream", f"must be one of {', '.join(UPSTREAMS)}")
    if "proxy" in table and upstream == "auto":
        raise _field(src, "upstream", "with a proxy, say what it serves: snapshot or record")
    if "quorum" in table and not table.get("publish"):
        raise _field(src, "quorum", "gates publication: list publish targets too")
    if table.get("derived") and not table.get("publish"):
        raise _field(src, "derived", "is built FROM the published bases: list publish targets")
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
        attest_key=_attest_key(src, table),
        sign_command=table.get("sign_command"),
        quorum=parse_quorum(src, table["quorum"]) if "quorum" in table else None,
        watch=parse_watch(src, table["watch"]) if "watch" in table else (),
        derived=parse_derived(src, table["derived"], _strings(src, "images", table["images"]))
        if "derived" in table
        else (),
    )


def _attest_key(src: str, table: dict[str, Any]) -> Path | None:
    """The key is read now, so that a bad one is refused before the first build."""
    if "attest_key" not in table:
        if "sign_command" in table:
            raise _field(src, "sign_command", "needs attest_key (the token's public key)")
        return None
    from factory.attest.keys import load_public

    path = Path(table["attest_key"])
    try:
        load_public(path)
    except UserError as exc:
        raise _field(src, "attest_key", exc.message) from None
    return path


def load_config(path: Path) -> NightlyConfig:
    return config_from_dict(read_toml(path, "config", CONFIG_HINT), str(path))
