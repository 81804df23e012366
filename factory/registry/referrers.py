"""Attach a JSON artifact (e.g. the double-build report) to an image as an OCI 1.1 referrer.

Artifact shape: image-spec 1.1 manifest.md §Guidelines for Artifact Usage: an image
manifest with `artifactType`, the empty config (`application/vnd.oci.empty.v1+json`,
`{}`), one layer holding the payload, and `subject` = the image's descriptor.

Discovery: distribution-spec 1.1 §Pushing Manifests with Subject. A registry with
the referrers API answers the manifest PUT with `OCI-Subject`; without it the
client maintains the Referrers Tag Schema: an image index tagged
`<alg>-<hex>` of the subject digest, listing the referrers (artifactType and
annotations copied from each), fetched, appended to without duplicates, pushed.
The image's own index is never touched, so its digest stays reproducible.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from factory.common.canonical import canonical_json, sha256_digest
from factory.common.errors import UserError
from factory.image.oci import MT_EMPTY, MT_INDEX, MT_MANIFEST, Descriptor
from factory.registry.client import Registries, Repository
from factory.registry.reference import parse_reference
from factory.registry.session import ClientConfig

EMPTY_JSON = b"{}"
EMPTY_DESCRIPTOR = Descriptor(MT_EMPTY, sha256_digest(EMPTY_JSON), len(EMPTY_JSON))


def fallback_tag(subject_digest: str) -> str:
    """Referrers Tag Schema: `<alg>-<ref>`, truncated to the 128 characters a tag may have."""
    alg, _, hexd = subject_digest.partition(":")
    return f"{alg}-{hexd}"[:128]


def artifact_manifest(
    subject: Descriptor,
    artifact_type: str,
    payload: Descriptor,
    annotations: dict[str, str],
) -> bytes:
    manifest: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": MT_MANIFEST,
        "artifactType": artifact_type,
        "config": EMPTY_DESCRIPTOR.to_json(),
        "layers": [payload.to_json()],
        "subject": Descriptor(subject.media_type, subject.digest, subject.size).to_json(),
    }
    if annotations:
        manifest["annotations"] = dict(annotations)
    return canonical_json(manifest)


def add_to_referrers_index(current: bytes | None, entry: Descriptor) -> bytes | None:
    """The fallback index with `entry` appended; None when it is already listed."""
    index: dict[str, Any] = {"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": []}
    if current is not None:
        loaded = json.loads(current)
        if not isinstance(loaded, dict) or loaded.get("mediaType", MT_INDEX) != MT_INDEX:
            raise UserError("the referrers fallback tag holds something other than an image index")
        index = loaded
        index.setdefault("manifests", [])
    if any(m.get("digest") == entry.digest for m in index["manifests"]):
        return None
    index["manifests"].append(entry.to_json())
    return canonical_json(index)


async def _update_fallback(repo: Repository, subject_digest: str, entry: Descriptor) -> None:
    tag = fallback_tag(subject_digest)
    current = await repo.get_manifest(tag, accept=MT_INDEX)
    updated = add_to_referrers_index(current.data if current else None, entry)
    if updated is not None:
        await repo.put_manifest(tag, updated, MT_INDEX)


async def attach_referrer(
    ref: str,
    subject: Descriptor,
    artifact_type: str,
    payload: bytes,
    payload_media_type: str,
    annotations: dict[str, str],
    *,
    config: ClientConfig | None = None,
) -> str:
    """Push `payload` as an artifact referring to `subject` in ref's repository.

    Returns the artifact manifest's digest. The subject must already be in the repository.
    """
    r = parse_reference(ref, default_tag=None)
    payload_desc = Descriptor(payload_media_type, sha256_digest(payload), len(payload))
    data = artifact_manifest(subject, artifact_type, payload_desc, annotations)
    async with Registries(config) as regs:
        repo = regs.repo(r)
        if await repo.manifest_digest(subject.digest) is None:
            raise UserError(f"{r.registry}/{r.repository} has no {subject.digest} to attach to")
        for blob, desc in ((EMPTY_JSON, EMPTY_DESCRIPTOR), (payload, payload_desc)):
            if not await repo.blob_exists(desc.digest):
                await repo.upload_bytes(desc.digest, blob)
        digest, oci_subject = await repo.put_manifest(sha256_digest(data), data, MT_MANIFEST)
        if oci_subject != subject.digest:  # no referrers API: keep the tag schema index
            entry = Descriptor(
                MT_MANIFEST, digest, len(data), dict(annotations), None, artifact_type
            )
            await _update_fallback(repo, subject.digest, entry)
    return digest


async def list_referrers(
    ref: str, subject_digest: str, *, config: ClientConfig | None = None
) -> list[Descriptor]:
    """Referrers of a subject: the referrers API when present, else the fallback tag's index."""
    r = parse_reference(ref, default_tag=None)
    async with Registries(config) as regs:
        repo = regs.repo(r)
        data = await repo.referrers(subject_digest)
        if data is None:
            m = await repo.get_manifest(fallback_tag(subject_digest), accept=MT_INDEX)
            data = m.data if m else None
    if data is None:
        return []
    return [Descriptor.from_json(d) for d in json.loads(data).get("manifests", [])]


def attach_referrer_sync(
    ref: str,
    subject: Descriptor,
    artifact_type: str,
    payload: bytes,
    payload_media_type: str,
    annotations: dict[str, str],
) -> str:
    return asyncio.run(
        attach_referrer(ref, subject, artifact_type, payload, payload_media_type, annotations)
    )
