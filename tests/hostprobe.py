"""Every digest of reprobase's byte path from fixed inputs, as one JSON object on stdout.

Run as a script by tests/test_hostindep.py under other CPU models (qemu-x86_64-static
-cpu MODEL), an arm64 Python (an arm64 chroot through qemu-aarch64-static) and trixie's
Python; it needs only the standard library, factory/ (and cache_proxy's error type) and
the compressor wheels, no pytest and no mmdebstrap. Its output must equal
tests/golden/byte-path.json everywhere.
"""

from __future__ import annotations

import io
import json
import platform
import sys
import tarfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from factory.common.arch import Architecture
from factory.common.canonical import canonical_json, sha256_digest
from factory.image import oci
from factory.image.compress import Compression
from factory.image.config import (
    Provenance,
    common_annotations,
    image_config,
    image_index,
    image_manifest,
)
from factory.image.layer import write_layer_from
from factory.image.selftest import EPOCH, answers, sample_bytes, sample_tar
from factory.recipes.recipe import Recipe, SlimRules
from factory.source.origin import Origin
from factory.source.snapshot import Timestamp

PIN = Timestamp.parse("20261129T000000Z")
RECIPE = Recipe(
    name="debian",
    tag="golden",
    suite="bookworm",
    architectures=("amd64", "arm64"),
    description="golden image: fixed inputs, no mmdebstrap",
    slim=SlimRules(
        path_exclude=("/usr/share/doc/*",), path_include=("/usr/share/doc/*/copyright",)
    ),
)


def image(comp: Compression) -> dict[str, str]:
    """Config, manifest and index digests of a two-architecture image of fixed layers."""
    assert PIN.epoch == EPOCH
    prov = Provenance(Origin.SNAPSHOT, None, "1.3.5", comp.describe())
    ann = common_annotations(RECIPE, PIN, prov)
    manifests = []
    out: dict[str, str] = {}
    for arch in (Architecture.AMD64, Architecture.ARM64):
        with tarfile.open(fileobj=io.BytesIO(sample_tar()), mode="r:") as src:
            blob = io.BytesIO()
            layer = write_layer_from(src, blob, comp, PIN.epoch)
        cfg = canonical_json(image_config(RECIPE, PIN, arch, layer, prov, "sha256:" + "0" * 64))
        cfg_desc = oci.Descriptor(oci.MT_CONFIG, sha256_digest(cfg), len(cfg))
        layer_desc = oci.Descriptor(comp.media_type, layer.digest, layer.size)
        man = canonical_json(image_manifest(cfg_desc, layer_desc, ann))
        manifests.append(
            oci.Descriptor(oci.MT_MANIFEST, sha256_digest(man), len(man), platform=arch.to_oci())
        )
        out[f"{arch.debian}:config"] = cfg_desc.digest
        out[f"{arch.debian}:manifest"] = manifests[-1].digest
    out["index"] = sha256_digest(canonical_json(image_index(manifests, ann)))
    return out


def probe() -> dict[str, Any]:
    big = memoryview(sample_bytes(4 << 20, b"big"))
    return {
        "answers": answers(),
        "sample-4MiB": {c.format: sha256_digest(b"".join(c.encode(big))) for c in Compression},
        "image": {c.format: image(c) for c in Compression},
    }


def host() -> dict[str, str]:
    return {"python": platform.python_version(), "machine": platform.machine()}


if __name__ == "__main__":
    print(json.dumps({"digests": probe(), "host": host()}, sort_keys=True))
