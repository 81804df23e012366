"""The polite, and wary, upstream client: per-host slots, backoff, Retry-After, fail-over.

One aiohttp session, no automatic decompression (we store the archive's exact bytes),
redirects followed by hand so the caller can learn from each hop
(``/archive/<a>/<run>/`` resolves a timestamp; ``/file/<sha1>`` names the content).

An upstream may be broken or hostile; every way it could make us store or serve
wrong bytes, or hold us up, is bounded here:

- ``Accept-Encoding: identity`` is sent and any other ``Content-Encoding`` refused
  (RFC 9110 §8.4, §12.5.3): a gzip answer stored as the plain file would be served as
  that file for a year;
- redirects are followed only to an upstream's own base (scheme, host *and* port,
  RFC 6454 §4), to the ``/file/`` door of the origin that redirected, or to an origin
  given with ``--redirect-origin``;
- header lines, header count, the body beyond its expected size, the silence between
  two reads, the average rate (``min_rate`` over ``rate_window``) and each connection
  (``deadline``) are bounded; a connection over a bound is dropped, and its download
  resumed from where it stopped like a cut one (``resume``), so clients' streams go
  on; at most ``resumes`` times per attempt, then the attempt is retried;
- a download slower than ``slow_rate`` gives its connection slot back, so a trickling
  upstream answer cannot keep every other cold fetch waiting (at most ``limit`` slow
  ones per host besides the ``limit`` normal ones).
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import logging
import random
import re
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

import aiohttp
from aiohttp import hdrs, http_exceptions
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
)
from yarl import URL

from cache_proxy.config import ProxyConfig
from cache_proxy.metrics import Metrics
from cache_proxy.routing import FILE_SHA1
from cache_proxy.safety import logsafe, redact
from cache_proxy.verify import VerifyError

log = logging.getLogger("cache_proxy.upstream")
T = TypeVar("T")

MAX_REDIRECTS: Final = 5
_CONTENT_RANGE: Final = re.compile(r"^bytes (?P<start>\d+)-(?P<end>\d+)/(?P<total>\d+)$")
REDIRECTS: Final = frozenset({301, 302, 303, 307, 308})
BREAKER_SECONDS: Final = 30.0


class NotFound(Exception):
    """Upstream says the file does not exist (404/410): not retried."""


class UpstreamError(Exception):
    """Upstream failed and retries are exhausted, or it answered something unusable."""

    def __init__(self, message: str, status: int = 502) -> None:
        super().__init__(message)
        self.status = status


class RefusedEncoding(UpstreamError):
    """A Content-Encoding other than identity: never stored, the next mirror is tried."""


class SlowUpstream(TimeoutError):
    """A connection fell under the minimum rate or over the deadline: dropped; its body
    is resumed (``Committer.receive``) or, failing that, the attempt retried."""


def check_encoding(headers: Any) -> None:
    """RFC 9110 §8.4: we asked for identity; anything else would be stored as the file."""
    coding = str(headers.get(hdrs.CONTENT_ENCODING, "")).strip().lower()
    if coding not in ("", "identity"):
        raise RefusedEncoding(f"upstream sent Content-Encoding {logsafe(coding)!r}")
    transfer = str(headers.get(hdrs.TRANSFER_ENCODING, "")).replace(" ", "").lower()
    if transfer not in ("", "chunked", "identity"):
        raise RefusedEncoding(f"upstream sent Transfer-Encoding {logsafe(transfer)!r}")


def malformed_answer(exc: aiohttp.ClientResponseError, config: ProxyConfig) -> str:
    """One line for an upstream answer whose header block could not be read: which
    bound it broke, never its bytes (a hostile upstream chose them)."""
    message = str(exc.message or "")
    causes: list[BaseException] = []
    cause: BaseException | None = exc
    while cause is not None and len(causes) < 8:
        causes.append(cause)
        cause = cause.__cause__
    if message.startswith("Got more than") or any(
        isinstance(c, http_exceptions.LineTooLong) for c in causes
    ):
        what = f"a header line over {config.max_header_bytes} bytes"
    elif "header" in message.lower() and "many" in message.lower():
        what = f"more than {config.max_headers} header fields"
    else:
        what = f"a malformed header block ({logsafe(message.split(':', 1)[0], 80)})"
    return f"upstream sent {what}: refused, nothing stored"


def origin_text(url: URL) -> str:
    scheme, host, port = origin(url)
    return f"{scheme}://{host}:{port}"


def origin(url: URL) -> tuple[str, str, int]:
    """RFC 6454 §4: scheme, host and port (the scheme's default if none is given)."""
    scheme = (url.scheme or "").lower()
    port = url.port or (443 if scheme == "https" else 80)
    return scheme, (url.host or "").lower().rstrip("."), port


def redirect_allowed(
    current: URL, nxt: URL, bases: Sequence[str], extra: Sequence[str] = ()
) -> bool:
    """May a redirect from ``current`` lead to ``nxt``?

    Yes under an upstream's own base (same origin, path below the base's path), to
    the ``/file/<sha1>`` door of the origin that redirected (snapshot.debian.org's
    content door), or to an origin listed in ``extra``. Host names alone are not
    enough: another port or scheme of the same host is another server.
    """
    if nxt.scheme not in ("http", "https") or not nxt.host:
        return False
    where = origin(nxt)
    if any(origin(URL(e)) == where for e in extra):
        return True
    for base in bases:
        b = URL(base)
        if origin(b) == where and nxt.path.startswith(b.path):
            return True
    return where == origin(current) and FILE_SHA1.match(nxt.path) is not None


@dataclass
class Pace:
    """Is one download going fast enough? The sync core the watchdog samples."""

    min_rate: float
    window: float
    slow_rate: float
    slow_after: float
    deadline: float
    start: float
    samples: list[tuple[float, int]] = field(default_factory=list)

    def _since(self, now: float, span: float) -> int | None:
        """Bytes received in the last ``span`` seconds, None if the download is younger."""
        t0 = now - span
        if t0 < self.start:
            return None
        base = 0
        for t, n in self.samples:
            if t > t0:
                break
            base = n
        return self.samples[-1][1] - base

    def note(self, now: float, total: int) -> str | None:
        """Record ``total`` bytes at ``now``; a reason to drop the attempt, or None."""
        if not self.samples:
            self.samples.append((self.start, 0))
        self.samples.append((now, total))
        keep = now - max(self.window, self.slow_after)
        while len(self.samples) > 2 and self.samples[1][0] <= keep:
            self.samples.pop(0)
        if now - self.start > self.deadline:
            return f"took longer than the {self.deadline:g} s deadline"
        got = self._since(now, self.window)
        if got is not None and got < self.min_rate * self.window:
            return f"{got} bytes in {self.window:g} s, under {self.min_rate:g} bytes/s"
        return None

    def slow(self, now: float) -> bool:
        got = self._since(now, self.slow_after)
        return got is not None and got < self.slow_rate * self.slow_after


@dataclass
class Slot:
    key: str
    slow: bool = False


class Slots:
    """Per-origin connection slots; a slow download may move to a second, bounded pool."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._sems: dict[str, asyncio.Semaphore] = {}
        self._slow: Counter[str] = Counter()

    @contextlib.asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[Slot]:
        sem = self._sems.setdefault(key, asyncio.Semaphore(self.limit))
        await sem.acquire()
        slot = Slot(key)
        try:
            yield slot
        finally:
            if slot.slow:
                self._slow[key] -= 1
            else:
                sem.release()

    def demote(self, slot: Slot) -> bool:
        """Give ``slot`` back to the normal pool if the slow pool has room."""
        if slot.slow or self._slow[slot.key] >= self.limit:
            return False
        slot.slow = True
        self._slow[slot.key] += 1
        self._sems[slot.key].release()
        return True

    def slow_count(self, key: str) -> int:
        return self._slow[key]


class TransientStatus(Exception):
    """429 or 5xx: try again, after Retry-After if given (RFC 9110 §10.2.3, RFC 6585 §4)."""

    def __init__(self, status: int, retry_after: float | None) -> None:
        super().__init__(f"upstream answered {status}")
        self.status = status
        self.retry_after = retry_after


def parse_retry_after(value: str | None, now: float) -> float | None:
    """RFC 9110 §10.2.3: delay-seconds or an HTTP-date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now)


