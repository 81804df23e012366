"""What may leave the proxy in words: no credentials, and no raw client bytes in logs.

Credentials can hide in an ``--upstream`` URL (``http://user:secret@mirror/``), in
a client's absolute-form request target (``GET http://user:pw@host/...``) and in
exception texts that quote a URL (aiohttp's ``ClientResponseError`` does). Every
URL or error text that goes to a log line, a metric or an error body passes
through ``redact`` first. Client-controlled text (request target, method, decoded
paths: ``%0a`` decodes to a newline) passes through ``logsafe`` so one request is
one log line whatever it contains.
"""

from __future__ import annotations

import logging
import re
import sys
from typing import Any, Final

# RFC 3986 §3.2.1: userinfo is everything between "//" and the first "@" of the
# authority; the authority ends at the first "/", "?" or "#".
_USERINFO: Final = re.compile(r"(?i)(\b[a-z][a-z0-9+.-]*://)[^/?#\s@]*@")
_UNSAFE: Final = re.compile(r'[^\x21-\x7e ]|["\\]')
REDACTED: Final = "***@"
_SPECIAL: Final = frozenset('"\\@')


def redact(text: str) -> str:
    """``text`` with the userinfo of every URL in it replaced by ``***``."""
    return _USERINFO.sub(lambda m: m[1] + REDACTED, text)


def _escape(m: re.Match[str]) -> str:
    ch = m[0]
    if ch in ('"', "\\"):
        return "\\" + ch
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def logsafe(text: str, limit: int = 2048) -> str:
    """Printable ASCII only: quotes, backslashes, controls and non-ASCII escaped, credentials
    redacted, and at most ``limit`` characters (a log line per request, not a dump)."""
    if text.isascii() and text.isprintable() and not _SPECIAL.intersection(text):
        return text if len(text) <= limit else text[:limit] + "..."  # the usual request
    out = _UNSAFE.sub(_escape, redact(text))
    return out if len(out) <= limit else out[:limit] + "..."


class OneLineLogger(logging.Logger):
    """aiohttp logs a malformed request (bad method, bad target, a line too long) with
    its traceback, at ERROR; a client's mistake is one escaped line at INFO here."""

    def _log(
        self,
        level: int,
        msg: object,
        args: Any,
        exc_info: Any = None,
        extra: Any = None,
        stack_info: bool = False,
        stacklevel: int = 1,
    ) -> None:
        if exc_info:
            exc = exc_info if isinstance(exc_info, BaseException) else sys.exc_info()[1]
            text = str(msg) % args if args else str(msg)
            if exc is not None:
                detail = " ".join(str(getattr(exc, "message", "") or exc).split())
                text = f"{text}: {type(exc).__name__}: {detail}"
                if getattr(exc, "code", 500) < 500:
                    level = min(level, logging.INFO)  # the client's fault, not ours
            msg, args, exc_info = logsafe(text, 512), (), None
        super()._log(level, msg, args, exc_info, extra, stack_info, stacklevel)


def http_logger(name: str = "cache_proxy.http") -> logging.Logger:
    """The logger for aiohttp's server: one line per malformed request."""
    logger = OneLineLogger(name)
    logger.parent = logging.getLogger("cache_proxy")  # propagate as named loggers do
    return logger
