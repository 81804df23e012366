"""Attestations out: a layout's referrers to a registry, or one new artifact to either."""

from __future__ import annotations

import asyncio
from pathlib import Path

from factory.attest.fetch import is_layout_ref
from factory.attest.store import add_local_referrer, local_referrers, read_local_artifact
from factory.image import oci
from factory.image.selfdesc import top_descriptor
from factory.registry.fetch import fetch as fetch_layout_ref
from factory.registry.referrers import attach_referrer


async def _push_all(layout: Path, ref: str, subject: oci.Descriptor) -> list[str]:
    out = []
    for desc in local_referrers(layout, subject.digest):
        art = read_local_artifact(layout, desc)
        out.append(
            await attach_referrer(
                ref,
                subject,
                desc.artifact_type or art.media_type,
                art.payload,
                art.media_type,
                dict(desc.annotations),
            )
        )
    return out


def push_attestations(layout: Path, ref: str, tag: str | None = None) -> list[str]:
    """Every artifact the layout keeps for its image, attached to ref's copy of it (pushed
    already). The digests of the artifact manifests, in the registry."""
    subject = top_descriptor(layout, tag)
    return asyncio.run(_push_all(layout, ref, subject))


def attach(
    ref: str,
    subject: oci.Descriptor,
    artifact_type: str,
    payload: bytes,
    media_type: str,
    annotations: dict[str, str],
) -> str:
    """Attach to an image in a layout (its referrers.json) or in a registry."""
    if is_layout_ref(ref):
        layout, _tag = fetch_layout_ref(ref, Path("/nonexistent"))
        return add_local_referrer(
            layout, subject, artifact_type, payload, media_type, annotations
        ).digest
    return asyncio.run(
        attach_referrer(ref, subject, artifact_type, payload, media_type, annotations)
    )