def _retryable(exc: BaseException) -> bool:
    return isinstance(
        exc,
        TransientStatus
        | VerifyError
        | aiohttp.ClientConnectionError
        | aiohttp.ClientPayloadError
        | asyncio.TimeoutError
        | ConnectionError,
    )


class Upstream:
    def __init__(self, config: ProxyConfig, metrics: Metrics) -> None:
        self.config = config
        self.metrics = metrics
        self._session: aiohttp.ClientSession | None = None
        self._down_until: dict[str, float] = {}
        self.slots = Slots(config.per_host_connections)
        # Resumed continuations of a response, so its watchdog counts their bytes too.
        self._continued: dict[int, list[aiohttp.ClientResponse]] = {}

    async def start(self) -> None:
        c = self.config
        self._session = aiohttp.ClientSession(
            # Our slots bound the normal downloads per origin; the connector's limit is
            # the hard ceiling, slow ones included.
            connector=aiohttp.TCPConnector(limit=0, limit_per_host=2 * c.per_host_connections),
            timeout=aiohttp.ClientTimeout(
                total=None, sock_connect=c.connect_timeout, sock_read=c.read_timeout
            ),
            auto_decompress=False,
            headers={"User-Agent": "reprobase-cache-proxy/0.1", "Accept-Encoding": "identity"},
            max_line_size=c.max_header_bytes,
            max_field_size=c.max_header_bytes,
            max_headers=c.max_headers,
            cookie_jar=aiohttp.DummyCookieJar(),
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    def mirror_order(self) -> list[str]:
        """Configured order, mirrors whose breaker is open moved to the end."""
        now = time.monotonic()
        ups = list(self.config.upstreams)
        return sorted(ups, key=lambda u: self._down_until.get(u, 0.0) > now)

    def _wait(self, state: RetryCallState) -> float:
        policy = self.config.retry
        n = state.attempt_number
        backoff = min(policy.backoff_max, policy.backoff_initial * 2 ** (n - 1))
        backoff = random.uniform(backoff / 2, backoff)  # "equal jitter"
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, TransientStatus) and exc.retry_after is not None:
            return max(backoff, min(exc.retry_after, policy.retry_after_max))
        return backoff

    def _before_sleep(self, state: RetryCallState) -> None:
        self.metrics.inc("retries_total")
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, VerifyError):
            self.metrics.inc("verify_failures_total")
        log.info("upstream: retry %d after %s", state.attempt_number, redact(str(exc or "error")))

    async def fetch(
        self,
        urls: list[tuple[str, str]],
        on_body: Callable[[aiohttp.ClientResponse], Awaitable[T]],
        on_redirect: Callable[[URL], Awaitable[T | None]],
    ) -> T:
        """Try ``(base, url)`` pairs in order; each with retries. ``on_redirect`` may short-cut."""
        last: Exception = UpstreamError("no upstream configured")
        all_404 = True
        for i, (base, url) in enumerate(urls):
            if i:
                self.metrics.inc("failovers_total")
            try:
                result = await self._with_retries(url, on_body, on_redirect)
            except NotFound as exc:
                last = exc
                continue
            except (UpstreamError, *_RETRYABLE) as exc:
                all_404 = False
                last = exc
                self._down_until[base] = time.monotonic() + BREAKER_SECONDS
                log.warning("upstream %s failed: %s", redact(url), redact(str(exc)))
                continue
            self._down_until.pop(base, None)
            return result
        if all_404:
            raise last
        if isinstance(last, UpstreamError):
            raise last
        raise UpstreamError(
            f"upstream failed after retries: {redact(str(last)) or type(last).__name__}",
            504 if isinstance(last, asyncio.TimeoutError) else 502,
        ) from last

    async def _with_retries(
        self,
        url: str,
        on_body: Callable[[aiohttp.ClientResponse], Awaitable[T]],
        on_redirect: Callable[[URL], Awaitable[T | None]],
    ) -> T:
        retrying = AsyncRetrying(
            retry=retry_if_exception(_retryable),
            stop=stop_after_attempt(self.config.retry.attempts),
            wait=self._wait,
            before_sleep=self._before_sleep,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await self._once(url, on_body, on_redirect)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _once(
        self,
        url: str,
        on_body: Callable[[aiohttp.ClientResponse], Awaitable[T]],
        on_redirect: Callable[[URL], Awaitable[T | None]],
    ) -> T:
        assert self._session is not None
        target = URL(url, encoded=True)
        key = origin_text(target)
        async with self.slots.hold(key) as slot:
            for _ in range(MAX_REDIRECTS + 1):
                counted = False
                try:
                    # Headers are bounded in size by the session and in time here.
                    try:
                        resp = await asyncio.wait_for(
                            self._session.get(target, allow_redirects=False),
                            self.config.connect_timeout + self.config.read_timeout,
                        )
                    except aiohttp.ClientResponseError as exc:  # its header block broke a bound
                        self.metrics.inc("upstream_requests_total", status="error")
                        self.metrics.inc("refused_total", reason="header")
                        counted = True
                        raise UpstreamError(malformed_answer(exc, self.config)) from None
                    async with resp:
                        counted = True
                        self.metrics.inc("upstream_requests_total", status=str(resp.status))
                        if resp.status in REDIRECTS and "Location" in resp.headers:
                            nxt = target.join(URL(resp.headers["Location"], encoded=True))
                            if not redirect_allowed(
                                target, nxt, self.config.upstreams, self.config.redirect_origins
                            ):
                                self.metrics.inc("refused_total", reason="redirect")
                                raise UpstreamError(
                                    "refusing redirect to "
                                    + logsafe(origin_text(nxt))
                                    + ", not an upstream of this proxy"
                                )
                            shortcut = await on_redirect(nxt)
                            if shortcut is not None:
                                return shortcut
                            target = nxt
                            continue
                        if resp.status == 200:
                            try:
                                check_encoding(resp.headers)
                            except RefusedEncoding:
                                self.metrics.inc("refused_total", reason="encoding")
                                raise
                            return await self._body(resp, slot, on_body)
                        shown = redact(str(target))
                        if resp.status in (404, 410):
                            raise NotFound(f"upstream {resp.status} for {shown}")
                        if resp.status == 429 or resp.status >= 500:
                            raise TransientStatus(
                                resp.status,
                                parse_retry_after(resp.headers.get("Retry-After"), time.time()),
                            )
                        raise UpstreamError(f"upstream answered {resp.status} for {shown}")
                except (TimeoutError, aiohttp.ClientError):
                    if not counted:
                        self.metrics.inc("upstream_requests_total", status="error")
                    raise
        raise UpstreamError(f"more than {MAX_REDIRECTS} redirects for {redact(url)}")

    async def _body(
        self,
        resp: aiohttp.ClientResponse,
        slot: Slot,
        on_body: Callable[[aiohttp.ClientResponse], Awaitable[T]],
    ) -> T:
        """``on_body(resp)`` under the watchdog: rate, deadline, slot given up when slow.

        A connection over a bound is ended with ``SlowUpstream`` in its body stream:
        ``on_body`` sees it where it reads, as it would see a cut, and may resume.
        """
        watch = asyncio.create_task(self._watch(resp, slot))
        try:
            return await on_body(resp)
        finally:
            watch.cancel()
            self._continued.pop(id(resp), None)

    async def resume(
        self, first: aiohttp.ClientResponse, offset: int, total: int, allow_skip: bool
    ) -> tuple[aiohttp.ClientResponse, int]:
        """Continue ``first``'s cut body at ``offset``: (a response, bytes of it to skip).

        RFC 9110 §14.2 ``Range: bytes=offset-`` with ``If-Range`` (§13.1.5) naming
        ``first``'s validator: a 206 must start at ``offset`` and give the same total.
        A 200 (range ignored, or the file changed) is only used when a content hash
        will check the joined bytes (``allow_skip``); its first ``offset`` bytes are
        skipped. Runs inside ``first``'s connection slot and watchdog.
        """
        assert self._session is not None
        headers = {hdrs.RANGE: f"bytes={offset}-"}
        etag = first.headers.get(hdrs.ETAG, "")
        validator = etag if etag.startswith('"') else first.headers.get(hdrs.LAST_MODIFIED)
        if validator:
            headers[hdrs.IF_RANGE] = validator
        try:
            resp = await asyncio.wait_for(
                self._session.get(first.url, headers=headers, allow_redirects=False),
                self.config.connect_timeout + self.config.read_timeout,
            )
        except (TimeoutError, aiohttp.ClientError):
            self.metrics.inc("upstream_requests_total", status="error")
            raise
        self.metrics.inc("upstream_requests_total", status=str(resp.status))
        try:
            check_encoding(resp.headers)
            skip = self._resumed_at(resp, offset, total, allow_skip)
        except BaseException:
            resp.close()
            raise
        self.metrics.inc("resumes_total")
        self._continued.setdefault(id(first), []).append(resp)
        return resp, skip

    @staticmethod
    def _resumed_at(resp: aiohttp.ClientResponse, offset: int, total: int, allow_skip: bool) -> int:
        if resp.status == 206:
            m = _CONTENT_RANGE.match(resp.headers.get(hdrs.CONTENT_RANGE, ""))
            if m is None or int(m["start"]) != offset or int(m["total"]) != total:
                raise aiohttp.ClientPayloadError("resumed at the wrong place")
            return 0
        if resp.status == 200 and allow_skip and resp.content_length in (None, total):
            return offset
        raise aiohttp.ClientPayloadError(f"could not resume: upstream answered {resp.status}")

    async def _watch(self, resp: aiohttp.ClientResponse, slot: Slot) -> None:
        """Sample the current connection of ``resp``'s download (the last resumed one);
        each connection is paced from its own start."""
        c = self.config
        loop = asyncio.get_running_loop()
        tick = max(0.01, min(1.0, c.slow_after / 4, c.rate_window / 4))
        current: aiohttp.ClientResponse | None = None
        pace: Pace | None = None
        base = 0  # bytes the current connection's stream had when pacing began
        while True:
            await asyncio.sleep(tick)
            last = [resp, *self._continued.get(id(resp), ())][-1]  # resumed ones follow
            if last is not current:
                if last.content.exception() is not None:
                    continue  # dropped: wait for the resumed connection, if one comes
                current = last
                pace = Pace(
                    c.min_rate, c.rate_window, c.slow_rate, c.slow_after, c.deadline, loop.time()
                )
                base = last.content.total_bytes
            assert pace is not None
            content = current.content
            if content.at_eof() and content.exception() is None:
                return  # every byte is in: verifying and storing are not upstream's time
            now = loop.time()
            reason = pace.note(now, content.total_bytes - base)
            if reason is not None:
                self.metrics.inc("slow_aborts_total")
                log.info("upstream: dropping a connection: too slow: %s", reason)
                content.set_exception(SlowUpstream(f"upstream too slow: {reason}"))
                current.close()
                continue
            if pace.slow(now) and self.slots.demote(slot):
                self.metrics.inc("slow_downloads_total")
                log.info("upstream: a slow download gives up its connection slot")


_RETRYABLE: Final = (
    TransientStatus,
    VerifyError,
    aiohttp.ClientError,
    asyncio.TimeoutError,
    ConnectionError,
)
