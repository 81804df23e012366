"""`docker save` archives (manifest.json + config + layer tars), seen as an OCI image.

The archive has no manifests or index of its own: they are synthesised here in
canonical JSON, with each layer's digest computed from its bytes, so that the rest of
the comparison is the same as for an OCI layout.
"""

from __future__ import annotations

from typing import Any

from factory.common.canonical import canonical_json, sha256_digest
from factory.common.errors import UserError
from factory.diffing.stores import TarTree, hash_stream, parse_json
from factory.diffing.streams import Opener, StreamCodec
from factory.image import oci

LAYER_TYPES = {
    StreamCodec.GZIP: oci.MT_LAYER_GZIP,
    StreamCodec.ZSTD: oci.MT_LAYER_ZSTD,
    StreamCodec.NONE: oci.MT_LAYER_TAR,
}


class DockerStore:
    def __init__(self, tree: TarTree) -> None:
        self.tree = tree
        self.label = tree.label
        self.blobs: dict[str, bytes] = {}
        self.layers: dict[str, Opener] = {}
        entries = parse_json(
            self.label, "manifest.json", b'{"m":' + tree.read("manifest.json") + b"}"
        )
        if not isinstance(entries["m"], list):
            raise UserError(f"{self.label}: manifest.json is not a list of images")
        descs = [self._image(e) for e in entries["m"]]
        self._index = {"schemaVersion": 2, "mediaType": oci.MT_INDEX, "manifests": descs}

    def _image(self, entry: dict[str, Any]) -> dict[str, Any]:
        config = self.tree.read(entry["Config"])
        cfg_digest = sha256_digest(config)
        self.blobs[cfg_digest] = config
        layers = []
        for name in entry.get("Layers", []):
            opener = self.tree.opener(name)
            digest, head = hash_stream(opener)
            self.layers[digest] = opener
            mt = LAYER_TYPES[StreamCodec.sniff(head)]
            layers.append({"mediaType": mt, "digest": digest, "size": self.tree.size(name)})
        manifest = {
            "schemaVersion": 2,
            "mediaType": oci.MT_MANIFEST,
            "config": {"mediaType": oci.MT_CONFIG, "digest": cfg_digest, "size": len(config)},
            "layers": layers,
        }
        data = canonical_json(manifest)
        digest = sha256_digest(data)
        self.blobs[digest] = data
        desc: dict[str, Any] = {"mediaType": oci.MT_MANIFEST, "digest": digest, "size": len(data)}
        cfg = parse_json(self.label, entry["Config"], config)
        desc["platform"] = {
            k: v
            for k, v in (
                ("os", cfg.get("os")),
                ("architecture", cfg.get("architecture")),
                ("variant", cfg.get("variant")),
            )
            if v
        }
        if entry.get("RepoTags"):
            desc["annotations"] = {oci.ANN_REF_NAME: entry["RepoTags"][0]}
        return desc

    def index(self) -> dict[str, Any]:
        return self._index

    def read_json(self, digest: str) -> dict[str, Any]:
        if digest not in self.blobs:
            raise UserError(f"{self.label}: no blob {digest} in the docker archive")
        return parse_json(self.label, f"blob {digest}", self.blobs[digest])

    def verify(self, desc: dict[str, Any]) -> None:
        """Nothing to check: a docker save archive names its blobs by the digests we
        computed from their bytes when the archive was opened."""

    def opener(self, digest: str) -> Opener:
        if digest not in self.layers:
            raise UserError(f"{self.label}: no layer {digest} in the docker archive")
        return self.layers[digest]
