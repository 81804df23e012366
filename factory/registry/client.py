"""Operations of the OCI distribution spec v1.1 on one repository.

Sections cited are from opencontainers/distribution-spec spec.md:
"Checking if content exists in the registry" (HEAD blobs/manifests),
"Pushing blobs" (POST then PUT monolithic; POST, PATCH chunks with
Content-Range, PUT ?digest=), "Mounting a blob from another repository",
"Pushing Manifests", "Pulling blobs/manifests", "Listing Referrers".
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass
from pathlib import Path

import aiofiles
import aiohttp
import yarl

from factory.common.canonical import sha256_digest
from factory.image.oci import DOCKER_LIST, DOCKER_MANIFEST, MT_INDEX, MT_MANIFEST
from factory.registry.errors import RegistryError, TransientError
from factory.registry.reference import Reference
from factory.registry.session import (
    PULL,
    PUSH,
    Body,
    ClientConfig,
    RegistrySession,
    new_http_session,
    scopes_for,
)

log = logging.getLogger("reprobase.registry")
MANIFEST_ACCEPT = ", ".join([MT_INDEX, MT_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST])
READ_SIZE = 2 << 20


@dataclass(frozen=True)
class Manifest:
    data: bytes
    media_type: str
    digest: str  # sha256 of data, computed here


def _read_at(path: Path, offset: int, n: int) -> bytes:
    with path.open("rb") as f:
        f.seek(offset)
        return f.read(n)


async def file_body(path: Path, offset: int, length: int) -> AsyncGenerator[bytes, None]:
    """Stream a byte range of a file, reading in a worker thread (off the event loop).

    No file stays open between chunks: when a connection breaks off mid-upload, the
    abandoned generator holds nothing that needs closing.
    """
    pos, end = offset, offset + length
    while pos < end:
        chunk = await asyncio.to_thread(_read_at, path, pos, min(READ_SIZE, end - pos))
        if not chunk:
            raise OSError(f"{path} is shorter than expected")
        pos += len(chunk)
        yield chunk


class Repository:
    """One repository on one registry."""

    def __init__(self, session: RegistrySession, name: str) -> None:
        self.s = session
        self.name = name

    def _path(self, *parts: str) -> yarl.URL:
        return self.s.url(f"/v2/{self.name}/" + "/".join(parts))

    async def _push_request(
        self,
        method: str,
        url: yarl.URL,
        *,
        what: str,
        expect: tuple[int, ...],
        headers: Mapping[str, str] | None = None,
        body: Body | None = None,
    ) -> aiohttp.ClientResponse:
        """A request that needs push access to this repository."""
        return await self.s.request(
            method, url, what=what, repository=self.name, scopes=scopes_for({self.name: PUSH}),
            expect=expect, headers=headers, body=body,
        )  # fmt: skip

    # -- blobs ---------------------------------------------------------------------------
    async def blob_exists(self, digest: str) -> bool:
        async def op() -> bool:
            resp = await self.s.request(
                "HEAD",
                self._path("blobs", digest),
                what=f"HEAD blob {digest[:19]}",
                repository=self.name,
                scopes=scopes_for({self.name: PULL}),
                expect=(200, 404),
            )
            resp.release()
            return resp.status == 200

        return await self.s.retry(op)

    async def mount_blob(self, digest: str, from_repo: str) -> bool:
        """POST ?mount=&from= : 201 when mounted; 202 means an upload began, which we cancel."""

        async def op() -> bool:
            url = self._path("blobs", "uploads/").update_query({"mount": digest, "from": from_repo})
            resp = await self.s.request(
                "POST",
                url,
                what=f"mount blob {digest[:19]}",
                repository=self.name,
                scopes=scopes_for({self.name: PUSH, from_repo: PULL}),
                expect=(201, 202),
                headers={"Content-Length": "0"},
            )
            resp.release()
            if resp.status == 201:
                return True
            await self._cancel(self.s.location(resp))
            return False

        return await self.s.retry(op)

    async def _cancel(self, location: yarl.URL) -> None:
        try:
            resp = await self._push_request(
                "DELETE",
                location,
                what="cancel upload",
                expect=(204, 404),
            )
            resp.release()
        except RegistryError:
            pass  # an abandoned upload session is garbage-collected by the registry

    async def _start_upload(self) -> yarl.URL:
        """POST /v2/<name>/blobs/uploads/ -> 202 with the session's Location (not retried here)."""
        resp = await self._push_request(
            "POST",
            self._path("blobs", "uploads/"),
            what="start upload",
            expect=(202,),
            headers={"Content-Length": "0"},
        )
        resp.release()
        return self.s.location(resp)

    async def probe_push(self) -> None:
        """Prove push access before a long build: start an upload session and cancel it
        (distribution spec §Pushing blobs; nothing is stored)."""

        async def op() -> None:
            await self._cancel(await self._start_upload())

        await self.s.retry(op)

    async def upload_bytes(self, digest: str, data: bytes) -> None:
        """Small blobs (artifact payloads): POST then PUT with the bytes."""

        async def op() -> None:
            location = await self._start_upload()
            resp = await self._push_request(
                "PUT",
                location.update_query({"digest": digest}),
                what=f"upload blob {digest[:19]}",
                expect=(201,),
                headers={"Content-Type": "application/octet-stream"},
                body=lambda: data,
            )
            resp.release()
            _check_digest_header(resp, digest)

        await self.s.retry(op)

    async def upload_blob(self, digest: str, path: Path, size: int) -> None:
        """Monolithic (POST then PUT) up to chunk_size, chunked (PATCH...) above it."""
        if size > self.s.config.chunk_size:
            await self._upload_chunked(digest, path, size)
            return

        async def op() -> None:
            location = await self._start_upload()
            await self._finish(location, digest, path, 0, size)

        await self.s.retry(op)

    async def _finish(
        self, location: yarl.URL, digest: str, path: Path, offset: int, length: int
    ) -> None:
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(length)}
        resp = await self._push_request(
            "PUT",
            location.update_query({"digest": digest}),
            what=f"upload blob {digest[:19]}",
            expect=(201,),
            headers=headers,
            body=(lambda: file_body(path, offset, length)) if length else None,
        )
        resp.release()
        _check_digest_header(resp, digest)

    async def _upload_chunked(self, digest: str, path: Path, size: int) -> None:
        """Chunked upload that resumes where the registry says it stands after a failure."""
        chunk = self.s.config.chunk_size
        location = await self.s.retry(self._start_upload)
        offset, failures = 0, 0
        while offset < size:
            n = min(chunk, size - offset)
            try:
                location = await self._patch(location, path, offset, n)
                offset += n
            except (TransientError, aiohttp.ClientConnectionError) as exc:
                failures += 1
                if failures >= self.s.config.attempts:
                    raise
                log.debug(
                    "chunk at %d failed (%s); asking the registry where to resume",
                    offset,
                    type(exc).__name__,
                )
                location, offset = await self._resume_point(location)
        await self.s.retry(lambda: self._finish(location, digest, path, size, 0))

    async def _patch(self, location: yarl.URL, path: Path, offset: int, n: int) -> yarl.URL:
        headers = {
            "Content-Type": "application/octet-stream",
            "Content-Length": str(n),
            "Content-Range": f"{offset}-{offset + n - 1}",  # spec: inclusive range, no unit
        }
        resp = await self._push_request(
            "PATCH",
            location,
            what="upload chunk",
            expect=(202,),
            headers=headers,
            body=lambda: file_body(path, offset, n),
        )
        resp.release()
        return self.s.location(resp)

    async def _resume_point(self, location: yarl.URL) -> tuple[yarl.URL, int]:
        """GET the upload URL: 204 with Range 0-<last byte>; a lost session restarts at 0."""

        async def op() -> tuple[yarl.URL, int]:
            resp = await self._push_request(
                "GET",
                location,
                what="upload status",
                expect=(204, 404),
            )
            resp.release()
            if resp.status == 404:  # the session is gone (e.g. registry restarted): start over
                return await self._start_upload(), 0
            rng = resp.headers.get("Range", "0-0")
            end = int(rng.rpartition("-")[2] or 0)
            # distribution answers "0-0" for both 0 and 1 byte received: resume at 0 when unsure.
            return self.s.location(resp), end + 1 if end > 0 else 0

        return await self.s.retry(op)

    async def fetch_blob(self, digest: str, dest: Path) -> int:
        """Stream a blob to dest (GET, following redirects), verifying its digest."""

        async def op() -> int:
            resp = await self.s.request(
                "GET",
                self._path("blobs", digest),
                what=f"GET blob {digest[:19]}",
                repository=self.name,
                scopes=scopes_for({self.name: PULL}),
                expect=(200,),
            )
            h = hashlib.sha256()
            size = 0
            try:
                async with aiofiles.open(dest, "wb") as f:
                    async for chunk in resp.content.iter_chunked(READ_SIZE):
                        h.update(chunk)
                        size += len(chunk)
                        await f.write(chunk)
            finally:
                resp.release()
            if "sha256:" + h.hexdigest() != digest:
                os.unlink(dest)
                raise RegistryError(
                    f"blob {digest} arrived with another digest (corrupt transfer)", 200
                )
            return size

        return await self.s.retry(op)

    # -- manifests -----------------------------------------------------------------------
    async def put_manifest(
        self, reference: str, data: bytes, media_type: str
    ) -> tuple[str, str | None]:
        """PUT a manifest; returns (digest, OCI-Subject header if the registry sent one)."""
        digest = sha256_digest(data)

        async def op() -> tuple[str, str | None]:
            resp = await self._push_request(
                "PUT",
                self._path("manifests", reference),
                what=f"PUT manifest {reference}",
                expect=(201,),
                headers={"Content-Type": media_type},
                body=lambda: data,
            )
            resp.release()
            _check_digest_header(resp, digest)
            return digest, resp.headers.get("OCI-Subject")

        return await self.s.retry(op)

    async def get_manifest(self, reference: str, accept: str = MANIFEST_ACCEPT) -> Manifest | None:
        """GET a manifest by tag or digest; None when it does not exist (404)."""

        async def op() -> Manifest | None:
            resp = await self.s.request(
                "GET",
                self._path("manifests", reference),
                what=f"GET manifest {reference}",
                repository=self.name,
                scopes=scopes_for({self.name: PULL}),
                expect=(200, 404),
                headers={"Accept": accept},
            )
            try:
                data = await resp.read()
            finally:
                resp.release()
            if resp.status == 404:
                return None
            digest = sha256_digest(data)
            if reference.startswith("sha256:") and digest != reference:
                raise RegistryError(f"manifest {reference} arrived with digest {digest}", 200)
            _check_digest_header(resp, digest)
            mt = resp.headers.get("Content-Type", "").split(";")[0].strip()
            return Manifest(data, mt, digest)

        return await self.s.retry(op)

    async def manifest_digest(self, reference: str) -> str | None:
        """HEAD a manifest: its Docker-Content-Digest, or None if absent."""

        async def op() -> str | None:
            resp = await self.s.request(
                "HEAD",
                self._path("manifests", reference),
                what=f"HEAD manifest {reference}",
                repository=self.name,
                scopes=scopes_for({self.name: PULL}),
                expect=(200, 404),
                headers={"Accept": MANIFEST_ACCEPT},
            )
            resp.release()
            return resp.headers.get("Docker-Content-Digest") if resp.status == 200 else None

        return await self.s.retry(op)

    async def referrers(self, digest: str) -> bytes | None:
        """GET /v2/<name>/referrers/<digest>: the index, or None when the API is absent (404)."""

        async def op() -> bytes | None:
            resp = await self.s.request(
                "GET",
                self._path("referrers", digest),
                what="GET referrers",
                repository=self.name,
                scopes=scopes_for({self.name: PULL}),
                expect=(200, 404),
                headers={"Accept": MT_INDEX},
            )
            try:
                data = await resp.read()
            finally:
                resp.release()
            ctype = resp.headers.get("Content-Type", "").split(";")[0].strip()
            return data if resp.status == 200 and ctype == MT_INDEX else None

        return await self.s.retry(op)


def _check_digest_header(resp: aiohttp.ClientResponse, digest: str) -> None:
    """The registry's digest must equal ours: bytes pushed are exactly the bytes built."""
    theirs = resp.headers.get("Docker-Content-Digest")
    if theirs and theirs != digest:
        raise RegistryError(
            f"registry computed {theirs} for content whose digest is {digest}", resp.status
        )


class Registries:
    """One aiohttp session and one RegistrySession per registry host, for one command."""

    def __init__(self, config: ClientConfig | None = None) -> None:
        self.config = config or ClientConfig()
        self._sessions: dict[str, RegistrySession] = {}
        self._http: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Registries:
        self._http = new_http_session(self.config)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._http is not None:
            await self._http.close()

    def repo(self, ref: Reference) -> Repository:
        if self._http is None:
            raise RuntimeError("Registries used outside 'async with'")
        if ref.registry not in self._sessions:
            self._sessions[ref.registry] = RegistrySession(ref, self._http, self.config)
        return Repository(self._sessions[ref.registry], ref.repository)
