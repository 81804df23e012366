"""Index learning: what the signed Release → Packages/Sources chain says a file must be.

When a Release (InRelease) or a Packages/Sources index of a snapshot run is stored
or served, its entries are parsed once (debian-inspector, see ``debindex``) and
linked to the run; from then on every file it lists has an expected size and
SHA-256 (``expectation``), so a download is verified before it is committed and a
file already stored under another path is found without asking upstream.

A Release is parsed before ``note`` returns (the dists lookups right after need
it, and it is small); a Packages index in the background, which ``parsed``
awaits for lookups that depend on it.
"""

from __future__ import annotations

import asyncio
import logging

from cache_proxy import debindex, routing
from cache_proxy.index import AsyncIndex, BlobRow, Index
from cache_proxy.routing import Kind, Target
from cache_proxy.store import BlobStore
from cache_proxy.tasks import Tasks

log = logging.getLogger("cache_proxy.learning")


def index_role(target: Target, logical: str) -> tuple[str, str] | None:
    """What the file ``target`` (at ``logical``, its path once a by-hash one is resolved)
    teaches: ``("Release", suite)``, ``("Packages"|"Sources", compression)``, or None."""
    if target.kind in (Kind.FILE, Kind.SHA1):
        return None
    suite = target.suite
    name = logical.rsplit("/", 1)[-1]
    if target.kind is Kind.RELEASE and name in ("InRelease", "Release") and suite:
        return "Release", suite
    return routing.index_kind(logical)


class IndexLearner:
    """Learns the expected digests of a run's files from its indexes, and answers them."""

    def __init__(self, index: AsyncIndex, store: BlobStore, tasks: Tasks) -> None:
        self.index = index
        self.store = store
        self.tasks = tasks
        self._linked: set[tuple[str, str, str]] = set()  # (archive, run, index blob) done
        self._parsing: dict[tuple[str, str], set[asyncio.Task[None]]] = {}

    async def note(self, target: Target, run: str, row: BlobRow) -> None:
        """If ``row`` is a Release/Packages/Sources of (archive, run), learn its hashes."""
        if target.kind in (Kind.FILE, Kind.SHA1):
            return
        link = (target.archive, run, row.sha256)
        if link in self._linked:
            return
        logical = target.path
        if target.kind is Kind.BY_HASH:
            found = await self.index.call(Index.entry_path, target.archive, run, row.sha256)
            if found is None:
                return
            logical = found
        role = index_role(target, logical)
        if role is None:
            return
        kind, ext = role
        self._linked.add(link)
        task = self.tasks.spawn(self._parse_and_link(target.archive, run, row, kind, ext))
        pending = self._parsing.setdefault((target.archive, run), set())
        pending.add(task)
        task.add_done_callback(pending.discard)
        if kind == "Release":
            await task  # dists lookups right after need it; it is small

    async def _parse_and_link(
        self, archive: str, run: str, row: BlobRow, kind: str, ext: str
    ) -> None:
        try:
            if not await self.index.call(Index.has_index, row.sha256):
                path = self.store.path(row.sha256)
                loop = asyncio.get_running_loop()
                if kind == "Release":
                    raw = await loop.run_in_executor(None, path.read_bytes)
                    entries = debindex.parse_release(raw, ext)
                else:
                    entries = await loop.run_in_executor(
                        None, debindex.parse_index_file, path, kind, ext
                    )
                await self.index.call(Index.add_index, row.sha256, kind, entries)
            await self.index.call(Index.link_run_index, archive, run, row.sha256)
        except Exception as exc:  # an unparsable index only costs us shortcuts
            log.warning("could not parse %s %s: %s", kind, row.sha256, exc)
            self._linked.discard((archive, run, row.sha256))

    async def parsed(self, archive: str, run: str) -> None:
        """Wait until the indexes of (archive, run) being parsed now are linked."""
        pending = self._parsing.get((archive, run))
        if pending:
            await asyncio.gather(*list(pending), return_exceptions=True)

    async def expectation(self, archive: str, run: str, path: str) -> tuple[int, str] | None:
        """(size, SHA-256) that the run's indexes list for ``path``, if any does."""
        return await self.index.call(Index.expectation, archive, run, path)

    async def listed(self, target: Target, run: str) -> bool:
        return await self.expectation(target.archive, run, target.path) is not None

    async def release_listing(self, archive: str, run: str) -> list[str]:
        """The index paths the run's Releases list (candidates for a pool file's index)."""
        return await self.index.call(Index.release_listing, archive, run)

    def forget(self) -> None:
        """Blobs were evicted: learn again what is noted next (the index rows may be gone)."""
        self._linked.clear()
