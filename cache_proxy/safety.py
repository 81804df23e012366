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

import re
from typing import Final

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
