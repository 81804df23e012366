"""Image metadata: config, manifest and index JSON, and what makes an image self-describing.

Pure functions from build facts to JSON objects; factory.image.oci writes them.
Nothing here may read the clock or the host: `created` is SOURCE_DATE_EPOCH.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Any

from factory import __version__
from factory.common.arch import Architecture
from factory.common.canonical import canonical_json
from factory.common.paths import DEBIAN_PATH
from factory.image.layer import LayerResult
from factory.image.oci import MT_INDEX, MT_MANIFEST, Descriptor
from factory.recipes.recipe import Recipe
from factory.source.origin import NO_SECURITY, Origin
from factory.source.snapshot import Timestamp, snapshot_url

LABEL_PREFIX = "org.reprobase."


@dataclass(frozen=True)
class Provenance:
    """Where the packages came from and which tools made the bytes."""

    packages_from: Origin
    mirror: str | None  # the mirror's URL when not snapshot.debian.org (never a loopback proxy)
    mmdebstrap: str
    compressor: str  # e.g. "gzip level 4 (deflate 0.9.0)"
    # mirror builds only: the security archive used, or NO_SECURITY (said in the image)
    security_mirror: str | None = None

    def pin_statement(self) -> str:
        """What the packages really came from, in words (the description says it)."""
        return self.packages_from.pin_statement(self.mirror, self.security_mirror)


def iso(ts: Timestamp) -> str:
    return ts.when.strftime("%Y-%m-%dT%H:%M:%SZ")


def rebuild_command(
    recipe: Recipe, pin: Timestamp, arches: list[Architecture], prov: Provenance
) -> str:
    argv = [
        "reprobase",
        "build",
        recipe.ref,
        "--snapshot",
        pin.text,
        "--arch",
        ",".join(a.debian for a in arches),
    ]
    argv += prov.packages_from.rebuild_flags(prov.mirror, prov.security_mirror)
    return shlex.join(argv)


def common_annotations(recipe: Recipe, pin: Timestamp, prov: Provenance) -> dict[str, str]:
    """Standard org.opencontainers.image.* annotations (annotations.md) plus our recipe."""
    ann = {
        "org.opencontainers.image.created": iso(pin),
        "org.opencontainers.image.title": recipe.ref,
        "org.opencontainers.image.description": recipe.description or recipe.ref,
        "org.opencontainers.image.version": f"{recipe.tag}-{pin.text}",
        "org.opencontainers.image.source": snapshot_url("debian", pin),
        "org.opencontainers.image.licenses": "LicenseRef-Debian-DFSG",
        "org.opencontainers.image.vendor": "reprobase",
        LABEL_PREFIX + "recipe": canonical_json(recipe.to_json()).decode(),
        LABEL_PREFIX + "recipe.digest": recipe.digest(),
        LABEL_PREFIX + "snapshot": pin.text,
        LABEL_PREFIX + "source-date-epoch": str(pin.epoch),
        LABEL_PREFIX + "version": __version__,
        LABEL_PREFIX + "mmdebstrap.version": prov.mmdebstrap,
        LABEL_PREFIX + "compressor": prov.compressor,
        LABEL_PREFIX + "packages-from": prov.packages_from.value,
    }
    if prov.mirror:
        ann[LABEL_PREFIX + "mirror"] = prov.mirror
    if not prov.packages_from.pinned:
        # Say what the packages really came from: never "snapshot.debian.org" for a mirror.
        # (a recipe's own claim of a snapshot pin is dropped: it is not true of this build)
        desc = ann["org.opencontainers.image.description"]
        desc = desc.replace("pinned to snapshot.debian.org", "").strip().rstrip(",").strip()
        ann["org.opencontainers.image.description"] = f"{desc} ({prov.pin_statement()})"
        if prov.mirror:
            ann["org.opencontainers.image.source"] = prov.mirror
    if prov.packages_from is Origin.MIRROR:
        ann[LABEL_PREFIX + "security-mirror"] = prov.security_mirror or NO_SECURITY
    return ann


def image_config(
    recipe: Recipe,
    pin: Timestamp,
    arch: Architecture,
    layer: LayerResult,
    prov: Provenance,
    packages_digest: str,
) -> dict[str, Any]:
    labels = common_annotations(recipe, pin, prov)
    labels[LABEL_PREFIX + "architecture"] = arch.debian
    labels[LABEL_PREFIX + "packages.digest"] = packages_digest
    cmd = rebuild_command(recipe, pin, [arch], prov)
    labels[LABEL_PREFIX + "rebuild"] = cmd
    cfg: dict[str, Any] = {
        **arch.to_oci(),
        "created": iso(pin),
        "config": {"Env": [f"PATH={DEBIAN_PATH}"], "Cmd": ["bash"], "Labels": labels},
        "rootfs": {"type": "layers", "diff_ids": [layer.diff_id]},
        "history": [
            {
                "created": iso(pin),
                "created_by": cmd,
                "comment": f"mmdebstrap {prov.mmdebstrap}, {prov.compressor}; "
                f"recipe {recipe.digest()}; rebuild: reprobase reproduce IMAGE",
            }
        ],
    }
    return cfg


def image_manifest(
    config: Descriptor, layer: Descriptor, annotations: dict[str, str]
) -> dict[str, Any]:
    return {
        "schemaVersion": 2,
        "mediaType": MT_MANIFEST,
        "config": config.to_json(),
        "layers": [layer.to_json()],
        "annotations": annotations,
    }


def image_index(manifests: list[Descriptor], annotations: dict[str, str]) -> dict[str, Any]:
    return {
        "schemaVersion": 2,
        "mediaType": MT_INDEX,
        "manifests": [m.to_json() for m in manifests],
        "annotations": annotations,
    }
