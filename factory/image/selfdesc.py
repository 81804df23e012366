"""Read an image's self-description: everything needed to rebuild it, from the image alone.

The image index (or manifest) annotations carry the recipe's canonical JSON, the
snapshot timestamp, SOURCE_DATE_EPOCH, where packages came from and the tool
versions; the manifests' platforms give the architectures.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from factory import __version__
from factory.common.arch import Architecture
from factory.common.errors import UserError
from factory.image import oci
from factory.image.config import LABEL_PREFIX
from factory.recipes.recipe import Recipe, recipe_from_dict
from factory.source.origin import Origin
from factory.source.snapshot import Timestamp


@dataclass(frozen=True)
class RebuildSpec:
    recipe: Recipe
    pin: Timestamp
    arches: tuple[Architecture, ...]
    packages_from: Origin
    mirror: str | None
    security_mirror: str | None  # mirror builds: the security archive, or "none"
    index_digest: str  # the digest a rebuild must reproduce
    versions: dict[str, str]  # tool versions the image was built with

    def version_warnings(self, mmdebstrap: str, compressor: str) -> list[str]:
        mine = {"reprobase": __version__, "mmdebstrap": mmdebstrap, "compressor": compressor}
        return [
            f"built with {k} {self.versions[k]!r}, this machine has {v!r}: "
            "a difference may come from that"
            for k, v in mine.items()
            if self.versions.get(k) not in (None, v)
        ]


def platform_arch(platform: dict[str, Any] | None) -> Architecture:
    p = platform or {}
    for a in Architecture:
        o = a.to_oci()
        # a missing variant matches (some tools omit arm64's "v8")
        if o["architecture"] == p.get("architecture") and p.get("variant") in (
            None,
            o.get("variant"),
        ):
            return a
    raise UserError(f"unsupported platform in image: {platform}")


def top_descriptor(layout: Path, tag: str | None = None) -> oci.Descriptor:
    entries = [oci.Descriptor.from_json(d) for d in oci.read_index(layout).get("manifests", [])]
    if tag is not None:
        tags = sorted({e.annotations.get(oci.ANN_REF_NAME, "") for e in entries} - {""})
        entries = [e for e in entries if e.annotations.get(oci.ANN_REF_NAME) == tag]
        if not entries:
            raise UserError(
                f"{layout}: no image tagged {tag!r}",
                hint=f"its tags: {', '.join(tags)}" if tags else "the layout names no tags",
            )
    if len(entries) != 1:
        names = [e.annotations.get(oci.ANN_REF_NAME, e.digest) for e in entries]
        raise UserError(
            f"{layout}: expected one image, found {len(entries)} {names}",
            hint="name one with LAYOUT:TAG",
        )
    return entries[0]


def read_spec(layout: Path, tag: str | None = None) -> RebuildSpec:
    top = top_descriptor(layout, tag)
    obj = oci.read_json_blob(layout, top.digest)
    ann: dict[str, str] = dict(obj.get("annotations") or {})
    if top.media_type in (oci.MT_INDEX, oci.DOCKER_LIST):
        arches = tuple(platform_arch(m.get("platform")) for m in obj.get("manifests", []))
    else:
        cfg = oci.read_json_blob(layout, obj["config"]["digest"])
        arches = (platform_arch(cfg),)
    if LABEL_PREFIX + "recipe" not in ann:
        raise UserError(
            f"{layout}: the image does not describe how to rebuild it "
            f"(no {LABEL_PREFIX}recipe annotation)",
            hint="only images built by reprobase can be reproduced",
        )
    recipe = recipe_from_dict(
        json.loads(ann[LABEL_PREFIX + "recipe"]), f"{layout} (embedded recipe)"
    )
    return RebuildSpec(
        recipe=recipe,
        pin=Timestamp.parse(ann[LABEL_PREFIX + "snapshot"]),
        arches=arches,
        packages_from=Origin.from_label(ann.get(LABEL_PREFIX + "packages-from"), str(layout)),
        mirror=ann.get(LABEL_PREFIX + "mirror"),
        security_mirror=ann.get(LABEL_PREFIX + "security-mirror"),
        index_digest=top.digest,
        versions={
            "reprobase": ann.get(LABEL_PREFIX + "version", ""),
            "mmdebstrap": ann.get(LABEL_PREFIX + "mmdebstrap.version", ""),
            "compressor": ann.get(LABEL_PREFIX + "compressor", ""),
        },
    )
