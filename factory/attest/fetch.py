"""An image's attached artifacts, from an OCI layout (referrers.json) or a registry.

A registry is asked for the referrers of the image's index digest (the referrers API,
or the fallback tag; factory.registry.referrers), then each artifact manifest and its
one payload blob by digest (both checked against their digests by the client). No
other network is used: `reprobase verify` works offline with a local registry.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

from factory.attest.store import Artifact, local_referrers, parse_artifact, read_local_artifact
from factory.common.errors import UserError
from factory.image import oci
from factory.image.selfdesc import top_descriptor
from factory.registry.client import MANIFEST_ACCEPT, Registries
from factory.registry.fetch import fetch as fetch_layout_ref
from factory.registry.reference import parse_reference
from factory.registry.referrers import list_referrers

MAX_PAYLOAD = 64 << 20  # an SBOM of a large image is a few MB


@dataclass(frozen=True)
class Attached:
    subject: oci.Descriptor  # the image index (or manifest) the artifacts refer to
    artifacts: tuple[Artifact, ...]
    where: str  # "layout" or "registry"


def is_layout_ref(ref: str) -> bool:
    r = ref.removeprefix("oci:")
    path, sep, _tag = r.rpartition(":")
    return Path(r).is_dir() or bool(sep and Path(path).is_dir())


def from_layout(ref: str) -> Attached:
    layout, tag = fetch_layout_ref(ref, Path("/nonexistent"))
    subject = top_descriptor(layout, tag)
    arts = [read_local_artifact(layout, d) for d in local_referrers(layout, subject.digest)]
    return Attached(subject, tuple(arts), "layout")


async def from_registry(ref: str) -> Attached:
    r = parse_reference(ref)
    async with Registries() as regs:
        repo = regs.repo(r)
        top = await repo.get_manifest(r.reference, accept=MANIFEST_ACCEPT)
        if top is None:
            raise UserError(f"{ref}: no such image in the registry")
        subject = oci.Descriptor(top.media_type or oci.MT_INDEX, top.digest, len(top.data))
    descs = await list_referrers(ref, subject.digest)
    arts = []
    async with Registries() as regs:
        repo = regs.repo(r)
        with tempfile.TemporaryDirectory(prefix="reprobase-attest-") as tmp:
            for d in sorted(descs, key=lambda d: d.digest):
                m = await repo.get_manifest(d.digest, accept=oci.MT_MANIFEST)
                if m is None:
                    continue  # listed but gone: nothing to check
                subject_digest, payload = parse_artifact(json.loads(m.data))
                if subject_digest != subject.digest or payload.size > MAX_PAYLOAD:
                    continue
                dest = Path(tmp) / payload.digest.replace(":", "-")
                await repo.fetch_blob(payload.digest, dest)
                arts.append(Artifact(d, payload.media_type, dest.read_bytes()))
    return Attached(subject, tuple(arts), "registry")


def attached(ref: str) -> Attached:
    if is_layout_ref(ref):
        return from_layout(ref)
    if ref.startswith("oci:"):
        raise UserError(f"{ref.removeprefix('oci:')}: no such OCI layout directory")
    return asyncio.run(from_registry(ref))
