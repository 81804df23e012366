"""A root filesystem tar to an OCI image: canonical layer, config, manifest, index.

Everything after mmdebstrap, and nothing that depends on how the tar was made: the same
tar, recipe, pin and provenance give the same digests on every machine (the golden
image test, tests/test_image_chain.py, holds this to fixed bytes).
"""

from __future__ import annotations

import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from factory.common.arch import Architecture
from factory.image import oci
from factory.image.compress import Compression
from factory.image.config import (
    Provenance,
    common_annotations,
    image_config,
    image_index,
    image_manifest,
)
from factory.image.layer import LayerResult, write_layer_from
from factory.recipes.recipe import Recipe
from factory.rootfs.packages import Package, packages_digest, packages_in
from factory.source.snapshot import Timestamp


@dataclass(frozen=True)
class ArchImage:
    arch: Architecture
    manifest: oci.Descriptor
    config_digest: str
    layer: LayerResult
    packages: list[Package] = field(compare=False)
    oci_seconds: float = field(default=0.0, compare=False)


def assemble_arch(
    layout: Path,
    recipe: Recipe,
    pin: Timestamp,
    arch: Architecture,
    prov: Provenance,
    rootfs_tar: Path | BinaryIO,
) -> ArchImage:
    """One architecture's layer, config and manifest into `layout` (already initialised).
    rootfs_tar: a file, or an open seekable stream (mmdebstrap's tar, held in memory)."""
    compression = Compression.parse(recipe.compression)
    tmp_blob = layout / "blobs" / "sha256" / f".layer-{arch.debian}.tmp"
    # one parse of the tar serves the layer and the package set
    with _open_tar(rootfs_tar) as tf, tmp_blob.open("wb") as out:
        layer = write_layer_from(tf, out, compression, pin.epoch, spool_dir=tmp_blob.parent)
        pkgs = packages_in(tf)
    oci.add_blob_file(layout, tmp_blob, layer.digest)
    started = time.monotonic()
    cfg = image_config(recipe, pin, arch, layer, prov, packages_digest(pkgs))
    cfg_desc = oci.write_json_blob(layout, cfg, oci.MT_CONFIG)
    layer_desc = oci.Descriptor(compression.media_type, layer.digest, layer.size)
    man = image_manifest(cfg_desc, layer_desc, common_annotations(recipe, pin, prov))
    man_desc = oci.write_json_blob(layout, man, oci.MT_MANIFEST, platform=arch.to_oci())
    return ArchImage(arch, man_desc, cfg_desc.digest, layer, pkgs, time.monotonic() - started)


def _open_tar(src: Path | BinaryIO) -> tarfile.TarFile:
    if isinstance(src, Path):
        return tarfile.open(src, "r:")
    src.seek(0)
    return tarfile.open(fileobj=src, mode="r:")


def assemble_index(
    layout: Path,
    recipe: Recipe,
    pin: Timestamp,
    prov: Provenance,
    images: list[ArchImage],
) -> oci.Descriptor:
    """The image index over every architecture (canonical order), tagged with the recipe's
    tag in index.json. Returns the index's descriptor (its digest is the image's)."""
    by_arch = {i.arch: i for i in images}
    manifests = [by_arch[a].manifest for a in Architecture.ordered(by_arch)]
    idx = image_index(manifests, common_annotations(recipe, pin, prov))
    idx_desc = oci.write_json_blob(layout, idx, oci.MT_INDEX)
    top = oci.Descriptor(
        idx_desc.media_type, idx_desc.digest, idx_desc.size,
        annotations={oci.ANN_REF_NAME: recipe.tag},
    )  # fmt: skip
    oci.write_index(layout, [top], {})
    return idx_desc
