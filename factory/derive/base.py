"""The base image of a derived build: resolved once to a digest, and checked to be ours.

A base is named by a registry reference (`host/repo:tag`, `host/repo@sha256:...`) or a
local layout (`oci:DIR`, `oci:DIR:TAG`, optionally `@sha256:...`). A tag is resolved
once: the digest found is what the image records and what a rebuild pulls. An image
that does not carry reprobase's self-description is refused: its packages and bytes
are not pinned, so nothing built on it could be.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from factory.common.arch import Architecture
from factory.common.errors import UserError
from factory.image import oci
from factory.image.config import LABEL_PREFIX
from factory.image.selfdesc import platform_arch, top_descriptor
from factory.registry.fetch import fetch
from factory.source.origin import Origin

_DIGEST = re.compile(r"@(sha256:[0-9a-f]{64})$")
ANN_SNAPSHOT = LABEL_PREFIX + "snapshot"
ANN_SDE = LABEL_PREFIX + "source-date-epoch"


@dataclass(frozen=True)
class BasePlatform:
    arch: Architecture
    manifest: oci.Descriptor
    manifest_json: dict[str, Any]
    config: dict[str, Any]

    @property
    def layers(self) -> list[dict[str, Any]]:
        return list(self.manifest_json.get("layers") or [])

    @property
    def diff_ids(self) -> list[str]:
        return list((self.config.get("rootfs") or {}).get("diff_ids") or [])


@dataclass(frozen=True)
class BaseImage:
    reference: str  # as written (FROM or --from)
    digest: str  # the image's top digest (index, or manifest for a single platform)
    layout: Path  # a local layout holding it
    title: str  # its org.opencontainers.image.title, e.g. debian:bookworm-slim
    snapshot: str
    source_date_epoch: int
    packages_from: Origin
    suite: str | None
    platforms: tuple[BasePlatform, ...]

    @property
    def pinned_reference(self) -> str:
        """The reference with the digest it resolved to: what a rebuild pulls."""
        return _DIGEST.sub("", self.reference).removesuffix(":") + "@" + self.digest

    def platform(self, arch: Architecture) -> BasePlatform:
        for p in self.platforms:
            if p.arch is arch:
                return p
        have = ", ".join(p.arch.debian for p in self.platforms)
        raise UserError(
            f"the base {self.title} ({self.reference}) has no {arch.debian} image",
            hint=f"it has: {have}; choose --arch from those",
        )


def split_digest(reference: str) -> tuple[str, str | None]:
    """Pure: 'REF@sha256:...' -> (REF, digest); anything else -> (REF, None)."""
    m = _DIGEST.search(reference)
    if m and reference.startswith("oci:"):
        return reference[: m.start()], m.group(1)
    return reference, m.group(1) if m else None


def check_ours(annotations: dict[str, str], reference: str) -> None:
    """Pure: refuse an image without reprobase's pin (snapshot and SOURCE_DATE_EPOCH)."""
    if ANN_SNAPSHOT not in annotations or not annotations.get(ANN_SDE, "").isdigit():
        raise UserError(
            f"FROM {reference}: not a reprobase image (no {ANN_SNAPSHOT} annotation): "
            "its packages are not pinned",
            hint="build FROM one of ours, e.g. reprobase build debian:bookworm-slim",
        )
    origin = Origin.from_label(annotations.get(LABEL_PREFIX + "packages-from"), reference)
    if origin is Origin.MIRROR:  # a recorded mirror is frozen per timestamp: pinned
        raise UserError(
            f"FROM {reference}: the base was built from a plain mirror, not pinned to a "
            "snapshot, so an image built on it cannot be either",
            hint="build the base from snapshot.debian.org (or a recorded mirror)",
        )


def _suite(annotations: dict[str, str]) -> str | None:
    import json

    try:
        recipe = json.loads(annotations.get(LABEL_PREFIX + "recipe", "{}"))
    except ValueError:
        return None
    suite = recipe.get("suite") if isinstance(recipe, dict) else None
    return str(suite) if suite else annotations.get(LABEL_PREFIX + "suite")


def read_base(reference: str, layout: Path, tag: str | None, want: str | None) -> BaseImage:
    """The base image in a local layout, checked (pure but for reading the layout)."""
    top = top_descriptor(layout, tag)
    if want is not None and top.digest != want:
        raise UserError(
            f"FROM {reference}: the image there is {top.digest}, not the pinned {want}",
            hint="the tag moved or the layout was rebuilt: pin the digest you mean",
        )
    obj = oci.read_json_blob(layout, top.digest)
    ann = {str(k): str(v) for k, v in (obj.get("annotations") or {}).items()}
    check_ours(ann, reference)
    if top.media_type in (oci.MT_INDEX, oci.DOCKER_LIST):
        descs = [oci.Descriptor.from_json(m) for m in obj.get("manifests", [])]
    else:
        descs = [top]
    platforms = []
    for d in descs:
        man = oci.read_json_blob(layout, d.digest)
        cfg = oci.read_json_blob(layout, man["config"]["digest"])
        platforms.append(BasePlatform(platform_arch(cfg), d, man, cfg))
    return BaseImage(
        reference=reference,
        digest=top.digest,
        layout=layout,
        title=ann.get("org.opencontainers.image.title", reference),
        snapshot=ann[ANN_SNAPSHOT],
        source_date_epoch=int(ann[ANN_SDE]),
        packages_from=Origin.from_label(ann.get(LABEL_PREFIX + "packages-from"), reference),
        suite=_suite(ann),
        platforms=tuple(platforms),
    )


def resolve_base(reference: str, workdir: Path) -> BaseImage:
    """Fetch (a registry reference) or open (a layout) the base, once, and check it."""
    ref, want = split_digest(reference)
    if not ref.startswith("oci:") and "/" not in ref.split("@")[0]:
        raise UserError(
            f"FROM {reference}: name the registry (host[:port]/repository[:tag]) or a local "
            "layout (oci:DIR[:TAG])",
            hint="short names are resolved by registries.conf, differently on each machine",
        )
    if (
        ref.startswith("oci:")
        and not Path(ref[4:].rsplit(":", 1)[0]).exists()
        and not Path(ref[4:]).exists()
    ):
        raise UserError(f"FROM {reference}: no such OCI layout directory")
    layout, tag = fetch(ref, workdir)
    return read_base(reference, layout, tag, want)


def platform_layout(base: BaseImage, arch: Architecture, dest: Path) -> str:
    """A layout holding only arch's manifest (hard links to the base's blobs), for buildah:
    the transport reference `oci:DEST:base`. No platform choice is left to buildah."""
    p = base.platform(arch)
    (dest / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
    oci.init_layout(dest)
    for desc in [p.manifest, oci.Descriptor.from_json(p.manifest_json["config"])] + [
        oci.Descriptor.from_json(x) for x in p.layers
    ]:
        src = oci.verify_blob(base.layout, desc) if desc is not p.manifest else None
        src = src or oci.blob_path(base.layout, desc.digest)
        target = oci.blob_path(dest, desc.digest)
        if not target.exists():
            try:
                os.link(src, target)
            except OSError:
                shutil.copyfile(src, target)
    top = oci.Descriptor(
        oci.MT_MANIFEST, p.manifest.digest, p.manifest.size, {oci.ANN_REF_NAME: "base"}
    )
    oci.write_index(dest, [top], {})
    return f"oci:{dest}:base"
