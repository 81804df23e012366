"""What a derived image records, and its config, manifest and index: pure, canonical.

The image says how to rebuild it, from the reference alone: the Containerfile's text,
the build arguments, the base (as written and the digest it resolved to), the
SOURCE_DATE_EPOCH, the snapshot the base is pinned to, the build context (its digest,
and the context itself when small; a larger one travels as an OCI referrer) and the
versions of the tools that determine its bytes (reprobase and its compressor).

buildah's version is deliberately *not* in the image: buildah's output never reaches
the image's bytes (factory.derive.reserialise, and `settings` below), so its version
is no input of the digest; the build report (JSON, and the referrer on --push) says
which buildah ran.

From buildah's config only the Containerfile's settings are taken (SETTINGS): what
ENV, CMD, ENTRYPOINT, WORKDIR, USER, EXPOSE, VOLUME, STOPSIGNAL and LABEL asked for.
Its `created`, `history`, `author`, identity label and any field a later buildah adds
are dropped; `created` and the history entry are ours, from SOURCE_DATE_EPOCH.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from typing import Any

from factory import __version__
from factory.common.arch import Architecture
from factory.common.canonical import canonical_json
from factory.common.errors import UserError
from factory.image import oci
from factory.image.config import LABEL_PREFIX
from factory.image.layer import LayerResult
from factory.source.snapshot import Timestamp

KIND = LABEL_PREFIX + "kind"
DERIVED = "derived"
P = LABEL_PREFIX + "derived."
SETTINGS = (
    "Cmd", "Entrypoint", "Env", "ExposedPorts", "Labels", "StopSignal", "User", "Volumes",
    "WorkingDir",
)  # fmt: skip
BUILDER_LABELS = ("io.buildah.version",)  # what buildah adds by itself
BASE_ANN_NAME = "org.opencontainers.image.base.name"
BASE_ANN_DIGEST = "org.opencontainers.image.base.digest"


@dataclass(frozen=True)
class DerivedSpec:
    """Everything a rebuild needs; written as annotations, read back by reproduce."""

    containerfile: str
    build_args: tuple[tuple[str, str], ...]  # sorted
    base: str  # as written in FROM (or --from)
    base_digest: str
    base_title: str
    snapshot: str
    source_date_epoch: int
    packages_from: str
    tag: str
    arches: tuple[Architecture, ...]
    context_digest: str
    context_embedded: str | None  # base64 gzip, or None: a referrer carries it
    compressor: str
    reprobase: str = __version__

    @property
    def created(self) -> str:
        return Timestamp.from_epoch(self.source_date_epoch).when.strftime("%Y-%m-%dT%H:%M:%SZ")

    def rebuild_command(self) -> str:
        argv = ["reprobase", "build", "-f", "Containerfile", "--context", "."]
        for k, v in self.build_args:
            argv += ["--build-arg", f"{k}={v}"]
        argv += ["--tag", self.tag, "--arch", ",".join(a.debian for a in self.arches)]
        return shlex.join(argv)

    def annotations(self) -> dict[str, str]:
        ann = {
            "org.opencontainers.image.created": self.created,
            "org.opencontainers.image.title": self.tag,
            "org.opencontainers.image.vendor": "reprobase",
            BASE_ANN_NAME: self.base_title,
            BASE_ANN_DIGEST: self.base_digest,
            KIND: DERIVED,
            LABEL_PREFIX + "snapshot": self.snapshot,
            LABEL_PREFIX + "source-date-epoch": str(self.source_date_epoch),
            LABEL_PREFIX + "packages-from": self.packages_from,
            LABEL_PREFIX + "version": self.reprobase,
            LABEL_PREFIX + "compressor": self.compressor,
            P + "containerfile": self.containerfile,
            P + "build-args": canonical_json(dict(self.build_args)).decode(),
            P + "base": self.base,
            P + "tag": self.tag,
            P + "context.digest": self.context_digest,
            P + "rebuild": "reprobase reproduce IMAGE",
        }
        if self.context_embedded is not None:
            ann[P + "context"] = self.context_embedded
        return ann

    @classmethod
    def from_annotations(
        cls, ann: dict[str, str], arches: tuple[Architecture, ...], where: str
    ) -> DerivedSpec:
        try:
            args = json.loads(ann[P + "build-args"])
            return cls(
                containerfile=ann[P + "containerfile"],
                build_args=tuple(sorted((str(k), str(v)) for k, v in args.items())),
                base=ann[P + "base"],
                base_digest=ann[BASE_ANN_DIGEST],
                base_title=ann.get(BASE_ANN_NAME, ""),
                snapshot=ann[LABEL_PREFIX + "snapshot"],
                source_date_epoch=int(ann[LABEL_PREFIX + "source-date-epoch"]),
                packages_from=ann.get(LABEL_PREFIX + "packages-from", ""),
                tag=ann[P + "tag"],
                arches=arches,
                context_digest=ann[P + "context.digest"],
                context_embedded=ann.get(P + "context"),
                compressor=ann.get(LABEL_PREFIX + "compressor", ""),
                reprobase=ann.get(LABEL_PREFIX + "version", ""),
            )
        except (KeyError, ValueError, AttributeError) as exc:
            raise UserError(
                f"{where}: a derived image without its full self-description ({exc})",
                hint="only images built by `reprobase build -f` can be reproduced this way",
            ) from None


def is_derived(ann: dict[str, Any]) -> bool:
    return ann.get(KIND) == DERIVED


def settings(builder_config: dict[str, Any], base_config: dict[str, Any]) -> dict[str, Any]:
    """Pure: the Containerfile's settings from buildah's config; nothing else of it."""
    inner = builder_config.get("config") or {}
    base_labels = (base_config.get("config") or {}).get("Labels") or {}
    out = {k: inner[k] for k in SETTINGS if inner.get(k) not in (None, [], {}, "")}
    labels = {
        k: v
        for k, v in (out.get("Labels") or {}).items()
        if k not in BUILDER_LABELS
        # the base's own self-description describes the base, not this image
        and not (k.startswith(LABEL_PREFIX) and base_labels.get(k) == v)
        and not (k.startswith("org.opencontainers.image.") and base_labels.get(k) == v)
    }
    if labels:
        out["Labels"] = labels
    else:
        out.pop("Labels", None)
    return out


def check_no_proxy(cfg: dict[str, Any], proxy: str | None) -> None:
    """The proxy reaches the steps only: never the config (Env, labels, anything)."""
    text = canonical_json(cfg).decode()
    for word in ("http_proxy=", "HTTP_PROXY=", "https_proxy=", "HTTPS_PROXY="):
        if word in text:
            raise UserError(
                f"the image config would set {word.rstrip('=')}",
                hint="do not set proxy variables with ENV: reprobase passes the proxy to "
                "RUN steps at build time only",
            )
    if proxy and proxy.rstrip("/") in text:
        raise UserError("the image config would hold the build-time proxy address")


def derived_config(
    spec: DerivedSpec,
    base_config: dict[str, Any],
    builder_config: dict[str, Any],
    layer: LayerResult | None,
    arch: Architecture,
) -> dict[str, Any]:
    inner = settings(builder_config, base_config)
    labels = dict(inner.get("Labels") or {})
    labels[KIND] = DERIVED
    labels[BASE_ANN_DIGEST] = spec.base_digest
    labels[LABEL_PREFIX + "source-date-epoch"] = str(spec.source_date_epoch)
    labels[P + "context.digest"] = spec.context_digest
    inner["Labels"] = labels
    diff_ids = list((base_config.get("rootfs") or {}).get("diff_ids") or [])
    entry: dict[str, Any] = {
        "created": spec.created,
        "created_by": spec.rebuild_command(),
        "comment": f"reprobase {spec.reprobase}, {spec.compressor}; FROM {spec.base_title} "
        f"{spec.base_digest}; rebuild: reprobase reproduce IMAGE",
    }
    if layer is None:
        entry["empty_layer"] = True
    else:
        diff_ids.append(layer.diff_id)
    return {
        **arch.to_oci(),
        "created": spec.created,
        "config": inner,
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [*(base_config.get("history") or []), entry],
    }


def derived_manifest(
    spec: DerivedSpec,
    config: oci.Descriptor,
    base_manifest: dict[str, Any],
    base_manifest_digest: str,
    layer: oci.Descriptor | None,
) -> dict[str, Any]:
    """The base's layer descriptors verbatim (their digests unchanged), then ours."""
    layers = list(base_manifest.get("layers") or [])
    if layer is not None:
        layers.append(layer.to_json())
    ann = spec.annotations()
    ann[BASE_ANN_DIGEST] = base_manifest_digest  # the spec's meaning: the manifest built on
    return {
        "schemaVersion": 2,
        "mediaType": oci.MT_MANIFEST,
        "config": config.to_json(),
        "layers": layers,
        "annotations": ann,
    }


def derived_index(spec: DerivedSpec, manifests: list[oci.Descriptor]) -> dict[str, Any]:
    return {
        "schemaVersion": 2,
        "mediaType": oci.MT_INDEX,
        "manifests": [m.to_json() for m in manifests],
        "annotations": spec.annotations(),
    }
