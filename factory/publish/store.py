"""A local OCI store: one OCI image layout per image name, many tags in its index.json.

Publishing copies blobs first and replaces index.json last with an atomic rename,
so a crash part-way leaves the previous tags untouched (never half-published).
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from factory.common.canonical import canonical_json
from factory.image import oci
from factory.image.selfdesc import top_descriptor


@contextmanager
def _locked(store: Path) -> Iterator[None]:
    store.mkdir(parents=True, exist_ok=True)
    with (store / ".lock").open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def _entries(store: Path) -> list[dict[str, Any]]:
    if not (store / "index.json").exists():
        return []
    return list(oci.read_index(store).get("manifests", []))


def _write_entries(store: Path, entries: list[dict[str, Any]]) -> None:
    def key(e: dict[str, Any]) -> str:
        return str((e.get("annotations") or {}).get(oci.ANN_REF_NAME, ""))

    index = {"schemaVersion": 2, "mediaType": oci.MT_INDEX, "manifests": sorted(entries, key=key)}
    tmp = store / "index.json.tmp"
    with tmp.open("wb") as fh:
        fh.write(canonical_json(index))
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, store / "index.json")


def _retagged(
    entries: list[dict[str, Any]], desc: oci.Descriptor, tags: list[str]
) -> list[dict[str, Any]]:
    kept = [
        e
        for e in entries
        if not (
            isinstance(e.get("annotations"), dict)
            and e["annotations"].get(oci.ANN_REF_NAME) in tags
        )
    ]
    for t in tags:
        d = oci.Descriptor(desc.media_type, desc.digest, desc.size, {oci.ANN_REF_NAME: t})
        kept.append(d.to_json())
    return kept


def publish(layout: Path, store: Path, tags: list[str]) -> oci.Descriptor:
    """Copy the layout's image into the store and point every tag at it."""
    top = top_descriptor(layout)
    with _locked(store):
        oci.init_layout(store)
        for desc in oci.reachable(layout, top):
            oci.copy_blob(layout, desc, store)  # checked: a corrupt blob is never published
        _write_entries(store, _retagged(_entries(store), top, tags))
    return top


def retag(store: Path, existing: str, tags: list[str]) -> oci.Descriptor:
    """Point more tags at the image a tag already names (a no-change night)."""
    with _locked(store):
        desc = resolve(store, existing)
        _write_entries(store, _retagged(_entries(store), desc, tags))
    return desc


def resolve(store: Path, tag: str) -> oci.Descriptor:
    for e in _entries(store):
        d = oci.Descriptor.from_json(e)
        if d.annotations.get(oci.ANN_REF_NAME) == tag:
            return d
    from factory.common.errors import UserError

    raise UserError(f"{store}: no tag {tag!r}")


def tags(store: Path) -> dict[str, str]:
    return {
        str(
            oci.Descriptor.from_json(e).annotations.get(oci.ANN_REF_NAME)
        ): oci.Descriptor.from_json(e).digest
        for e in _entries(store)
    }
