"""Pull an image (index, manifests, configs, layers of every platform) into an OCI layout.

Every object is verified against the digest that names it (OCI distribution spec
§Pulling manifests, §Pulling blobs: "clients SHOULD verify"); a blob already in
the destination is kept. index.json gets one entry, annotated with the tag.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable
from pathlib import Path

from factory.common.errors import UserError
from factory.image.oci import (
    ANN_REF_NAME,
    Descriptor,
    blob_path,
    init_layout,
    write_blob,
    write_index,
)
from factory.registry.client import Manifest, Registries, Repository
from factory.registry.errors import first_error
from factory.registry.layout import INDEX_TYPES, MANIFEST_TYPES
from factory.registry.reference import parse_reference
from factory.registry.session import ClientConfig

Progress = Callable[[str], None]


def _media_type(m: Manifest) -> str:
    obj = json.loads(m.data)
    mt = obj.get("mediaType") if isinstance(obj, dict) else None
    return str(mt or m.media_type)


async def _fetch_blob(repo: Repository, dest: Path, desc: Descriptor, progress: Progress) -> None:
    final = blob_path(dest, desc.digest)
    if final.exists() and final.stat().st_size == desc.size:
        return
    part = final.with_name(final.name + ".part")
    size = await repo.fetch_blob(desc.digest, part)
    if size != desc.size:
        part.unlink()
        raise UserError(f"blob {desc.digest} has {size} bytes, its descriptor says {desc.size}")
    os.replace(part, final)
    progress(f"{repo.name}: blob {desc.digest[7:19]} fetched ({size / 1e6:.1f} MB)")


async def _pull_manifest(
    repo: Repository, dest: Path, reference: str, sem: asyncio.Semaphore, progress: Progress
) -> Manifest:
    m = await repo.get_manifest(reference)
    if m is None:
        raise UserError(f"{repo.name}: manifest {reference} not found in the registry")
    obj = json.loads(m.data)
    mt = _media_type(m)
    children: list[Descriptor] = []
    blobs: list[Descriptor] = []
    if mt in INDEX_TYPES:
        children = [Descriptor.from_json(d) for d in obj.get("manifests", [])]
    elif mt in MANIFEST_TYPES:
        blobs = [Descriptor.from_json(d) for d in [obj["config"], *obj.get("layers", [])]]
    else:
        raise UserError(f"{repo.name}: {reference} has unsupported media type {mt!r}")

    async def blob(d: Descriptor) -> None:
        async with sem:
            await _fetch_blob(repo, dest, d, progress)

    async with asyncio.TaskGroup() as tg:
        for child in children:
            tg.create_task(_pull_manifest(repo, dest, child.digest, sem, progress))
        for d in blobs:
            tg.create_task(blob(d))
    # Written after its children and blobs: a manifest present means its content is too.
    await asyncio.to_thread(write_blob, dest, m.data)
    return m


async def pull_to_layout(
    ref: str, dest: Path, *, progress: Progress | None = None, config: ClientConfig | None = None
) -> Path:
    """Fetch ref (all platforms) into an OCI layout at dest; returns dest."""
    r = parse_reference(ref)
    dest = Path(dest)
    await asyncio.to_thread(init_layout, dest)
    report = progress or (lambda _line: None)
    async with Registries(config) as regs:
        repo = regs.repo(r)
        sem = asyncio.Semaphore(regs.config.concurrency)
        try:
            top = await _pull_manifest(repo, dest, r.reference, sem, report)
        except BaseExceptionGroup as group:
            raise first_error(group) from None
    annotations = {ANN_REF_NAME: r.tag} if r.tag else {}
    desc = Descriptor(_media_type(top), top.digest, len(top.data), annotations)
    await asyncio.to_thread(write_index, dest, [desc], {})
    return dest


def pull_to_layout_sync(ref: str, dest: Path, *, config: ClientConfig | None = None) -> Path:
    return asyncio.run(pull_to_layout(ref, dest, config=config))
