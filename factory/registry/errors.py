"""Errors of the distribution client, all one-line UserErrors at the CLI."""

from __future__ import annotations

import json

from factory.common.errors import UserError
from factory.registry.auth import LOGIN_HINT


class RegistryError(UserError):
    """The registry answered with an unexpected status (OCI distribution spec §Error Codes)."""

    def __init__(self, what: str, status: int, body: bytes = b"", hint: str | None = None) -> None:
        self.status = status
        self.codes = error_codes(body)
        detail = ", ".join(self.codes) or _short(body)
        super().__init__(f"{what}: HTTP {status}" + (f" ({detail})" if detail else ""), hint=hint)


class TransientError(RegistryError):
    """429 or 5xx: worth retrying, honouring Retry-After (RFC 9110 §10.2.3)."""

    def __init__(
        self, what: str, status: int, body: bytes = b"", retry_after: float | None = None
    ) -> None:
        super().__init__(
            what, status, body, hint="the registry is overloaded or failing; try again later"
        )
        self.retry_after = retry_after


class AuthError(RegistryError):
    def __init__(self, what: str, status: int, body: bytes = b"") -> None:
        super().__init__(what, status, body, hint=LOGIN_HINT)


class Unreachable(UserError):
    def __init__(self, registry: str, reason: str) -> None:
        super().__init__(
            f"cannot reach registry {registry}: {reason}",
            hint="check the address and that the registry is running; "
            "set REPROBASE_INSECURE_REGISTRIES=host:port for a plain-HTTP registry",
        )


def error_codes(body: bytes) -> list[str]:
    """The spec's error body: {"errors": [{"code": ..., "message": ...}]}."""
    try:
        obj = json.loads(body)
    except ValueError:
        return []
    if not isinstance(obj, dict) or not isinstance(obj.get("errors"), list):
        return []
    out: list[str] = []
    for e in obj["errors"]:
        if isinstance(e, dict):
            code = str(e.get("code", "?"))
            msg = str(e.get("message", ""))
            out.append(f"{code}: {msg}" if msg else code)
    return out[:3]


def _short(body: bytes) -> str:
    text = body.decode("utf-8", "replace").strip().replace("\n", " ")
    return text[:200]


def parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, min(float(value), 60.0))
    except ValueError:
        return None  # an HTTP-date; fall back to our own backoff


def first_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The first leaf of a TaskGroup's exception group: UserErrors stay one line."""
    first: BaseException = group
    while isinstance(first, BaseExceptionGroup):
        first = first.exceptions[0]
    return first
