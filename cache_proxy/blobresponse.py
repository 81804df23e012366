"""Answering a stored blob over HTTP: 200, 206, or whatever aiohttp's FileResponse says.

Only aiohttp's public API is used, so any aiohttp >= 3.9 serves the same bytes:
the blob's path is our own attribute (``FileResponse`` keeps its copy private);
a hit with no condition but Range/If-Range is prepared as a plain
``StreamResponse`` and its body sent by ``send_body``, zero-copy through the
``sendfile`` thread on any loop (uvloop has no ``loop.sendfile``); every other
conditional request, and each Range that is not one satisfiable range, is
answered by ``FileResponse.prepare`` itself (RFC 9110 §13 and §14).

The blob is opened when the response is made (``BlobResponse.open``), not when
aiohttp prepares it (``open_blob``): eviction may delete the file in between (in
another process: a hit worker cannot pin), and an open file stays readable. Both ways
of sending read that descriptor (FileResponse through ``/proc/self/fd/N``, the
same inode), so no answer is a 404 for a file that was there when we decided.
"""

from __future__ import annotations

import asyncio
import os
import weakref
from pathlib import Path
from typing import Any, Final

from aiohttp import hdrs, web
from aiohttp.abc import AbstractStreamWriter

from cache_proxy import httpsem, sendfile

SMALL_BLOB: Final = 256 * 1024  # up to this size a hit is answered from memory
FILE_CHUNK: Final = 2 << 20  # read-and-write bodies (ours and aiohttp's) go in such steps
# Fields that make a request conditional (RFC 9110 §13) or ranged (§14).
CONDITIONAL: Final = (
    hdrs.RANGE,
    hdrs.IF_RANGE,
    hdrs.IF_MODIFIED_SINCE,
    hdrs.IF_UNMODIFIED_SINCE,
    hdrs.IF_NONE_MATCH,
    hdrs.IF_MATCH,
)
_RANGE_FIELDS: Final = frozenset({hdrs.RANGE, hdrs.IF_RANGE})  # answered without FileResponse


class BlobResponse(web.FileResponse):
    """FileResponse plus If-Range with an entity-tag (RFC 9110 §13.1.5), and a short
    way for the common case.

    aiohttp evaluates If-Range only as a date; with an entity-tag that does not
    strongly match, the whole representation must be sent instead of a range.
    Which request is answered how: see the module's docstring.
    """

    released: Any = None  # called once the file is open and sent (or failed): unpins the blob

    def __init__(
        self,
        fd: int,
        *,
        chunk_size: int = FILE_CHUNK,
        headers: dict[str, str] | None = None,
    ) -> None:
        # FileResponse opens its path itself: this one is our open file, whatever
        # happened to its name since.
        self.blob_path = Path(f"/proc/self/fd/{fd}")
        super().__init__(self.blob_path, chunk_size=chunk_size, headers=headers)
        self.fd = fd
        self.closer = weakref.finalize(self, os.close, fd)  # once: at prepare's end, or here

    async def prepare(self, request: web.BaseRequest) -> AbstractStreamWriter | None:
        try:
            if hdrs.RANGE in request.headers:
                request = await _if_range_checked(request, self.blob_path)
            if not any(h in request.headers for h in CONDITIONAL if h not in _RANGE_FIELDS):
                sent = await _send_stored(self, request, ranged=hdrs.RANGE in request.headers)
                if sent is not None:
                    return sent
            return await super().prepare(request)
        finally:
            self.closer()
            if self.released is not None:
                release, self.released = self.released, None
                release()


def open_blob(
    path: Path, *, chunk_size: int = FILE_CHUNK, headers: dict[str, str] | None = None
) -> BlobResponse:
    """A response for the stored blob at ``path``, opened now (FileNotFoundError if it
    is gone: the caller looks it up again)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return BlobResponse(fd, chunk_size=chunk_size, headers=headers)
    except BaseException:
        os.close(fd)
        raise


async def _if_range_checked(request: web.BaseRequest, path: Path) -> web.BaseRequest:
    """``request``, less its Range header if that is to be ignored: not a bytes range, or
    an If-Range entity-tag that does not strongly match the file's (RFC 9110 §13.1.5)."""
    ignore_range = not httpsem.is_bytes_range(request.headers[hdrs.RANGE])
    if_range = request.headers.get(hdrs.IF_RANGE, "")
    if httpsem.is_entity_tag(if_range):
        loop = asyncio.get_running_loop()
        st = await loop.run_in_executor(None, os.stat, path)
        ignore_range = ignore_range or not httpsem.strong_etag_match(
            if_range, httpsem.file_etag(st)
        )
    if not ignore_range:
        return request
    headers = request.headers.copy()
    del headers[hdrs.RANGE]
    return request.clone(headers=headers)


