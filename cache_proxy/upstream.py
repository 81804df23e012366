"""The polite upstream client: per-host connection limit, backoff, Retry-After, fail-over.

One aiohttp session, no total timeout (a large .deb may take long) but connect and
read-gap timeouts, no automatic decompression (we store the archive's exact bytes),
redirects followed by hand so the caller can learn from each hop
(``/archive/<a>/<run>/`` resolves a timestamp; ``/file/<sha1>`` names the content).
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Final, TypeVar

import aiohttp
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
)
from yarl import URL

from cache_proxy.config import ProxyConfig
from cache_proxy.metrics import Metrics
from cache_proxy.verify import VerifyError

log = logging.getLogger("cache_proxy.upstream")
T = TypeVar("T")

MAX_REDIRECTS: Final = 5
REDIRECTS: Final = frozenset({301, 302, 303, 307, 308})
BREAKER_SECONDS: Final = 30.0


class NotFound(Exception):
    """Upstream says the file does not exist (404/410): not retried."""


class UpstreamError(Exception):
    """Upstream failed and retries are exhausted, or it answered something unusable."""

    def __init__(self, message: str, status: int = 502) -> None:
        super().__init__(message)
        self.status = status


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

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(
                limit=0, limit_per_host=self.config.per_host_connections
            ),
            timeout=aiohttp.ClientTimeout(
                total=None,
                sock_connect=self.config.connect_timeout,
                sock_read=self.config.read_timeout,
            ),
            auto_decompress=False,
            headers={"User-Agent": "reprobase-cache-proxy/0.1"},
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
        log.info("upstream: retry %d after %s", state.attempt_number, exc or "error")

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
                log.warning("upstream %s failed: %s", url, exc)
                continue
            self._down_until.pop(base, None)
            return result
        if all_404:
            raise last
        if isinstance(last, UpstreamError):
            raise last
        raise UpstreamError(
            f"upstream failed after retries: {last}",
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
        for _ in range(MAX_REDIRECTS + 1):
            counted = False
            try:
                async with self._session.get(target, allow_redirects=False) as resp:
                    counted = True
                    self.metrics.inc("upstream_requests_total", status=str(resp.status))
                    if resp.status in REDIRECTS and "Location" in resp.headers:
                        nxt = target.join(URL(resp.headers["Location"], encoded=True))
                        if nxt.host != target.host:
                            raise UpstreamError(f"refusing redirect to another host: {nxt.host}")
                        shortcut = await on_redirect(nxt)
                        if shortcut is not None:
                            return shortcut
                        target = nxt
                        continue
                    if resp.status == 200:
                        return await on_body(resp)
                    if resp.status in (404, 410):
                        raise NotFound(f"upstream {resp.status} for {target}")
                    if resp.status == 429 or resp.status >= 500:
                        raise TransientStatus(
                            resp.status,
                            parse_retry_after(resp.headers.get("Retry-After"), time.time()),
                        )
                    raise UpstreamError(f"upstream answered {resp.status} for {target}")
            except (TimeoutError, aiohttp.ClientError):
                if not counted:
                    self.metrics.inc("upstream_requests_total", status="error")
                raise
        raise UpstreamError(f"more than {MAX_REDIRECTS} redirects for {url}")


_RETRYABLE: Final = (
    TransientStatus,
    VerifyError,
    aiohttp.ClientError,
    asyncio.TimeoutError,
    ConnectionError,
)
