"""The nightly's trust keys: `quorum` (gate the moving tag) and `watch` (images built
elsewhere), checked when the config is read so that a mistake stops nothing midway.

    [nightly]
    quorum = {trust = "/etc/reprobase/rebuilders", require = 2}
    watch = ["registry.example/team/debian:bookworm"]

What the gate does: factory.nightly.quorumgate; the watch list: factory.nightly.watch;
both in docs/attest-nightly.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from factory.attest.keys import TrustedKey, load_trust_dir
from factory.common.errors import UserError
from factory.common.tomlcheck import Table


@dataclass(frozen=True)
class QuorumSpec:
    trust: Path  # a directory of NAME.pub files (the rebuilders whose word counts)
    require: int  # distinct trusted keys that must attest an identical rebuild
    keys: tuple[TrustedKey, ...]  # read once, with the config

    def describe(self) -> str:
        return f"{self.require} of {len(self.keys)} trusted keys ({self.trust})"


def parse_quorum(src: str, value: Any) -> QuorumSpec:
    t = Table(src, "nightly.quorum.")
    t.check_types(value, {"trust": str, "require": int})
    t.require(value, "trust", "require")
    trust = Path(value["trust"])
    try:
        keys = load_trust_dir(trust)
    except UserError as exc:
        raise t.error("trust", exc.message.removeprefix(f"--trust {trust}: ")) from None
    require = int(value["require"])
    if require < 1:
        raise t.error("require", "must be at least 1")
    if require > len(keys):
        raise t.error(
            "require",
            f"{require} but {trust} holds only {len(keys)} trusted keys",
            hint="lower require or add NAME.pub files",
        )
    return QuorumSpec(trust, require, tuple(keys))


def parse_watch(src: str, value: Any) -> tuple[str, ...]:
    """Registry references (or `oci:` layouts); each is rebuilt from its own labels."""
    t = Table(src, "nightly.")
    refs = t.strings("watch", value)
    if len(set(refs)) != len(refs):
        dup = next(r for r in refs if refs.count(r) > 1)
        raise t.error("watch", f"lists {dup!r} twice")
    from factory.registry.reference import parse_reference

    for ref in refs:
        if ref.startswith("oci:"):
            continue  # a local layout: read (and refused if absent) when the night runs
        try:
            parse_reference(ref)
        except UserError as exc:
            raise t.error("watch", f"{ref!r}: {exc.message}") from None
    return refs
