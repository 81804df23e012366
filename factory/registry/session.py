"""HTTP transport to one registry: authentication, retries, error mapping.

Authentication follows the distribution token protocol (docs/spec/auth/token.md):
ping `GET /v2/`; a 401 carries `WWW-Authenticate` (RFC 7235 §4.1). For `Bearer`
we ask the realm for a token with `service` and the `scope`s the request needs
(basic-authenticated when we have credentials, anonymous otherwise); for
`Basic` we send the credentials (RFC 7617). A 401 later (expired token) gets one
fresh authentication. Transient failures (429, 5xx, connection resets) are
retried with exponential backoff by tenacity, honouring Retry-After.

Nothing here logs a header, a token or a password.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

import aiohttp
import yarl
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from factory.registry.auth import (
    Challenge,
    Credentials,
    Token,
    parse_challenges,
    resolve_credentials,
    token_from_response,
)
from factory.registry.errors import (
    AuthError,
    RegistryError,
    TransientError,
    Unreachable,
    parse_retry_after,
)
from factory.registry.reference import Reference

log = logging.getLogger("reprobase.registry")
T = TypeVar("T")
Body = Callable[[], bytes | AsyncGenerator[bytes, None] | None]
PULL = ("pull",)
PUSH = ("pull", "push")


@dataclass(frozen=True)
class ClientConfig:
    """Tuning of the distribution client; defaults suit real registries."""

    concurrency: int = 4  # blobs transferred at once (skopeo copies 6 layers at once)
    chunk_size: int = 64 << 20  # blobs above this go up in chunks of this size (PATCH)
    attempts: int = 5  # per operation, for 429/5xx/resets
    backoff_min: float = 0.1
    backoff_max: float = 8.0
    connect_timeout: float = 30.0
    read_timeout: float = 300.0

    def __post_init__(self) -> None:
        if self.concurrency < 1 or self.chunk_size < 1 or self.attempts < 1:
            raise ValueError("concurrency, chunk_size and attempts must be positive")


def is_transient(exc: BaseException) -> bool:
    return isinstance(exc, TransientError | aiohttp.ClientConnectionError | asyncio.TimeoutError)


class RegistrySession:
    """One registry host, shared by all repositories on it."""

    def __init__(self, ref: Reference, http: aiohttp.ClientSession, config: ClientConfig) -> None:
        self.registry = ref.registry
        self.base = yarl.URL(ref.base_url)
        self.http = http
        self.config = config
        self._challenge: Challenge | None = None
        self._pinged = False
        self._tokens: dict[tuple[str, ...], Token] = {}
        self._creds: dict[str, Credentials | None] = {}
        self._lock = asyncio.Lock()

    # -- retries -------------------------------------------------------------------------
    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        backoff: float = min(
            self.config.backoff_max, self.config.backoff_min * 2 ** (state.attempt_number - 1)
        )
        if isinstance(exc, TransientError) and exc.retry_after is not None:
            return max(backoff, exc.retry_after)
        return backoff

    def _before_sleep(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        log.debug("retrying after %s (attempt %d)", type(exc).__name__, state.attempt_number)

    async def retry(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Run fn, retrying transient failures; unreachable registries become UserErrors."""
        try:
            async for attempt in AsyncRetrying(
                stop=stop_after_attempt(self.config.attempts),
                wait=self._wait,
                retry=retry_if_exception(is_transient),
                before_sleep=self._before_sleep,
                reraise=True,
            ):
                with attempt:
                    return await fn()
        except (TimeoutError, aiohttp.ClientConnectionError) as exc:
            raise Unreachable(self.registry, _describe(exc)) from None
        raise AssertionError("unreachable")  # pragma: no cover

    # -- authentication ------------------------------------------------------------------
    def credentials(self, repository: str) -> Credentials | None:
        if repository not in self._creds:
            self._creds[repository] = resolve_credentials(self.registry, repository)
        return self._creds[repository]

    async def _ping(self) -> None:
        """GET /v2/ (spec §Determining support): learn how this registry authenticates."""
        async with self.http.get(self.base / "v2/") as resp:
            await resp.read()
            if resp.status == 401:
                self._remember_challenge(resp.headers.get("WWW-Authenticate", ""))
            elif resp.status >= 500 or resp.status == 429:
                raise TransientError(f"{self.registry}: GET /v2/", resp.status)
        self._pinged = True

    def _remember_challenge(self, header: str) -> None:
        for ch in parse_challenges(header):
            if ch.scheme in ("bearer", "basic"):
                self._challenge = ch
                return
        raise AuthError(f"{self.registry}: unsupported authentication challenge", 401)

    async def _auth_header(self, scopes: tuple[str, ...], repository: str) -> str | None:
        async with self._lock:
            if not self._pinged:
                await self._ping()
            ch = self._challenge
            if ch is None:
                return None
            creds = self.credentials(repository)
            if ch.scheme == "basic":
                if creds is None:
                    raise AuthError(f"{self.registry} requires a login", 401)
                return creds.basic_header()
            token = self._tokens.get(scopes) or self._covering_token(scopes)
            if token is None:
                token = await self._fetch_token(ch, scopes, creds)
                self._tokens[scopes] = token
            return token.header

    def _covering_token(self, scopes: tuple[str, ...]) -> Token | None:
        """A cached token granted for a superset of these scopes (pull is inside pull,push)."""
        wanted = _scope_actions(scopes)
        for key, token in self._tokens.items():
            have = _scope_actions(key)
            if all(acts <= have.get(repo, set()) for repo, acts in wanted.items()):
                return token
        return None

    async def _fetch_token(
        self, ch: Challenge, scopes: tuple[str, ...], creds: Credentials | None
    ) -> Token:
        realm = ch.params.get("realm")
        if not realm:
            raise AuthError(f"{self.registry}: Bearer challenge without a realm", 401)
        query: list[tuple[str, str]] = []
        if ch.params.get("service"):
            query.append(("service", ch.params["service"]))
        query += [("scope", s) for s in scopes]
        headers = {"Authorization": creds.basic_header()} if creds else {}
        url = yarl.URL(realm).extend_query(query)
        async with self.http.get(url, headers=headers) as resp:
            body = await resp.read()
            if resp.status in (401, 403):
                raise AuthError(f"token server of {self.registry} refused the login", resp.status)
            if resp.status != 200:
                raise RegistryError(f"token server of {self.registry}", resp.status, body)
            return Token(token_from_response(await resp.json(content_type=None)), " ".join(scopes))

    async def _reauthenticate(self, header: str, scopes: tuple[str, ...]) -> None:
        async with self._lock:
            self._tokens.pop(scopes, None)
            self._remember_challenge(header)

    # -- requests ------------------------------------------------------------------------
    def url(self, path: str, query: Mapping[str, str] | None = None) -> yarl.URL:
        url = self.base.join(yarl.URL(path)) if path.startswith("/") else yarl.URL(path)
        return url.update_query(query) if query else url

    def location(self, resp: aiohttp.ClientResponse) -> yarl.URL:
        """Upload Location headers may be relative (spec: resolve against the request URL)."""
        loc = resp.headers.get("Location")
        if not loc:
            raise RegistryError(f"{self.registry}: upload answer without Location", resp.status)
        return resp.url.join(yarl.URL(loc, encoded=True))

    async def request(
        self,
        method: str,
        url: yarl.URL,
        *,
        what: str,
        repository: str,
        scopes: tuple[str, ...],
        expect: tuple[int, ...],
        headers: Mapping[str, str] | None = None,
        body: Body | None = None,
    ) -> aiohttp.ClientResponse:
        """Send one request (re-authenticating once on 401); caller releases the response."""
        for round_ in range(2):
            hdrs: dict[str, str] = dict(headers or {})
            auth = await self._auth_header(scopes, repository)
            if auth:
                hdrs["Authorization"] = auth
            resp = await self.http.request(
                method,
                url,
                headers=hdrs,
                data=body() if body else None,
                allow_redirects=method in ("GET", "HEAD"),
            )
            if resp.status in expect:
                return resp
            data = await _read_and_release(resp)
            if resp.status == 401 and round_ == 0 and resp.headers.get("WWW-Authenticate"):
                await self._reauthenticate(resp.headers["WWW-Authenticate"], scopes)
                continue
            if resp.status in (401, 403):
                raise AuthError(
                    f"{self.registry}: not authorized to {what} in {repository}", resp.status, data
                )
            raise _status_error(what, resp, data)
        raise AssertionError("unreachable")  # pragma: no cover


