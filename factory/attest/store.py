"""Referrers kept in an OCI image layout, beside the image, outside its index.

An artifact is the same manifest a registry gets (factory.registry.referrers:
artifactType, empty config, one payload layer, `subject` = the image index). Its blobs go
to `blobs/sha256/` like any other; the list of them is `referrers.json` at the layout's
top, an OCI image index in the shape of the Referrers Tag Schema's (distribution-spec
1.1). index.json is never touched: tools that read the layout see one image, and the
image index digest stays what the double build made.
"""

from __future__ import annotations

import fcntl
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from factory.attest.kinds import ANN_KIND
from factory.common.canonical import canonical_json, sha256_digest
from factory.common.errors import UserError
from factory.common.outputs import REFERRERS_FILE  # outputs must know it is ours
from factory.image import oci
from factory.image.selfdesc import top_descriptor
from factory.registry.referrers import (
    EMPTY_JSON,
    add_to_referrers_index,
    artifact_manifest,
)


@dataclass(frozen=True)
class Artifact:
    descriptor: oci.Descriptor  # of the artifact manifest (artifactType, annotations)
    media_type: str  # of the payload
    payload: bytes


def add_local_referrer(
    layout: Path,
    subject: oci.Descriptor,
    artifact_type: str,
    payload: bytes,
    media_type: str,
    annotations: dict[str, str],
) -> oci.Descriptor:
    """Store payload as an artifact referring to subject; the same artifact is listed once."""
    payload_desc = oci.Descriptor(media_type, sha256_digest(payload), len(payload))
    manifest = artifact_manifest(subject, artifact_type, payload_desc, annotations)
    for blob in (EMPTY_JSON, payload, manifest):
        oci.write_blob(layout, blob)
    entry = oci.Descriptor(
        oci.MT_MANIFEST, sha256_digest(manifest), len(manifest), dict(annotations), None,
        artifact_type,
    )  # fmt: skip
    path = layout / REFERRERS_FILE
    # read-modify-write under a lock on the layout directory itself: two jobs attaching to
    # one store (a nightly with --jobs) must not lose each other's entries
    fd = os.open(layout, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        current = path.read_bytes() if path.exists() else None
        updated = add_to_referrers_index(current, entry)
        if updated is not None:
            tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
            tmp.write_bytes(updated)
            os.replace(tmp, path)
    finally:
        os.close(fd)
    return entry


def copy_referrers(src: Path, dst: Path, subject_digest: str) -> int:
    """The artifacts src keeps for one image, into dst (a store the image was copied to)."""
    n = 0
    for desc in local_referrers(src, subject_digest):
        manifest = oci.read_json_blob(src, desc.digest)
        subject = oci.Descriptor.from_json(manifest["subject"])
        art = read_local_artifact(src, desc)
        artifact_type = desc.artifact_type or art.media_type
        add_local_referrer(dst, subject, artifact_type, art.payload, art.media_type,
                           dict(desc.annotations))  # fmt: skip
        n += 1
    return n


def local_referrers(layout: Path, subject_digest: str | None = None) -> list[oci.Descriptor]:
    path = layout / REFERRERS_FILE
    if not path.exists():
        return []
    try:
        entries = [oci.Descriptor.from_json(d) for d in json.loads(path.read_bytes())["manifests"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise UserError(f"{path}: not a referrers index ({exc})") from None
    if subject_digest is None:
        return entries
    return [e for e in entries if _subject_of(layout, e) == subject_digest]


def _subject_of(layout: Path, desc: oci.Descriptor) -> str | None:
    m = oci.read_json_blob(layout, desc.digest)
    subject = m.get("subject") or {}
    return subject.get("digest") if isinstance(subject, dict) else None


def parse_artifact(manifest: dict[str, Any]) -> tuple[str, oci.Descriptor]:
    """(subject digest, payload descriptor) of an artifact manifest, or a UserError."""
    try:
        subject = manifest["subject"]["digest"]
        (layer,) = manifest["layers"]
        return str(subject), oci.Descriptor.from_json(layer)
    except (KeyError, TypeError, ValueError):
        raise UserError("an attached artifact is not a one-layer manifest with a subject") from None


def read_local_artifact(layout: Path, desc: oci.Descriptor) -> Artifact:
    manifest = oci.read_json_blob(layout, desc.digest)
    _subject, payload = parse_artifact(manifest)
    data = oci.read_blob(layout, payload.digest, size=payload.size)
    return Artifact(desc, payload.media_type, data)


def manifest_bytes_digest(manifest: dict[str, Any]) -> str:
    return sha256_digest(canonical_json(manifest))


def copy_sboms(src: Path, tag: str | None, dst: Path, subject: oci.Descriptor) -> int:
    """A per-architecture build's SBOMs, re-attached to the multi-arch index it was merged
    into (an SBOM describes its platform's packages, whatever index lists it). Provenance
    is not copied: it is a statement about the per-architecture build's own index."""
    n = 0
    for desc in local_referrers(src, top_descriptor(src, tag).digest):
        if not desc.annotations.get(ANN_KIND, "").startswith("sbom-"):
            continue
        art = read_local_artifact(src, desc)
        artifact_type = desc.artifact_type or art.media_type
        add_local_referrer(dst, subject, artifact_type, art.payload, art.media_type,
                           dict(desc.annotations))  # fmt: skip
        n += 1
    return n