def single_range(request: web.BaseRequest, st: os.stat_result) -> tuple[int, int] | None:
    """(offset, count) of the one satisfiable byte range to answer with 206, as
    FileResponse computes it (RFC 9110 §14.1.2: ``a-b``, ``a-``, ``-n``), or None when
    FileResponse must answer instead (a 416, or an If-Range date older than the file:
    then the whole file, §13.1.5). An If-Range entity-tag was checked before."""
    if_range = request.if_range
    if if_range is not None and st.st_mtime > if_range.timestamp():
        return None
    try:
        rng = request.http_range
    except ValueError:
        return None
    start, end, size = rng.start, rng.stop, st.st_size
    if start is None:
        return None
    if start < 0 and end is None:  # the last -start bytes
        start = max(0, start + size)
        count = size - start
    else:
        count = min(end if end is not None else size, size) - start
    if start >= size or count <= 0:
        return None
    return start, count


async def _send_stored(
    resp: BlobResponse, request: web.BaseRequest, ranged: bool
) -> AbstractStreamWriter | None:
    """A hit with no condition but perhaps a Range: 200 and the whole blob, or 206 and
    one range of it, opened on the loop; None if FileResponse must answer (see
    ``single_range``).

    A stored blob's open and fstat touch only cached metadata, a few microseconds;
    FileResponse runs them, and the close, on the default executor, and those
    thread hand-offs cost more CPU than the work itself. The validators are the ones
    FileResponse sends (``httpsem.file_etag``), so both paths agree.
    """
    st = os.fstat(resp.fd)
    offset, count = 0, st.st_size
    if ranged:
        part = single_range(request, st)
        if part is None:
            return None
        offset, count = part
        resp.set_status(206)
        resp.headers[hdrs.CONTENT_RANGE] = f"bytes {offset}-{offset + count - 1}/{st.st_size}"
    resp.content_length = count
    resp.headers[hdrs.ETAG] = httpsem.file_etag(st)
    resp.headers[hdrs.LAST_MODIFIED] = httpsem.http_date(st.st_mtime)
    resp.headers[hdrs.ACCEPT_RANGES] = "bytes"
    writer = await web.StreamResponse.prepare(resp, request)  # headers only, sent now
    assert writer is not None  # only None for a response already prepared
    if request.method != hdrs.METH_HEAD and count:
        await send_body(request, writer, resp.fd, offset, count)
    await web.StreamResponse.write_eof(resp)
    return writer


async def send_body(
    request: web.BaseRequest, writer: AbstractStreamWriter, fd: int, offset: int, count: int
) -> None:
    """``count`` bytes of the file ``fd`` from ``offset`` after the headers ``writer`` sent.

    Zero-copy where it pays: a large body goes out by ``sendfile(2)`` on a thread
    (``sendfile``; uvloop has no ``loop.sendfile`` and the loop thread is the
    bottleneck anyway), once the transport's buffer is empty (the headers left), so
    nothing can interleave. Otherwise it is read and written in ``FILE_CHUNK``
    steps through the writer, as aiohttp itself does without sendfile.
    """
    transport = request.transport
    if transport is None or transport.is_closing():
        raise ConnectionResetError("connection lost")
    if count < SMALL_BLOB or transport.get_write_buffer_size():
        await _write_chunks(writer, fd, offset, count)
        return
    sent = await sendfile.sendfile(transport, fd, offset, count)
    writer.output_size += sent  # what the access log and metrics report
    if sent < count:
        transport.abort()  # never let a short body pass for a whole one
        raise ConnectionResetError("client stopped reading")


async def _write_chunks(writer: AbstractStreamWriter, fd: int, offset: int, count: int) -> None:
    loop = asyncio.get_running_loop()
    while count > 0:
        chunk = await loop.run_in_executor(None, os.pread, fd, min(FILE_CHUNK, count), offset)
        if not chunk:  # the file is shorter than it was: never happens to a stored blob
            break
        await writer.write(chunk)
        offset += len(chunk)
        count -= len(chunk)
    await writer.drain()