async def _read_and_release(resp: aiohttp.ClientResponse) -> bytes:
    try:
        return await resp.read()
    finally:
        resp.release()


def _status_error(what: str, resp: aiohttp.ClientResponse, body: bytes) -> RegistryError:
    if resp.status == 429 or resp.status >= 500:
        return TransientError(
            what, resp.status, body, parse_retry_after(resp.headers.get("Retry-After"))
        )
    if resp.status in (401, 403):
        return AuthError(what, resp.status, body)
    return RegistryError(what, resp.status, body)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, aiohttp.ClientConnectorError):
        return exc.os_error.strerror or type(exc.os_error).__name__
    if isinstance(exc, asyncio.TimeoutError):
        return "timed out"
    return str(exc) or type(exc).__name__


def new_http_session(config: ClientConfig) -> aiohttp.ClientSession:
    timeout = aiohttp.ClientTimeout(
        total=None, connect=config.connect_timeout, sock_read=config.read_timeout
    )
    # No auto-decompression: blobs are stored compressed and digests cover those bytes.
    return aiohttp.ClientSession(timeout=timeout, auto_decompress=False, trust_env=True)


def scopes_for(actions: dict[str, tuple[str, ...]]) -> tuple[str, ...]:
    return tuple(sorted(f"repository:{repo}:{','.join(acts)}" for repo, acts in actions.items()))


def _scope_actions(scopes: tuple[str, ...]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for scope in scopes:
        _, _, rest = scope.partition(":")
        repo, _, actions = rest.rpartition(":")
        out.setdefault(repo, set()).update(actions.split(","))
    return out
