"""`--output-archive FILE`: one tar that `docker load` and `podman load` both accept.

The tar is an OCI image layout (oci-layout, index.json, blobs/sha256/...) with a
docker-archive `manifest.json` beside it pointing into the same blobs: docker >= 25
and podman read the layout (`index.json`, all platforms); older docker reads
`manifest.json` (one platform: the host's, else the first). Docker's loader and
containers/image both accept gzip'd layer files in manifest.json, so no blob is
rewritten and the bytes stay the built ones.

The tar itself is reproducible: sorted members, mtime 0, numeric owner 0, fixed modes.
"""

from __future__ import annotations

import io
import json
import platform
import tarfile
from pathlib import Path
from typing import Any

from factory.common import outputs
from factory.common.canonical import canonical_json
from factory.common.errors import UserError
from factory.image.oci import (
    ANN_REF_NAME,
    LAYOUT_VERSION,
    MT_INDEX,
    Descriptor,
    read_blob,
    verify_blob,
)
from factory.registry.layout import INDEX_TYPES, plan_push
from factory.registry.reference import parse_reference

ANN_CONTAINERD_NAME = "io.containerd.image.name"  # what docker save writes for the full name
_MACHINE_TO_OCI = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le"}


def host_architecture() -> str:
    machine = platform.machine()
    return _MACHINE_TO_OCI.get(machine, machine)


def _pick_manifest(layout: Path, top: Descriptor, arch: str) -> dict[str, Any]:
    """The image manifest docker-archive's manifest.json describes."""
    if top.media_type not in INDEX_TYPES:
        return json.loads(read_blob(layout, top.digest))  # type: ignore[no-any-return]
    entries = [
        Descriptor.from_json(d) for d in json.loads(read_blob(layout, top.digest))["manifests"]
    ]
    if not entries:
        raise UserError(f"{layout}: the image index lists no manifest")
    chosen = next(
        (e for e in entries if (e.platform or {}).get("architecture") == arch), entries[0]
    )
    return _pick_manifest(layout, chosen, arch)


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), 0, 0o644
    tar.addfile(info, io.BytesIO(data))


def _add_dir(tar: tarfile.TarFile, name: str) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.mtime, info.mode = tarfile.DIRTYPE, 0, 0o755
    tar.addfile(info)


def write_archive(
    layout: Path,
    out: Path,
    ref_name: str,
    *,
    arch: str | None = None,
    force: bool = False,
    image_tag: str | None = None,
) -> None:
    """Write layout's image (the one tagged image_tag, if given) as a docker-archive +
    OCI-layout tar at out, named ref_name."""
    ref = parse_reference(ref_name)
    tag = ref.tag or "latest"
    plan = plan_push(layout, [image_tag] if image_tag else [tag, ref_name])
    top = plan.top.descriptor
    full_name = str(ref.with_tag(tag))
    manifest = _pick_manifest(layout, top, arch or host_architecture())
    docker_manifest = [
        {
            "Config": f"blobs/sha256/{manifest['config']['digest'][7:]}",
            "RepoTags": [_docker_name(ref_name, tag)],
            "Layers": [f"blobs/sha256/{layer['digest'][7:]}" for layer in manifest["layers"]],
        }
    ]
    entry = Descriptor(
        top.media_type, top.digest, top.size, {ANN_CONTAINERD_NAME: full_name, ANN_REF_NAME: tag}
    )
    index = {"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": [entry.to_json()]}
    descs = {d.digest: d for d in plan.blobs} | {
        m.descriptor.digest: m.descriptor for m in plan.manifests
    }
    kind = outputs.OutputKind.ARCHIVE
    with (
        outputs.replacing(out, kind, force=force, flag="--output-archive") as tmp,
        tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar,
    ):
        _add_dir(tar, "blobs")
        _add_dir(tar, "blobs/sha256")
        for digest in sorted(descs):
            path = verify_blob(layout, descs[digest])  # a corrupt blob never goes out
            info = tarfile.TarInfo(f"blobs/sha256/{digest[7:]}")
            info.size, info.mtime, info.mode = descs[digest].size, 0, 0o644
            with path.open("rb") as f:
                tar.addfile(info, f)
        _add_bytes(tar, "index.json", canonical_json(index))
        _add_bytes(tar, "manifest.json", canonical_json(docker_manifest))
        _add_bytes(tar, "oci-layout", canonical_json({"imageLayoutVersion": LAYOUT_VERSION}))


def _docker_name(ref_name: str, tag: str) -> str:
    """RepoTags as the user wrote the name (docker shortens docker.io/library/ itself)."""
    base = ref_name.split("@", 1)[0]
    last = base.rsplit("/", 1)[-1]
    return base if ":" in last else f"{base}:{tag}"
