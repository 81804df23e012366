"""What to push from an OCI image layout: pure decisions over the layout's JSON.

The push order is the distribution spec's (§Pushing Manifests: "the registry MAY
reject a manifest ... if it references manifests or blobs that do not exist"):
blobs first, then image manifests, then the index that lists them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from factory.common.errors import UserError
from factory.image.oci import (
    ANN_REF_NAME,
    DOCKER_LIST,
    DOCKER_MANIFEST,
    MT_INDEX,
    MT_MANIFEST,
    Descriptor,
    read_blob,
    read_index,
)

INDEX_TYPES = (MT_INDEX, DOCKER_LIST)
MANIFEST_TYPES = (MT_MANIFEST, DOCKER_MANIFEST)


@dataclass(frozen=True)
class StoredManifest:
    descriptor: Descriptor
    data: bytes  # the exact bytes in the layout: their digest is the descriptor's


@dataclass(frozen=True)
class PushPlan:
    top: StoredManifest
    blobs: tuple[Descriptor, ...]  # configs and layers, each once
    manifests: tuple[StoredManifest, ...]  # children before parents, top last

    @property
    def total_bytes(self) -> int:
        return sum(b.size for b in self.blobs)


def select_top(index: dict[str, Any], names: Sequence[str], layout: Path) -> Descriptor:
    """index.json's entry to push: the only one, or the one whose ref.name matches."""
    entries = [Descriptor.from_json(d) for d in index.get("manifests", [])]
    if not entries:
        raise UserError(f"{layout}: index.json lists no image")
    if len(entries) == 1:
        return entries[0]
    matches = [e for e in entries if e.annotations.get(ANN_REF_NAME) in names]
    if len(matches) != 1:
        found = sorted({e.annotations.get(ANN_REF_NAME, "?") for e in entries})
        raise UserError(
            f"{layout}: index.json lists {len(entries)} images, {len(matches)} match {list(names)}",
            hint=f"name one of {found} as the reference's tag",
        )
    return matches[0]


def plan_push(layout: Path, names: Sequence[str] = ()) -> PushPlan:
    top_desc = select_top(read_index(layout), names, layout)
    if top_desc.media_type not in INDEX_TYPES + MANIFEST_TYPES:
        raise UserError(
            f"{layout}: top-level entry has unsupported media type {top_desc.media_type}"
        )
    blobs: dict[str, Descriptor] = {}
    manifests: dict[str, StoredManifest] = {}
    _walk(layout, top_desc, blobs, manifests)
    top = manifests.pop(top_desc.digest)
    return PushPlan(top, tuple(blobs.values()), (*manifests.values(), top))


def _walk(
    layout: Path,
    desc: Descriptor,
    blobs: dict[str, Descriptor],
    manifests: dict[str, StoredManifest],
) -> None:
    if desc.digest in manifests:
        return
    data = read_blob(layout, desc.digest)
    if len(data) != desc.size:
        raise UserError(
            f"{layout}: {desc.digest} has {len(data)} bytes, its descriptor says {desc.size}"
        )
    obj = json.loads(data)
    if desc.media_type in INDEX_TYPES:
        for child in obj.get("manifests", []):
            _walk(layout, Descriptor.from_json(child), blobs, manifests)
    else:
        for d in [obj["config"], *obj.get("layers", [])]:
            b = Descriptor.from_json(d)
            blobs.setdefault(b.digest, b)
    manifests[desc.digest] = StoredManifest(desc, data)  # after its children: push order
