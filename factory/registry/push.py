"""Push an image from an OCI layout to one or more repositories.

Order (OCI distribution spec §Pushing blobs, §Mounting a blob, §Pushing Manifests):
1. every blob: HEAD; if absent, mount from a repository on the same registry that
   we know holds it, else upload (monolithic or chunked);
2. manifests by digest, children first, the top-level index last;
3. tags, for every reference, only once everything else is in every repository:
   a failure at any earlier point leaves every tag where it was.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from factory.common.errors import UserError
from factory.image.oci import Descriptor, verify_blob
from factory.registry.client import Registries, Repository
from factory.registry.errors import first_error
from factory.registry.layout import PushPlan, plan_push
from factory.registry.reference import TAG_RE, Reference, parse_reference
from factory.registry.session import ClientConfig

log = logging.getLogger("reprobase.registry")
Progress = Callable[[str], None]


@dataclass(frozen=True)
class PushResult:
    digest: str  # of the top-level index or manifest, equal to the registry's
    media_type: str
    references: tuple[str, ...]  # every repository@digest and repository:tag written
    uploaded_blobs: int = 0
    skipped_blobs: int = 0
    mounted_blobs: int = 0
    bytes_uploaded: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "digest": self.digest,
            "mediaType": self.media_type,
            "references": list(self.references),
            "uploaded_blobs": self.uploaded_blobs,
            "skipped_blobs": self.skipped_blobs,
            "mounted_blobs": self.mounted_blobs,
            "bytes_uploaded": self.bytes_uploaded,
        }


@dataclass
class _Tally:
    uploaded: int = 0
    skipped: int = 0
    mounted: int = 0
    bytes: int = 0
    # registry -> digest -> repositories known to hold the blob (mount sources)
    holders: dict[str, dict[str, list[str]]] = field(default_factory=dict)

    def holds(self, ref: Reference, digest: str) -> None:
        self.holders.setdefault(ref.registry, {}).setdefault(digest, []).append(ref.repository)

    def source_for(self, ref: Reference, digest: str) -> str | None:
        repos = self.holders.get(ref.registry, {}).get(digest, [])
        return next((r for r in repos if r != ref.repository), None)


def _tags_for(ref: Reference, extra: Sequence[str]) -> list[str]:
    tags = [t for t in (ref.tag, *extra) if t]
    if not tags and ref.digest is None:
        tags = ["latest"]  # what docker and podman push for a bare name
    return list(dict.fromkeys(tags))


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


async def _push_blob(
    repo: Repository,
    ref: Reference,
    desc: Descriptor,
    layout: Path,
    tally: _Tally,
    progress: Progress,
) -> None:
    short = desc.digest[7:19]
    if await repo.blob_exists(desc.digest):
        tally.skipped += 1
        progress(f"{ref.repository}: blob {short} already present")
    else:
        source = tally.source_for(ref, desc.digest)
        if source is not None and await repo.mount_blob(desc.digest, source):
            tally.mounted += 1
            progress(f"{ref.repository}: blob {short} mounted from {source}")
        else:
            # size and digest checked here, so a corrupt layout is an error naming the blob
            path = await asyncio.to_thread(verify_blob, layout, desc)
            size = desc.size
            await repo.upload_blob(desc.digest, path, size)
            tally.uploaded += 1
            tally.bytes += size
            progress(f"{ref.repository}: blob {short} uploaded ({_mb(size)})")
    tally.holds(ref, desc.digest)


async def _push_content(
    regs: Registries,
    ref: Reference,
    plan: PushPlan,
    layout: Path,
    tally: _Tally,
    progress: Progress,
) -> None:
    repo = regs.repo(ref)
    sem = asyncio.Semaphore(regs.config.concurrency)

    async def one(desc: Descriptor) -> None:
        async with sem:
            await _push_blob(repo, ref, desc, layout, tally, progress)

    # Largest first: the long uploads start early and the small ones fill in around them.
    order = sorted(plan.blobs, key=lambda d: -d.size)
    async with asyncio.TaskGroup() as tg:
        for desc in order:
            tg.create_task(one(desc))
    for m in plan.manifests:
        await repo.put_manifest(m.descriptor.digest, m.data, m.descriptor.media_type)
        progress(f"{ref.repository}: manifest {m.descriptor.digest[7:19]} pushed")


async def push_plan(
    plan: PushPlan,
    layout: Path,
    refs: Sequence[Reference],
    tags: Sequence[str] = (),
    progress: Progress | None = None,
    config: ClientConfig | None = None,
) -> PushResult:
    report = progress or (lambda line: log.debug("%s", line))
    top = plan.top.descriptor
    for ref in refs:
        if ref.digest is not None and ref.digest != top.digest:
            raise UserError(
                f"{ref} names digest {ref.digest} but the layout's image is {top.digest}"
            )
    tally = _Tally()
    written: list[str] = []
    async with Registries(config) as regs:
        for ref in refs:
            await _unwrap(_push_content(regs, ref, plan, layout, tally, report))
            written.append(str(ref.with_digest(top.digest)))
        # Tags last (see module docstring): a failure above never moves one.
        for ref in refs:
            repo = regs.repo(ref)
            for tag in _tags_for(ref, tags):
                await repo.put_manifest(tag, plan.top.data, top.media_type)
                written.append(str(ref.with_tag(tag)))
                report(f"{ref.repository}: tag {tag} -> {top.digest}")
    return PushResult(
        top.digest,
        top.media_type,
        tuple(written),
        tally.uploaded,
        tally.skipped,
        tally.mounted,
        tally.bytes,
    )


async def _unwrap(coro: Any) -> None:
    """Re-raise the first error of a TaskGroup as itself (UserErrors stay one line)."""
    try:
        await coro
    except BaseExceptionGroup as group:
        raise first_error(group) from None


def check_tags(tags: Sequence[str]) -> None:
    """Refuse a bad tag before anything is pushed: a failure must never move a tag."""
    for tag in tags:
        if not TAG_RE.match(tag):
            raise UserError(
                f"invalid tag {tag!r}",
                hint="a tag is up to 128 letters, digits, '_', '.' and '-', not starting "
                "with '.' or '-'",
            )


async def check_push_access(refs: Sequence[str], config: ClientConfig | None = None) -> None:
    """Every reference parses, and its registry answers and lets us push (a probe upload
    session, cancelled): asked before the build, not after it."""
    parsed = [parse_reference(r, default_tag=None) for r in refs]
    async with Registries(config) as regs:
        for ref in parsed:
            await regs.repo(ref).probe_push()


def check_push_access_sync(refs: Sequence[str], config: ClientConfig | None = None) -> None:
    asyncio.run(check_push_access(refs, config))


async def push_layout(
    layout: Path,
    refs: Sequence[str],
    *,
    tags: Sequence[str] = (),
    progress: Progress | None = None,
    config: ClientConfig | None = None,
    image_tag: str | None = None,
) -> PushResult:
    """Push the layout's image (the one tagged image_tag, if given) to every reference
    (see module docstring for the order)."""
    if not refs:
        raise UserError(
            "no destination reference given", hint="e.g. 127.0.0.1:5000/debian:bookworm"
        )
    parsed = [parse_reference(r, default_tag=None) for r in refs]
    check_tags(tags)
    names = [n for r in parsed for n in (r.tag, str(r)) if n] + list(tags)
    plan = await asyncio.to_thread(plan_push, Path(layout), [image_tag] if image_tag else names)
    return await push_plan(plan, Path(layout), parsed, tags, progress, config)


def push_layout_sync(
    layout: Path,
    refs: Sequence[str],
    *,
    tags: Sequence[str] = (),
    progress: Progress | None = None,
    config: ClientConfig | None = None,
    image_tag: str | None = None,
) -> PushResult:
    return asyncio.run(
        push_layout(layout, refs, tags=tags, progress=progress, config=config, image_tag=image_tag)
    )
